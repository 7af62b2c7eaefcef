//! The ferrolb BGP speaker under test: the `bgp-harness` binary (src/bin/bgp-harness.rs) run inside a
//! namespace, driven by JSON lines on stdin, with its JSON lines on stdout collected by a thread and
//! time-stamped on arrival (the benchmark measures from the `Established` event).

use crate::netns::Netns;
use crate::process::JsonProcess;
use crate::util::{Error, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use crate::process::Line;

pub struct Speaker {
    process: JsonProcess,
}

impl std::fmt::Debug for Speaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Speaker").field("pid", &self.pid()).finish()
    }
}

/// Where cargo put the harness binary: next to the running test or benchmark binary.
pub fn harness_binary() -> PathBuf {
    crate::process::sibling_binary("bgp-harness", option_env!("CARGO_BIN_EXE_bgp-harness"))
}

impl Speaker {
    /// Starts the speaker in `ns` with `config` (see the harness's `Config`).
    pub fn start(ns: &Netns, binary: &Path, config: &Value) -> Result<Speaker> {
        Ok(Speaker {
            process: JsonProcess::start(ns, binary, config, "speaker")?,
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The speaker's own log (stderr), for failure messages.
    pub fn log(&self) -> String {
        self.process.log()
    }

    fn send(&mut self, cmd: &Value) -> Result<()> {
        self.process.send(cmd)
    }

    /// All lines so far.
    pub fn lines(&self) -> Vec<Line> {
        self.process.lines()
    }

    /// Waits for a line (seen now or later) matching `pred`, returns it.
    pub fn wait_line(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Line> {
        self.process.wait_line(0, what, timeout, pred)
    }

    /// When the speaker reported reaching `state` for the `nth` time (1-based).
    pub fn state_event(&self, state: &str, nth: usize) -> Option<Instant> {
        self.process
            .lines()
            .into_iter()
            .filter(|l| l.value["event"] == "state" && l.value["state"] == state)
            .nth(nth - 1)
            .map(|l| l.at)
    }

    /// The session's status (ferrolb_bgp::session::PeerStatus as JSON).
    pub fn status(&mut self) -> Result<Value> {
        let before = self.process.seen();
        self.send(&json!({"cmd": "status"}))?;
        let line = self
            .process
            .wait_line(before, "status", Duration::from_secs(5), |v| {
                v.get("status").is_some()
            })?;
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
        self.process.wait_exit().map(drop)
    }
}
