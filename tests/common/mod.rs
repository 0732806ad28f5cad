pub mod bin;
pub mod fixtures;
pub mod tmux;
