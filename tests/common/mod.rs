pub mod fixtures;
pub mod tmux;
