//! Small shared pieces: the harness error type, checked command execution and polling.
//!
//! The error is a plain message on purpose: harness failures are read by humans in test
//! output, so every error carries the command line, exit status and stderr that explain it.

use std::fmt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A harness failure with a human-readable explanation (command, status, stderr, log tails).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    msg: String,
}

impl Error {
    /// Creates an error from any message.
    pub fn msg(msg: impl Into<String>) -> Self {
        Error { msg: msg.into() }
    }

    /// Adds context in front of the message.
    pub fn context(self, ctx: impl fmt::Display) -> Self {
        Error {
            msg: format!("{ctx}: {}", self.msg),
        }
    }

    /// The full message.
    pub fn message(&self) -> &str {
        &self.msg
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::msg(format!("I/O error: {e}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::msg(format!("JSON error: {e}"))
    }
}

/// Result alias used throughout the harness.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Address family (unicast SAFI implied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Afi {
    Ipv4,
    Ipv6,
}

impl Afi {
    /// The family of an address or prefix string (contains `:` → IPv6).
    pub fn of(addr_or_prefix: &str) -> Afi {
        if addr_or_prefix.contains(':') {
            Afi::Ipv6
        } else {
            Afi::Ipv4
        }
    }

    /// `ipv4` / `ipv6`, as in FRR's `show bgp ipv4 unicast` and BIRD channel names.
    pub fn name(self) -> &'static str {
        match self {
            Afi::Ipv4 => "ipv4",
            Afi::Ipv6 => "ipv6",
        }
    }
}

/// Shell-like rendering of a command for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
            s.push_str(&format!(" '{}'", a.replace('\'', "'\\''")));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

/// Runs `cmd` to completion; on a non-zero exit the error names the command and includes
/// stdout and stderr. Returns stdout.
pub(crate) fn run_checked(cmd: &mut Command) -> Result<String> {
    let out = output_of(cmd)?;
    check_output(cmd, &out)
}

/// Like [`run_checked`] but feeds `input` on stdin.
pub(crate) fn run_checked_stdin(cmd: &mut Command, input: &str) -> Result<String> {
    use std::io::Write;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::msg(format!("cannot start `{}`: {e}", describe(cmd))))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    check_output(cmd, &out)
}

pub(crate) fn output_of(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null());
    cmd.output()
        .map_err(|e| Error::msg(format!("cannot start `{}`: {e}", describe(cmd))))
}

fn check_output(cmd: &Command, out: &Output) -> Result<String> {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(Error::msg(format!(
        "`{}` failed ({}): stderr: {} stdout: {}",
        describe(cmd),
        out.status,
        stderr.trim(),
        truncate(stdout.trim(), 2000)
    )))
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... [{} more bytes]", &s[..end], s.len() - end)
}

/// Polls `f` every `interval` until it returns `Some`, or fails after `timeout` with an error
/// naming `what`. `f` is always called at least once, and once more right at the deadline.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Err(Error::msg(format!(
                "timed out after {:.1}s waiting for {what}",
                elapsed.as_secs_f64()
            )));
        }
        thread::sleep(interval.min(timeout - elapsed));
    }
}

/// Last `n` lines of a text file (empty string when it cannot be read).
pub(crate) fn tail_file(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => tail_lines(&String::from_utf8_lossy(&bytes), n),
        Err(_) => String::new(),
    }
}

pub(crate) fn tail_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

/// Sends `sig` to `pid`; false when the process does not exist.
pub(crate) fn signal(pid: u32, sig: libc::c_int) -> bool {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, sig) == 0 }
}

/// Whether a process with this pid exists and is not a zombie.
pub(crate) fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state letter follows the last ')' (comm may contain anything).
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next())
                .unwrap_or("");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

/// Stops a child we spawned: SIGTERM, up to `grace` to exit, then SIGKILL; always reaps it.
pub(crate) fn stop_child(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    signal(child.id(), libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Opens (creating/truncating) a log file for a child's stdout/stderr.
pub(crate) fn log_stdio(path: &Path) -> Result<(Stdio, Stdio)> {
    let f = std::fs::File::create(path)
        .map_err(|e| Error::msg(format!("cannot create {}: {e}", path.display())))?;
    let f2 = f.try_clone()?;
    Ok((Stdio::from(f), Stdio::from(f2)))
}

/// A fresh instance directory `/tmp/flb-<what>-XXXXXX`. Always under /tmp, not $TMPDIR:
/// FRR drops to the `frr` user, which must be able to reach it, and unix socket paths must
/// stay short (108 bytes).
pub(crate) fn instance_dir(what: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("flb-{what}-"))
        .tempdir_in("/tmp")
        .map_err(|e| Error::msg(format!("cannot create instance dir in /tmp: {e}")))
}

/// Whether env var `name` is set to a true-ish value.
pub(crate) fn env_flag(name: &str) -> bool {
    matches!(
        std::env::var(name).as_deref(),
        Ok("1") | Ok("true") | Ok("yes") | Ok("TRUE") | Ok("YES")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_returns_value_or_times_out() {
        let mut n = 0;
        let v = wait_until(
            "n to reach 3",
            Duration::from_secs(5),
            Duration::ZERO,
            || {
                n += 1;
                (n >= 3).then_some(n)
            },
        )
        .unwrap();
        assert_eq!(v, 3);
        let err = wait_until::<()>(
            "never",
            Duration::from_millis(30),
            Duration::from_millis(5),
            || None,
        )
        .unwrap_err();
        assert!(err.message().contains("waiting for never"), "{err}");
    }

    #[test]
    fn run_checked_reports_stderr() {
        let err =
            run_checked(Command::new("sh").args(["-c", "echo oops >&2; exit 3"])).unwrap_err();
        assert!(err.message().contains("oops"), "{err}");
        assert!(err.message().contains("sh -c"), "{err}");
        let out = run_checked_stdin(&mut Command::new("cat"), "hello").unwrap();
        assert_eq!(out, "hello");
    }

    #[test]
    fn tail_and_truncate() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(truncate("abcdef", 3), "abc... [3 more bytes]");
    }
}
