//! GoBGP 3.10 as a reference route feeder for benchmarks (e.g. N /32 routes GoBGP → FRR,
//! to compare with ferrolb doing the same), inside a [`Netns`].
//!
//! Why GoBGP: its gRPC CLI can bulk-load a RIB from an MRT file while the session is
//! administratively down, so a benchmark can measure pure propagation time from
//! `Established` without the cost of building the table. Flow:
//! `start` → `disable_neighbor` → [`Gobgp::load_routes`] (MRT via [`crate::mrt`]) →
//! `enable_neighbor` → wait on the receiver.
//!
//! `gobgp -j neighbor ADDR` JSON (3.10): `state.session_state` is a number (1 idle,
//! 2 connect, 3 active, 4 opensent, 5 openconfirm, 6 established; 0/absent unknown),
//! `state.admin_state` 0 (absent) up / 1 down; per family counters are in
//! `afi_safis[].state.{received,accepted,advertised}`; negotiated timers in
//! `timers.state.{negotiated_hold_time,keepalive_interval}`.
//! GoBGP's connect loop retries no faster than every ~5 s whatever `connect-retry` says,
//! so when the peer can dial, prefer GoBGP listening + passive (see
//! [`GobgpConfig::listen_port`], [`GobgpNeighbor::passive`]).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::Value;

use crate::mrt::{self, MrtPeer, MrtRoute};
use crate::netns::Netns;
use crate::util::{self, run_checked, tail_file, Afi, Error, Result};

/// The GoBGP daemon.
pub const GOBGPD: &str = "/usr/bin/gobgpd";
/// The GoBGP CLI.
pub const GOBGP: &str = "/usr/bin/gobgp";
/// Everything [`Gobgp`] needs, for [`crate::interop_guard!`] / [`crate::guard`].
pub const REQUIRED: [&str; 2] = [GOBGPD, GOBGP];

/// Records repeated at the end of MRT files to survive GoBGP 3.10 dropping the stream tail.
pub const MRT_PAD: usize = 2000;

/// One `[[neighbors]]` entry.
#[derive(Debug, Clone)]
pub struct GobgpNeighbor {
    pub address: String,
    pub peer_as: u32,
    pub passive: bool,
    pub local_address: Option<String>,
    pub remote_port: Option<u16>,
    pub password: Option<String>,
    pub hold_time: Option<u32>,
    pub keepalive_interval: Option<u32>,
    /// `ipv4-unicast`, `ipv6-unicast`.
    pub afi_safis: Vec<String>,
    /// Raw TOML lines appended after the neighbor's tables (start them with a
    /// `[neighbors.xxx.config]` header).
    pub extra: Vec<String>,
}

impl GobgpNeighbor {
    /// A neighbor with the ipv4-unicast family.
    pub fn new(address: &str, peer_as: u32) -> GobgpNeighbor {
        GobgpNeighbor {
            address: address.to_string(),
            peer_as,
            passive: false,
            local_address: None,
            remote_port: None,
            password: None,
            hold_time: None,
            keepalive_interval: None,
            afi_safis: vec!["ipv4-unicast".into()],
            extra: Vec::new(),
        }
    }
    pub fn passive(mut self) -> Self {
        self.passive = true;
        self
    }
    pub fn local_address(mut self, a: &str) -> Self {
        self.local_address = Some(a.to_string());
        self
    }
    pub fn remote_port(mut self, p: u16) -> Self {
        self.remote_port = Some(p);
        self
    }
    pub fn password(mut self, p: &str) -> Self {
        self.password = Some(p.to_string());
        self
    }
    pub fn timers(mut self, keepalive: u32, hold: u32) -> Self {
        self.keepalive_interval = Some(keepalive);
        self.hold_time = Some(hold);
        self
    }
    /// Also enable ipv6-unicast.
    pub fn ipv6(mut self) -> Self {
        if !self.afi_safis.iter().any(|a| a == "ipv6-unicast") {
            self.afi_safis.push("ipv6-unicast".into());
        }
        self
    }
}

/// gobgpd TOML config.
#[derive(Debug, Clone)]
pub struct GobgpConfig {
    pub asn: u32,
    pub router_id: String,
    /// `port` of `[global.config]`: -1 = do not listen (default), else a listen port.
    pub listen_port: i32,
    pub local_addresses: Vec<String>,
    pub neighbors: Vec<GobgpNeighbor>,
    /// Raw TOML appended at the end.
    pub extra: Vec<String>,
}

