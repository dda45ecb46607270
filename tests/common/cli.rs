//! The real `wrpc-ring` binary, as an operator runs it: one-shot runs, and `serve`
//! processes whose output lines a test waits for (never forever: each wait has a
//! deadline and fails naming what it waited for and what the process printed).

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long a `serve` process may take to print a line a test waits for (a debug
/// build compiles the components at start, on a loaded 2-core machine).
pub const STARTUP: Duration = Duration::from_secs(120);

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wrpc-ring"))
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("failed to run wrpc-ring")
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A scratch directory with `files` written into it.
pub fn scratch(name: &str, files: &[(&str, String)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wrpc-ring-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, contents) in files {
        std::fs::write(dir.join(file), contents).unwrap();
    }
    dir
}

pub fn component_path(name: &str) -> String {
    root()
        .join("examples/components/wasm")
        .join(format!("{name}.wasm"))
        .display()
        .to_string()
}

/// A child process, killed on drop.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A line of a `serve` process's output.
#[derive(Debug, Clone)]
pub enum Line {
    Out(String),
    Err(String),
}

/// A running `wrpc-ring serve`, whose stdout and stderr lines are collected.
pub struct Served {
    pub child: Child,
    lines: Receiver<Line>,
    /// Every line read so far, in order.
    pub seen: Vec<Line>,
}

impl Served {
    /// Starts `wrpc-ring serve CONFIG ARGS…` and waits for its "serving" line.
    pub fn start(config: &Path, args: &[&str]) -> Self {
        let mut child = bin()
            .arg("serve")
            .arg(config)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("failed to start wrpc-ring serve");
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for (pipe, is_err) in [
            (Box::new(stdout) as Box<dyn std::io::Read + Send>, false),
            (Box::new(stderr), true),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                use std::io::BufRead as _;
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    let line = if is_err { Line::Err(line) } else { Line::Out(line) };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut served = Self {
            child: Child(child),
            lines,
            seen: Vec::new(),
        };
        served.wait_for(
            "the serving line",
            STARTUP,
            |l| matches!(l, Line::Out(t) if t.starts_with("serving")),
        );
        served
    }

    /// Everything printed so far.
    pub fn printed(&self) -> String {
        self.seen
            .iter()
            .map(|l| match l {
                Line::Out(t) => format!("out: {t}\n"),
                Line::Err(t) => format!("err: {t}\n"),
            })
            .collect()
    }

    /// Waits for a line that `matches`, up to `timeout`; returns it.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, matches: impl Fn(&Line) -> bool) -> Line {
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "waited {timeout:?} for {what}; the host printed:\n{}",
                        self.printed()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the host exited before {what}; it printed:\n{}", self.printed())
                }
            }
        }
    }

    /// The line on stdout starting with `prefix` already read, or else the next one.
    pub fn seen_or_wait_for_out(&mut self, prefix: &str) -> String {
        let seen = self.seen.iter().find_map(|l| match l {
            Line::Out(t) if t.starts_with(prefix) => Some(t.clone()),
            _ => None,
        });
        seen.unwrap_or_else(|| self.wait_for_out(prefix))
    }

    /// Waits for the next line on stdout that starts with `prefix`.
    pub fn wait_for_out(&mut self, prefix: &str) -> String {
        match self.wait_for(
            &format!("a line starting with `{prefix}`"),
            STARTUP,
            |l| matches!(l, Line::Out(t) if t.starts_with(prefix)),
        ) {
            Line::Out(t) | Line::Err(t) => t,
        }
    }

    /// Sends `signal` (e.g. `-HUP`, `-TERM`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.0.id().to_string()])
            .status()
            .expect("failed to run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Waits up to `timeout` for the process to exit; returns its status and collects
    /// the rest of its output.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.0.try_wait().unwrap() {
                // The pipes close when the process is gone: read what is left.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
                    self.seen.push(line);
                }
                return status;
            }
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            assert!(
                Instant::now() < deadline,
                "the host did not exit within {timeout:?}; it printed:\n{}",
                self.printed()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
