//! A headless tmux server of a test's own (by socket name), driving the real binary with send-keys and
//! reading the screen with capture-pane. Shared by the browser's end-to-end and reliability tests.
#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

pub struct Tmux {
    pub socket: String,
}

impl Tmux {
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("running tmux")
    }

    pub fn capture(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "browse"]).stdout).into_owned()
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "browse"];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success());
    }

    /// Waits until the screen contains `text`; panics with the screen when it never does.
    pub fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.capture();
            if screen.contains(text) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("'{text}' never appeared; screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The pid of the program in the pane (tmux starts `env`, which execs torchlight in place).
    pub fn pane_pid(&self) -> i32 {
        let out = self.run(&["list-panes", "-t", "browse", "-F", "#{pane_pid}"]);
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("pane pid")
    }

    pub fn alive(&self) -> bool {
        self.run(&["has-session", "-t", "browse"]).status.success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Only our own server, by its socket name.
        let _ = self.run(&["kill-server"]);
    }
}

/// Whether tmux is here to run `test`. Without it the test says loudly that it did not run, and under CI=true it
/// fails instead (`.ci/run` installs tmux).
pub fn tmux_available(test: &str) -> bool {
    if Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    let msg = format!("{test} NOT RUN: tmux is not installed (apt-get install tmux)");
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
    eprintln!("{msg}");
    false
}