impl GobgpConfig {
    pub fn new(asn: u32, router_id: &str) -> GobgpConfig {
        GobgpConfig {
            asn,
            router_id: router_id.to_string(),
            listen_port: -1,
            local_addresses: Vec::new(),
            neighbors: Vec::new(),
            extra: Vec::new(),
        }
    }
    pub fn listen_port(mut self, port: i32) -> Self {
        self.listen_port = port;
        self
    }
    pub fn local_address(mut self, a: &str) -> Self {
        self.local_addresses.push(a.to_string());
        self
    }
    pub fn neighbor(mut self, n: GobgpNeighbor) -> Self {
        self.neighbors.push(n);
        self
    }

    /// The TOML text.
    pub fn render(&self) -> String {
        let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let mut c = String::new();
        let _ = writeln!(c, "[global.config]");
        let _ = writeln!(c, "  as = {}", self.asn);
        let _ = writeln!(c, "  router-id = {}", q(&self.router_id));
        let _ = writeln!(c, "  port = {}", self.listen_port);
        if !self.local_addresses.is_empty() {
            let list: Vec<String> = self.local_addresses.iter().map(|a| q(a)).collect();
            let _ = writeln!(c, "  local-address-list = [{}]", list.join(", "));
        }
        for n in &self.neighbors {
            let _ = writeln!(c, "\n[[neighbors]]");
            let _ = writeln!(c, "  [neighbors.config]");
            let _ = writeln!(c, "    neighbor-address = {}", q(&n.address));
            let _ = writeln!(c, "    peer-as = {}", n.peer_as);
            if let Some(p) = &n.password {
                let _ = writeln!(c, "    auth-password = {}", q(p));
            }
            let _ = writeln!(c, "  [neighbors.timers.config]");
            let _ = writeln!(c, "    connect-retry = 1");
            let _ = writeln!(c, "    idle-hold-time-after-reset = 1");
            if let Some(h) = n.hold_time {
                let _ = writeln!(c, "    hold-time = {h}");
            }
            if let Some(k) = n.keepalive_interval {
                let _ = writeln!(c, "    keepalive-interval = {k}");
            }
            let _ = writeln!(c, "  [neighbors.transport.config]");
            let _ = writeln!(c, "    passive-mode = {}", n.passive);
            if let Some(a) = &n.local_address {
                let _ = writeln!(c, "    local-address = {}", q(a));
            }
            if let Some(p) = n.remote_port {
                let _ = writeln!(c, "    remote-port = {p}");
            }
            for afi in &n.afi_safis {
                let _ = writeln!(c, "  [[neighbors.afi-safis]]");
                let _ = writeln!(c, "    [neighbors.afi-safis.config]");
                let _ = writeln!(c, "      afi-safi-name = {}", q(afi));
            }
            for l in &n.extra {
                let _ = writeln!(c, "  {l}");
            }
        }
        for l in &self.extra {
            let _ = writeln!(c, "{l}");
        }
        c
    }
}

/// GoBGP session states as `gobgp -j` reports them (`state.session_state`).
pub fn session_state_name(n: u64) -> &'static str {
    match n {
        1 => "idle",
        2 => "connect",
        3 => "active",
        4 => "opensent",
        5 => "openconfirm",
        6 => "established",
        _ => "unknown",
    }
}

/// A running gobgpd. Dropping it stops the daemon and removes its directory.
pub struct Gobgp {
    ns: Netns,
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    child: Option<Child>,
    cfg: GobgpConfig,
}

impl std::fmt::Debug for Gobgp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gobgp")
            .field("ns", &self.ns)
            .field("dir", &self.path)
            .finish()
    }
}

