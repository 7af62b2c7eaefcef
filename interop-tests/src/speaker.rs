//! The ferrolb BGP speaker under test: the `bgp-harness` binary (src/bin/bgp-harness.rs) run inside a
//! namespace, driven by JSON lines on stdin, with its JSON lines on stdout collected by a thread and
//! time-stamped on arrival (the benchmark measures from the `Established` event).

use crate::netns::Netns;
use crate::util::{wait_until, Error, Result};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One line the speaker printed, with when it arrived.
#[derive(Clone, Debug)]
pub struct Line {
    pub at: Instant,
    pub value: Value,
}

pub struct Speaker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<Line>>>,
    log: PathBuf,
    _logdir: tempfile::TempDir,
}

impl std::fmt::Debug for Speaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Speaker")
            .field("pid", &self.child.id())
            .finish()
    }
}

/// Where cargo put the harness binary: next to the running test or benchmark binary.
pub fn harness_binary() -> PathBuf {
    if let Some(p) = option_env!("CARGO_BIN_EXE_bgp-harness") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("exe dir");
    for candidate in [dir.join("bgp-harness"), dir.join("..").join("bgp-harness")] {
        if candidate.exists() {
            return candidate;
        }
    }
    dir.join("bgp-harness")
}

impl Speaker {
    /// Starts the speaker in `ns` with `config` (see the harness's `Config`).
    pub fn start(ns: &Netns, binary: &Path, config: &Value) -> Result<Speaker> {
        let logdir = tempfile::tempdir()?;
        let log = logdir.path().join("speaker.log");
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
        let s = Speaker {
            child,
            stdin,
            lines,
            log,
            _logdir: logdir,
        };
        s.wait_line("the speaker to start", Duration::from_secs(10), |v| {
            v.get("ready").is_some()
        })?;
        Ok(s)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The speaker's own log (stderr), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn send(&mut self, cmd: &Value) -> Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| Error::msg("speaker stdin closed"))?;
        writeln!(stdin, "{cmd}")
            .and_then(|_| stdin.flush())
            .map_err(|e| Error::msg(format!("speaker stdin: {e}")))
    }

    /// All lines so far.
    pub fn lines(&self) -> Vec<Line> {
        self.lines.lock().expect("lines").clone()
    }

    /// Waits for a line (seen now or later) matching `pred`, returns it.
    pub fn wait_line(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Line> {
        wait_until(what, timeout, Duration::from_millis(10), || {
            self.lines
                .lock()
                .expect("lines")
                .iter()
                .find(|l| pred(&l.value))
                .cloned()
        })
        .map_err(|e| {
            e.context(format!(
                "speaker log:\n{}",
                crate::util::tail_lines(&self.log(), 30)
            ))
        })
    }

    /// When the speaker reported reaching `state` for the `nth` time (1-based).
    pub fn state_event(&self, state: &str, nth: usize) -> Option<Instant> {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .filter(|l| l.value["event"] == "state" && l.value["state"] == state)
            .nth(nth - 1)
            .map(|l| l.at)
    }

    /// The session's status (ferrolb_bgp::session::PeerStatus as JSON).
    pub fn status(&mut self) -> Result<Value> {
        let before = self.lines.lock().expect("lines").len();
        self.send(&json!({"cmd": "status"}))?;
        let line = wait_until(
            "status",
            Duration::from_secs(5),
            Duration::from_millis(5),
            || {
                self.lines.lock().expect("lines")[before..]
                    .iter()
                    .find(|l| l.value.get("status").is_some())
                    .cloned()
            },
        )?;
        Ok(line.value["status"].clone())
    }

    pub fn state(&mut self) -> Result<String> {
        Ok(self.status()?["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    pub fn wait_state(&mut self, state: &str, timeout: Duration) -> Result<Value> {
        let start = Instant::now();
        loop {
            let s = self.status()?;
            if s["state"] == state {
                return Ok(s);
            }
            if start.elapsed() > timeout {
                return Err(Error::msg(format!(
                    "speaker not {state} after {timeout:?}; status: {s}\nspeaker log:\n{}",
                    crate::util::tail_lines(&self.log(), 30)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls the status until `pred` holds; returns the last status either way after `timeout`.
    pub fn wait_status(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.status()?;
            if pred(&s) || Instant::now() > deadline {
                return Ok(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// States the routes the peer should have (a RouteSpec of the harness).
    pub fn set_routes(&mut self, spec: &Value) -> Result<()> {
        let mut cmd = spec.clone();
        cmd["cmd"] = json!("routes");
        self.send(&cmd)?;
        Ok(())
    }

    /// Cease/Administrative Shutdown with `text`; returns when the speaker has exited.
    pub fn shutdown(mut self, text: &str) -> Result<()> {
        self.send(&json!({"cmd": "shutdown", "text": text}))?;
        self.wait_exit()
    }

    /// Leaves without a NOTIFICATION (graceful restart); returns when the speaker has exited.
    pub fn exit_for_restart(mut self) -> Result<()> {
        self.send(&json!({"cmd": "restart"}))?;
        self.wait_exit()
    }

    fn wait_exit(&mut self) -> Result<()> {
        let child = &mut self.child;
        wait_until(
            "the speaker to exit",
            Duration::from_secs(10),
            Duration::from_millis(10),
            || child.try_wait().ok().flatten(),
        )?;
        Ok(())
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
