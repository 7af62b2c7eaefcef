//! A harness binary run inside a namespace and driven by JSON lines: its configuration as the one
//! argument, commands on stdin, answers on stdout (collected by a thread and time-stamped on arrival),
//! its own log on stderr kept in a file. Killed on drop if still running. `bgp-harness` ([`crate::speaker`])
//! and `l2-harness` ([`crate::l2`]) are both driven through this.

use crate::netns::Netns;
use crate::util::{wait_until, Error, Result};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where cargo put a binary of this package: `built` (a `CARGO_BIN_EXE_*` value, set when compiling
/// integration tests) or else next to the running test or benchmark binary (or one directory up, for
/// tests in `deps/`).
pub fn sibling_binary(name: &str, built: Option<&str>) -> PathBuf {
    if let Some(p) = built {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("exe dir");
    for candidate in [dir.join(name), dir.join("..").join(name)] {
        if candidate.exists() {
            return candidate;
        }
    }
    dir.join(name)
}

/// One line the process printed, with when it arrived.
#[derive(Clone, Debug)]
pub struct Line {
    pub at: Instant,
    pub value: Value,
}

pub struct JsonProcess {
    /// What it is, for error messages ("speaker", "l2 harness").
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<Line>>>,
    log: PathBuf,
    _logdir: tempfile::TempDir,
}

impl std::fmt::Debug for JsonProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonProcess")
            .field("name", &self.name)
            .field("pid", &self.child.id())
            .finish()
    }
}

impl JsonProcess {
    /// Starts `binary config` in `ns` and waits (10 s at most) for its `{"ready": …}` line.
    pub fn start(ns: &Netns, binary: &Path, config: &Value, name: &'static str) -> Result<Self> {
        let logdir = tempfile::tempdir()?;
        let log = logdir
            .path()
            .join(format!("{}.log", name.replace(' ', "-")));
        let mut cmd = ns.exec([binary.as_os_str(), config.to_string().as_ref()]);
        cmd.env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log)?);
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::msg(format!("cannot start {binary:?}: {e}")))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let lines: Arc<Mutex<Vec<Line>>> = Arc::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                sink.lock().expect("lines").push(Line {
                    at: Instant::now(),
                    value,
                });
            }
        });
        let stdin = child.stdin.take();
        let process = JsonProcess {
            name,
            child,
            stdin,
            lines,
            log,
            _logdir: logdir,
        };
        let first = process.wait_line(
            0,
            &format!("the {name} to start"),
            Duration::from_secs(10),
            |v| v.get("ready").is_some() || v.get("error").is_some(),
        )?;
        match first.value.get("error") {
            Some(e) => Err(Error::msg(format!("{name}: {e}"))),
            None => Ok(process),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's own log (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Writes one command line.
    pub fn send(&mut self, cmd: &Value) -> Result<()> {
        let name = self.name;
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| Error::msg(format!("{name} stdin closed")))?;
        writeln!(stdin, "{cmd}")
            .and_then(|_| stdin.flush())
            .map_err(|e| Error::msg(format!("{name} stdin: {e}")))
    }

    /// Closes stdin (the process sees EOF).
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// How many lines have arrived so far (to wait only for later ones).
    pub fn seen(&self) -> usize {
        self.lines.lock().expect("lines").len()
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<Line> {
        self.lines.lock().expect("lines").clone()
    }

    /// Waits for a line from index `from` on (seen now or later) matching `pred`; the error carries the
    /// tail of the process's log.
    pub fn wait_line(
        &self,
        from: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Line> {
        wait_until(what, timeout, Duration::from_millis(5), || {
            self.lines
                .lock()
                .expect("lines")
                .get(from..)
                .unwrap_or_default()
                .iter()
                .find(|l| pred(&l.value))
                .cloned()
        })
        .map_err(|e| {
            e.context(format!(
                "{} log:\n{}",
                self.name,
                crate::util::tail_lines(&self.log(), 30)
            ))
        })
    }

    /// Waits (10 s at most) for the process to exit.
    pub fn wait_exit(&mut self) -> Result<ExitStatus> {
        let child = &mut self.child;
        wait_until(
            &format!("the {} to exit", self.name),
            Duration::from_secs(10),
            Duration::from_millis(10),
            || child.try_wait().ok().flatten(),
        )
    }
}

impl Drop for JsonProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
