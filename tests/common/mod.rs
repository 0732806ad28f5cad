pub mod bin;
pub mod tmux;
