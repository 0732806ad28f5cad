//! End-to-end tests: the two binaries run as a user runs them, one module per area.

mod common;

mod browse_tmux;
mod cli;
mod damaged;
mod light;
mod merge;
mod reliability;
mod security;