impl Gobgp {
    /// Checks the config (`gobgpd -d`), starts gobgpd in `ns` with its gRPC API on a unix
    /// socket in its own dir, and waits until the CLI answers.
    pub fn start(ns: &Netns, cfg: &GobgpConfig) -> Result<Gobgp> {
        let dir = util::instance_dir("gobgp")?;
        let path = dir.path().to_path_buf();
        let conf = path.join("gobgpd.toml");
        let text = cfg.render();
        std::fs::write(&conf, &text)?;
        let check = run_checked(
            Command::new(GOBGPD)
                .args(["-d", "-t", "toml", "-f"])
                .arg(&conf),
        )
        .map_err(|e| e.context(format!("GoBGP rejected its config:\n{text}\n")))?;
        if check.contains("level=error") || check.contains("\"level\":\"error\"") {
            return Err(Error::msg(format!(
                "GoBGP rejected its config: {check}\n{text}"
            )));
        }
        let mut g = Gobgp {
            ns: ns.clone(),
            dir: Some(dir),
            path,
            child: None,
            cfg: cfg.clone(),
        };
        let args = [
            GOBGPD.to_string(),
            "-f".into(),
            conf.to_string_lossy().into_owned(),
            "-t".into(),
            "toml".into(),
            "--api-hosts".into(),
            format!("unix://{}", g.socket().display()),
            "--pprof-disable".into(),
            "-p".into(),
        ];
        g.child = Some(ns.spawn_logged(&args, &g.path.join("gobgpd.log"))?);
        let res = util::wait_until(
            "gobgpd to answer",
            Duration::from_secs(15),
            Duration::from_millis(50),
            || {
                if g.socket().exists() && g.gobgp(&["global"]).is_ok() {
                    return Some(Ok(()));
                }
                match g.child.as_mut().map(Child::try_wait) {
                    Some(Ok(Some(st))) => Some(Err(Error::msg(format!("gobgpd exited ({st})")))),
                    _ => None,
                }
            },
        );
        res.and_then(|r| r).map_err(|e| {
            Error::msg(format!(
                "gobgpd failed to start in {}: {e}\n--- gobgpd.log ---\n{}",
                ns.name(),
                g.log_tail(30)
            ))
        })?;
        Ok(g)
    }

    /// The gRPC unix socket.
    pub fn socket(&self) -> PathBuf {
        self.path.join("gobgp.sock")
    }

    pub fn dir(&self) -> &Path {
        &self.path
    }

    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    pub fn config(&self) -> &GobgpConfig {
        &self.cfg
    }

    /// gobgpd's pid (for [`crate::proc_stats`]).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Runs `gobgp --target unix://SOCK args...`; stdout on success.
    pub fn gobgp(&self, args: &[&str]) -> Result<String> {
        run_checked(
            Command::new(GOBGP)
                .arg("--target")
                .arg(format!("unix://{}", self.socket().display()))
                .args(args),
        )
    }

    /// Runs `gobgp -j args...` and parses the JSON.
    pub fn gobgp_json(&self, args: &[&str]) -> Result<Value> {
        let mut a = vec!["-j"];
        a.extend_from_slice(args);
        let out = self.gobgp(&a)?;
        serde_json::from_str(&out).map_err(|e| {
            Error::msg(format!(
                "gobgp {args:?}: bad JSON ({e}): {}",
                util::truncate(&out, 500)
            ))
        })
    }

    /// `gobgp -j neighbor ADDR`.
    pub fn neighbor_json(&self, addr: &str) -> Result<Value> {
        self.gobgp_json(&["neighbor", addr])
    }

