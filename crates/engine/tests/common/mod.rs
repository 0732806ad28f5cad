pub mod bin;
pub mod fixtures;
