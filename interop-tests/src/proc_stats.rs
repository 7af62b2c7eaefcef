//! CPU time and memory of a process from /proc, for benchmarks that compare ferrolb with
//! reference routers (e.g. the CPU seconds GoBGP or FRR spend on 100k routes).

use crate::util::{Error, Result};

/// Resource usage of one process at the moment of reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcStats {
    /// utime + stime in seconds (this process only, not reaped children).
    pub cpu_seconds: f64,
    /// Peak resident set size (`VmHWM`) in KiB.
    pub peak_rss_kib: u64,
    /// Current resident set size (`VmRSS`) in KiB.
    pub rss_kib: u64,
}

/// Reads [`ProcStats`] for `pid`.
pub fn read(pid: u32) -> Result<ProcStats> {
    let status = read_status(pid)?;
    let kib = |key| {
        parse_status_kib(&status, key)
            .ok_or_else(|| Error::msg(format!("/proc/{pid}/status: no {key}")))
    };
    Ok(ProcStats {
        cpu_seconds: cpu_seconds(pid)?,
        peak_rss_kib: kib("VmHWM")?,
        rss_kib: kib("VmRSS")?,
    })
}

/// utime + stime of `pid` in seconds (from /proc/PID/stat, scaled by `_SC_CLK_TCK`).
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| Error::msg(format!("/proc/{pid}/stat: {e}")))?;
    let ticks = parse_stat_ticks(&stat)
        .ok_or_else(|| Error::msg(format!("/proc/{pid}/stat: unexpected format")))?;
    Ok(ticks as f64 / clk_tck())
}

/// Peak RSS (`VmHWM`) of `pid` in bytes.
pub fn peak_rss_bytes(pid: u32) -> Result<u64> {
    Ok(status_kib(pid, "VmHWM")? * 1024)
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime in clock ticks. Fields are counted after the last `)` because the command
/// name (field 2) may contain spaces and parentheses.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

fn read_status(pid: u32) -> Result<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| Error::msg(format!("/proc/{pid}/status: {e}")))
}

fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let status = read_status(pid)?;
    parse_status_kib(&status, key)
        .ok_or_else(|| Error::msg(format!("/proc/{pid}/status: no {key}")))
}

fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if k != key {
            return None;
        }
        v.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_comm() {
        let stat =
            "1234 (a) b (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 3 4 20 0 1 0 9 1000 10";
        assert_eq!(parse_stat_ticks(stat), Some(300));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn parses_status() {
        let s = "Name:\tbgpd\nVmPeak:\t  10 kB\nVmHWM:\t   5120 kB\nVmRSS:\t   4096 kB\n";
        assert_eq!(parse_status_kib(s, "VmHWM"), Some(5120));
        assert_eq!(parse_status_kib(s, "VmRSS"), Some(4096));
        assert_eq!(parse_status_kib(s, "VmSwap"), None);
    }

    #[test]
    fn reads_own_process() {
        // Burn a little CPU so the counter is non-zero on any clock.
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let s = read(std::process::id()).unwrap();
        assert!(s.cpu_seconds > 0.0, "{s:?}");
        assert!(s.peak_rss_kib >= s.rss_kib && s.rss_kib > 0, "{s:?}");
        assert!(read(u32::MAX).is_err());
    }
}