    /// Session state name (`established`, `active`, `idle`, ...).
    pub fn neighbor_state(&self, addr: &str) -> Result<&'static str> {
        let v = self.neighbor_json(addr)?;
        let n = v
            .pointer("/state/session_state")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Ok(session_state_name(n))
    }

    /// Administratively shuts the session down (`gobgp neighbor ADDR disable`).
    pub fn disable_neighbor(&self, addr: &str) -> Result<()> {
        self.gobgp(&["neighbor", addr, "disable"]).map(|_| ())
    }

    /// Re-enables the session.
    pub fn enable_neighbor(&self, addr: &str) -> Result<()> {
        self.gobgp(&["neighbor", addr, "enable"]).map(|_| ())
    }

    /// Waits until the session is in `state` (e.g. `established`).
    pub fn wait_state(&self, addr: &str, state: &str, timeout: Duration) -> Result<()> {
        util::wait_until(
            &format!("GoBGP neighbor {addr} {state}"),
            timeout,
            Duration::from_millis(100),
            || (self.neighbor_state(addr).ok() == Some(state)).then_some(()),
        )
        .map_err(|e| e.context(format!("gobgpd.log tail:\n{}\n", self.log_tail(20))))
    }

    /// Number of destinations in the global RIB (`gobgp -j global rib summary -a ipv4`).
    pub fn global_rib_count(&self, afi: Afi) -> Result<u64> {
        let v = self.gobgp_json(&["global", "rib", "summary", "-a", afi.name()])?;
        Ok(v.get("num_destination")
            .and_then(Value::as_u64)
            .unwrap_or(0))
    }

    /// `gobgp global rib add PREFIX [nexthop NH]` (one process per route: only for a few).
    pub fn add_route(&self, prefix: &str, next_hop: Option<&str>) -> Result<()> {
        let mut args = vec!["global", "rib", "add", prefix];
        if Afi::of(prefix) == Afi::Ipv6 {
            args.extend(["-a", "ipv6"]);
        }
        if let Some(nh) = next_hop {
            args.extend(["nexthop", nh]);
        }
        self.gobgp(&args).map(|_| ())
    }

    /// `gobgp mrt inject global FILE`.
    pub fn inject_mrt(&self, file: &Path) -> Result<()> {
        let f = file.to_string_lossy();
        self.gobgp(&["mrt", "inject", "global", &f]).map(|_| ())
    }

    /// Loads `routes` into the global RIB through an MRT file (padded, see [`crate::mrt`])
    /// and waits until the RIB holds `expected_total` destinations of the routes' family,
    /// re-injecting (idempotent) if GoBGP lost records. Load while the neighbor is
    /// disabled to time propagation separately.
    pub fn load_routes(&self, routes: &[MrtRoute], expected_total: u64) -> Result<()> {
        let Some(first) = routes.first() else {
            return Ok(());
        };
        let afi = if first.prefix.is_ipv4() {
            Afi::Ipv4
        } else {
            Afi::Ipv6
        };
        let rid: Ipv4Addr = self.cfg.router_id.parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
        let peer = MrtPeer {
            bgp_id: rid,
            addr: IpAddr::V4(rid),
            asn: self.cfg.asn,
        };
        let file = self.path.join("routes.mrt");
        mrt::write_rib_file(&file, &peer, routes, MRT_PAD)?;
        let mut last = 0;
        for attempt in 0..3 {
            self.inject_mrt(&file)?;
            // The CLI returns once the stream is sent; the server may still be applying it.
            let mut stable = 0;
            let res = util::wait_until(
                &format!("GoBGP global RIB to hold {expected_total} routes"),
                Duration::from_secs(120),
                Duration::from_millis(200),
                || {
                    let n = self.global_rib_count(afi).ok()?;
                    if n >= expected_total {
                        return Some(true);
                    }
                    stable = if n == last { stable + 1 } else { 0 };
                    last = n;
                    // No progress for ~2 s: give up on this attempt.
                    (stable >= 10).then_some(false)
                },
            )?;
            if res {
                return Ok(());
            }
            eprintln!(
                "gobgp mrt inject attempt {attempt}: RIB has {last} of {expected_total}, re-injecting"
            );
        }
        Err(Error::msg(format!(
            "GoBGP RIB has {last} routes after 3 MRT injections, expected {expected_total}"
        )))
    }

    /// Convenience: `n` /32 routes from `start` (bulk data: 100.64.0.0/10) with next hop
    /// `next_hop`; see [`Gobgp::load_routes`]. With `0.0.0.0` GoBGP sends next-hop-self
    /// (its session address) to each peer; any other address is passed through unchanged,
    /// even to eBGP peers.
    pub fn load_host_routes_v4(&self, start: Ipv4Addr, n: u32, next_hop: Ipv4Addr) -> Result<()> {
        let before = self.global_rib_count(Afi::Ipv4)?;
        let routes = mrt::host_routes_v4(start, n, next_hop);
        self.load_routes(&routes, before + u64::from(n))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path.join("gobgpd.log")).unwrap_or_default()
    }

    pub fn log_tail(&self, n: usize) -> String {
        tail_file(&self.path.join("gobgpd.log"), n)
    }

    /// Stops gobgpd now (also done on drop).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            util::stop_child(&mut c, Duration::from_secs(3));
        }
    }
}

impl Drop for Gobgp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- GoBGP {} (ns {}) log tail ---\n{}",
                self.path.display(),
                self.ns.name(),
                self.log_tail(30)
            );
        }
        self.stop();
        if let Some(d) = self.dir.take() {
            if util::env_flag("FERROLB_KEEP_DIRS") {
                eprintln!("keeping GoBGP dir {}", d.keep().display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_toml() {
        let c = GobgpConfig::new(64510, "198.51.100.10")
            .local_address("198.51.100.10")
            .neighbor(
                GobgpNeighbor::new("198.51.100.1", 64501)
                    .passive()
                    .remote_port(1790),
            )
            .render();
        for l in [
            "[global.config]",
            "  as = 64510",
            "  router-id = \"198.51.100.10\"",
            "  port = -1",
            "  local-address-list = [\"198.51.100.10\"]",
            "[[neighbors]]",
            "    neighbor-address = \"198.51.100.1\"",
            "    peer-as = 64501",
            "    connect-retry = 1",
            "    idle-hold-time-after-reset = 1",
            "    passive-mode = true",
            "    remote-port = 1790",
            "      afi-safi-name = \"ipv4-unicast\"",
        ] {
            assert!(c.contains(&format!("{l}\n")), "missing {l:?} in\n{c}");
        }
        assert_eq!(session_state_name(6), "established");
    }
}
