//! FRR 8.4 (bgpd, optionally zebra) as a test peer inside a [`Netns`].
//!
//! Why this shape: FRR is the router ferrolb most often peers with, and its `vtysh ... json`
//! output lets tests assert on exactly what FRR received (state, prefixes, attributes,
//! notifications). Each instance lives in its own directory (config, vty sockets, zserv
//! socket, pid files, logs) so several instances can run at once, even in one namespace.
//!
//! Traps handled here:
//! - FRR refuses to run as root: the instance dir is `chown frr:frr`.
//! - Daemons read `/etc/frr/*.conf` unless given `-f`: both get an explicit config file.
//! - Unknown config lines are only logged: [`Frr::start`] dry-runs the config (`bgpd -C`)
//!   and fails on any "No such command on config line".
//! - RFC 8212: the rendered config always has `no bgp ebgp-requires-policy`.
//! - `bgpd -l ADDR` implies `-n` (no kernel install): with [`FrrConfig::listen_addr`] routes
//!   never reach the kernel even with zebra.
//!
//! JSON field names (FRR 8.4.4, found by experiment):
//! - `show bgp summary json`: `ipv4Unicast`/`ipv6Unicast` → `peers` → ADDR →
//!   `state` (`Established`, `Active`, `Connect`, `Idle`, `Idle (Admin)`), `pfxRcd`, `pfxSnt`,
//!   `remoteAs`, `peerUptimeMsec`, `connectionsEstablished`, `connectionsDropped`;
//!   per family `ribCount` (radix-tree nodes, not prefixes!).
//! - `show bgp ipv4 unicast statistics json`: `ipv4Unicast[0].totalPrefixes` (prefix count).
//! - `show bgp ipv4 unicast json detail` / `show bgp ipv4 unicast PREFIX json`, per path:
//!   `aspath.string` (`"64502 64510"`, `"Local"` for own routes) and `aspath.segments[]`
//!   (`type` `as-sequence`/`as-set`, `list`), `community.string` (`"64502:100 no-export"`)
//!   and `community.list` (`["64502:100","noExport"]`), `largeCommunity.string`/`.list`
//!   (`"64502:1:2"`), `locPrf` (local pref, only when set/received), `metric` (MED),
//!   `origin`, `valid`, `bestpath.overall`, `nexthops[]` (`ip`, `afi`, `scope`
//!   `global`/`link-local` for IPv6, `used`, `accessible`), `peer.peerId`,
//!   `peer.routerId`. In `json detail` table output each prefix's array starts with a header
//!   object (`prefix`, `version`, `advertisedTo`) before the path objects. The plain
//!   `show bgp ipv4 unicast json` table has `path` (AS path string), `locPrf`, `metric`,
//!   `nexthops[].ip` but no communities.
//! - `show bgp neighbors ADDR json` → ADDR → `bgpState`, `lastNotificationReason`
//!   (`"Cease/Administrative Shutdown"`), `lastErrorCodeSubcode` (`"0602"`),
//!   `lastResetDueTo` (`"BGP Notification received"`), `lastResetCode`,
//!   `lastNotificationHardReset`, `bgpTimerHoldTimeMsecs`, `bgpTimerKeepAliveIntervalMsecs`,
//!   `remoteRouterId`, `hostLocal`/`portLocal`/`hostForeign`/`portForeign`; an unknown
//!   neighbor gives `{"bgpNoSuchNeighbor":true}`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::Value;

use crate::netns::Netns;
use crate::util::{self, run_checked, tail_file, Afi, Error, Result};

/// Path of FRR's bgpd.
pub const BGPD: &str = "/usr/lib/frr/bgpd";
/// Path of FRR's zebra.
pub const ZEBRA: &str = "/usr/lib/frr/zebra";
/// vtysh (found in PATH).
pub const VTYSH: &str = "vtysh";
/// Everything [`Frr`] needs, for [`crate::interop_guard!`] / [`crate::guard`].
pub const REQUIRED: [&str; 3] = [BGPD, ZEBRA, "/usr/bin/vtysh"];

/// One `neighbor` of an [`FrrConfig`]. Defaults: no families (call [`FrrNeighbor::ipv4`] /
/// [`FrrNeighbor::ipv6`]), `timers connect 1` and `advertisement-interval 0` so tests are fast.
#[derive(Debug, Clone)]
pub struct FrrNeighbor {
    pub addr: String,
    /// `64502`, or `external` / `internal`.
    pub remote_as: String,
    pub password: Option<String>,
    pub passive: bool,
    /// `neighbor X port N`: dial the peer on a non-standard port.
    pub port: Option<u16>,
    /// `(keepalive, hold)` in seconds.
    pub timers: Option<(u16, u16)>,
    pub connect_retry: Option<u16>,
    pub advertisement_interval: Option<u16>,
    pub ebgp_multihop: Option<u8>,
    /// `neighbor X ttl-security hops N` (GTSM).
    pub ttl_security: Option<u8>,
    pub update_source: Option<String>,
    pub ipv4: bool,
    pub ipv6: bool,
    /// Raw lines emitted as `neighbor ADDR <line>` under `router bgp`.
    pub extra: Vec<String>,
    /// Raw lines emitted as `neighbor ADDR <line>` inside each activated address family
    /// (e.g. `route-map IN in`, `addpath-tx-all-paths`).
    pub extra_af: Vec<String>,
}

impl FrrNeighbor {
    pub fn new(addr: &str, remote_as: impl ToString) -> FrrNeighbor {
        FrrNeighbor {
            addr: addr.to_string(),
            remote_as: remote_as.to_string(),
            password: None,
            passive: false,
            port: None,
            timers: None,
            connect_retry: Some(1),
            advertisement_interval: Some(0),
            ebgp_multihop: None,
            ttl_security: None,
            update_source: None,
            ipv4: false,
            ipv6: false,
            extra: Vec::new(),
            extra_af: Vec::new(),
        }
    }
    /// Activate IPv4 unicast.
    pub fn ipv4(mut self) -> Self {
        self.ipv4 = true;
        self
    }
    /// Activate IPv6 unicast.
    pub fn ipv6(mut self) -> Self {
        self.ipv6 = true;
        self
    }
    pub fn password(mut self, p: &str) -> Self {
        self.password = Some(p.to_string());
        self
    }
    pub fn passive(mut self) -> Self {
        self.passive = true;
        self
    }
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
    pub fn timers(mut self, keepalive: u16, hold: u16) -> Self {
        self.timers = Some((keepalive, hold));
        self
    }
    /// `timers connect N`; `None` keeps FRR's default (120 s).
    pub fn connect_retry(mut self, secs: Option<u16>) -> Self {
        self.connect_retry = secs;
        self
    }
    /// `advertisement-interval N`; `None` keeps FRR's default.
    pub fn advertisement_interval(mut self, secs: Option<u16>) -> Self {
        self.advertisement_interval = secs;
        self
    }
    pub fn ebgp_multihop(mut self, ttl: u8) -> Self {
        self.ebgp_multihop = Some(ttl);
        self
    }
    pub fn ttl_security(mut self, hops: u8) -> Self {
        self.ttl_security = Some(hops);
        self
    }
    pub fn update_source(mut self, src: &str) -> Self {
        self.update_source = Some(src.to_string());
        self
    }
    pub fn extra(mut self, line: &str) -> Self {
        self.extra.push(line.to_string());
        self
    }
    pub fn extra_af(mut self, line: &str) -> Self {
        self.extra_af.push(line.to_string());
        self
    }
}

/// Configuration of one FRR instance: bgpd.conf content plus daemon options.
#[derive(Debug, Clone)]
pub struct FrrConfig {
    pub asn: u32,
    pub router_id: String,
    pub hostname: String,
    pub neighbors: Vec<FrrNeighbor>,
    /// `network P` under `address-family ipv4 unicast` (import-check is off, so they are
    /// announced without a matching route).
    pub networks_v4: Vec<String>,
    pub networks_v6: Vec<String>,
    /// `maximum-paths N` (eBGP ECMP) in both families.
    pub maximum_paths: Option<u16>,
    /// `maximum-paths ibgp N` in both families.
    pub maximum_paths_ibgp: Option<u16>,
    /// Start zebra too, so best routes are installed in the namespace's kernel table.
    pub zebra: bool,
    /// bgpd `-p PORT` (0 = do not listen). Default 179 (private namespace).
    pub listen_port: Option<u16>,
    /// bgpd `-l ADDR` (repeatable). Note: implies `-n`, no kernel install.
    pub listen_addrs: Vec<String>,
    /// Raw lines inside `router bgp`, before the address families (`bgp graceful-restart`,
    /// `bgp bestpath as-path multipath-relax`, ...).
    pub extra_global: Vec<String>,
    pub extra_af_v4: Vec<String>,
    pub extra_af_v6: Vec<String>,
    /// Raw top-level lines after `router bgp` (route-maps, prefix-lists, debug commands).
    pub extra_config: Vec<String>,
    /// Fail [`Frr::start`] when bgpd reports config lines it does not understand (default).
    pub strict_config: bool,
}

impl FrrConfig {
    pub fn new(asn: u32, router_id: &str) -> FrrConfig {
        FrrConfig {
            asn,
            router_id: router_id.to_string(),
            hostname: format!("frr{asn}"),
            neighbors: Vec::new(),
            networks_v4: Vec::new(),
            networks_v6: Vec::new(),
            maximum_paths: None,
            maximum_paths_ibgp: None,
            zebra: false,
            listen_port: None,
            listen_addrs: Vec::new(),
            extra_global: Vec::new(),
            extra_af_v4: Vec::new(),
            extra_af_v6: Vec::new(),
            extra_config: Vec::new(),
            strict_config: true,
        }
    }
    pub fn neighbor(mut self, n: FrrNeighbor) -> Self {
        self.neighbors.push(n);
        self
    }
    pub fn network_v4(mut self, prefix: &str) -> Self {
        self.networks_v4.push(prefix.to_string());
        self
    }
    pub fn network_v6(mut self, prefix: &str) -> Self {
        self.networks_v6.push(prefix.to_string());
        self
    }
    pub fn maximum_paths(mut self, n: u16) -> Self {
        self.maximum_paths = Some(n);
        self
    }
    pub fn maximum_paths_ibgp(mut self, n: u16) -> Self {
        self.maximum_paths_ibgp = Some(n);
        self
    }
    /// Also run zebra (kernel route installation).
    pub fn with_zebra(mut self) -> Self {
        self.zebra = true;
        self
    }
    pub fn listen_port(mut self, port: u16) -> Self {
        self.listen_port = Some(port);
        self
    }
    pub fn listen_addr(mut self, addr: &str) -> Self {
        self.listen_addrs.push(addr.to_string());
        self
    }
    pub fn global_line(mut self, line: &str) -> Self {
        self.extra_global.push(line.to_string());
        self
    }
    pub fn af_v4_line(mut self, line: &str) -> Self {
        self.extra_af_v4.push(line.to_string());
        self
    }
    pub fn af_v6_line(mut self, line: &str) -> Self {
        self.extra_af_v6.push(line.to_string());
        self
    }
    pub fn config_line(mut self, line: &str) -> Self {
        self.extra_config.push(line.to_string());
        self
    }

    /// The bgpd.conf text.
    pub fn render(&self) -> String {
        let mut c = String::new();
        let _ = writeln!(c, "frr defaults traditional");
        let _ = writeln!(c, "hostname {}", self.hostname);
        let _ = writeln!(c, "log timestamp precision 3");
        let _ = writeln!(c, "debug bgp neighbor-events");
        let _ = writeln!(c, "!");
        let _ = writeln!(c, "router bgp {}", self.asn);
        let _ = writeln!(c, " bgp router-id {}", self.router_id);
        let _ = writeln!(c, " no bgp ebgp-requires-policy");
        let _ = writeln!(c, " no bgp default ipv4-unicast");
        let _ = writeln!(c, " no bgp network import-check");
        for l in &self.extra_global {
            let _ = writeln!(c, " {l}");
        }
        for n in &self.neighbors {
            let a = &n.addr;
            let _ = writeln!(c, " neighbor {a} remote-as {}", n.remote_as);
            if let Some(p) = &n.password {
                let _ = writeln!(c, " neighbor {a} password {p}");
            }
            if n.passive {
                let _ = writeln!(c, " neighbor {a} passive");
            }
            if let Some(p) = n.port {
                let _ = writeln!(c, " neighbor {a} port {p}");
            }
            if let Some((k, h)) = n.timers {
                let _ = writeln!(c, " neighbor {a} timers {k} {h}");
            }
            if let Some(t) = n.connect_retry {
                let _ = writeln!(c, " neighbor {a} timers connect {t}");
            }
            if let Some(t) = n.advertisement_interval {
                let _ = writeln!(c, " neighbor {a} advertisement-interval {t}");
            }
            if let Some(t) = n.ebgp_multihop {
                let _ = writeln!(c, " neighbor {a} ebgp-multihop {t}");
            }
            if let Some(t) = n.ttl_security {
                let _ = writeln!(c, " neighbor {a} ttl-security hops {t}");
            }
            if let Some(s) = &n.update_source {
                let _ = writeln!(c, " neighbor {a} update-source {s}");
            }
            for l in &n.extra {
                let _ = writeln!(c, " neighbor {a} {l}");
            }
        }
        for afi in [Afi::Ipv4, Afi::Ipv6] {
            let (networks, extra) = match afi {
                Afi::Ipv4 => (&self.networks_v4, &self.extra_af_v4),
                Afi::Ipv6 => (&self.networks_v6, &self.extra_af_v6),
            };
            let active: Vec<&FrrNeighbor> = self
                .neighbors
                .iter()
                .filter(|n| match afi {
                    Afi::Ipv4 => n.ipv4,
                    Afi::Ipv6 => n.ipv6,
                })
                .collect();
            if active.is_empty() && networks.is_empty() && extra.is_empty() {
                continue;
            }
            let _ = writeln!(c, " !");
            let _ = writeln!(c, " address-family {} unicast", afi.name());
            for p in networks {
                let _ = writeln!(c, "  network {p}");
            }
            if let Some(m) = self.maximum_paths {
                let _ = writeln!(c, "  maximum-paths {m}");
            }
            if let Some(m) = self.maximum_paths_ibgp {
                let _ = writeln!(c, "  maximum-paths ibgp {m}");
            }
            for n in active {
                let _ = writeln!(c, "  neighbor {} activate", n.addr);
                for l in &n.extra_af {
                    let _ = writeln!(c, "  neighbor {} {l}", n.addr);
                }
            }
            for l in extra {
                let _ = writeln!(c, "  {l}");
            }
            let _ = writeln!(c, " exit-address-family");
        }
        let _ = writeln!(c, "exit");
        let _ = writeln!(c, "!");
        for l in &self.extra_config {
            let _ = writeln!(c, "{l}");
        }
        let _ = writeln!(c, "!");
        c
    }
}

/// One peer line of `show bgp summary json`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FrrPeerSummary {
    /// `Established`, `Active`, `Connect`, `OpenSent`, `Idle`, `Idle (Admin)`, ...
    pub state: String,
    pub pfx_rcd: u64,
    pub pfx_snt: u64,
    pub remote_as: u64,
    pub uptime_msec: u64,
    pub connections_established: u64,
    pub connections_dropped: u64,
}

/// Per-family peers from `show bgp summary json`, keyed by neighbor address.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FrrSummary {
    pub ipv4: BTreeMap<String, FrrPeerSummary>,
    pub ipv6: BTreeMap<String, FrrPeerSummary>,
    /// `ribCount` per family: radix-tree nodes of the BGP table (internal nodes included, so
    /// NOT the prefix count; use [`Frr::route_count`]).
    pub rib_count_v4: Option<u64>,
    pub rib_count_v6: Option<u64>,
}

impl FrrSummary {
    /// Parses `show bgp summary json`.
    pub fn parse(v: &Value) -> FrrSummary {
        let fam = |key: &str| -> (BTreeMap<String, FrrPeerSummary>, Option<u64>) {
            let Some(f) = v.get(key) else {
                return (BTreeMap::new(), None);
            };
            let peers = f
                .get("peers")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(addr, p)| {
                            let n = |k: &str| p.get(k).and_then(Value::as_u64).unwrap_or(0);
                            (
                                addr.clone(),
                                FrrPeerSummary {
                                    state: p
                                        .get("state")
                                        .and_then(Value::as_str)
                                        .unwrap_or("")
                                        .to_string(),
                                    pfx_rcd: n("pfxRcd"),
                                    pfx_snt: n("pfxSnt"),
                                    remote_as: n("remoteAs"),
                                    uptime_msec: n("peerUptimeMsec"),
                                    connections_established: n("connectionsEstablished"),
                                    connections_dropped: n("connectionsDropped"),
                                },
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            (peers, f.get("ribCount").and_then(Value::as_u64))
        };
        let (ipv4, rib_count_v4) = fam("ipv4Unicast");
        let (ipv6, rib_count_v6) = fam("ipv6Unicast");
        FrrSummary {
            ipv4,
            ipv6,
            rib_count_v4,
            rib_count_v6,
        }
    }

    /// The peer in either family (IPv4 table first).
    pub fn peer(&self, addr: &str) -> Option<&FrrPeerSummary> {
        self.ipv4.get(addr).or_else(|| self.ipv6.get(addr))
    }

    pub fn family(&self, afi: Afi) -> &BTreeMap<String, FrrPeerSummary> {
        match afi {
            Afi::Ipv4 => &self.ipv4,
            Afi::Ipv6 => &self.ipv6,
        }
    }
}

/// The interesting parts of `show bgp neighbors ADDR json`; `raw` has everything.
#[derive(Debug, Clone, PartialEq)]
pub struct FrrNeighborInfo {
    pub state: String,
    /// `lastNotificationReason`, e.g. `Cease/Administrative Shutdown`.
    pub last_notification: Option<String>,
    /// `lastErrorCodeSubcode`, e.g. `0602` (code 6, subcode 2).
    pub last_error_code_subcode: Option<String>,
    /// `lastResetDueTo`, e.g. `BGP Notification received`, `Hold Timer Expired`.
    pub last_reset_reason: Option<String>,
    pub hold_time_ms: Option<u64>,
    pub keepalive_ms: Option<u64>,
    pub remote_router_id: Option<String>,
    pub connections_established: u64,
    pub connections_dropped: u64,
    pub raw: Value,
}

impl FrrNeighborInfo {
    pub fn parse(raw: Value) -> FrrNeighborInfo {
        let s = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_string);
        let n = |k: &str| raw.get(k).and_then(Value::as_u64);
        FrrNeighborInfo {
            state: s("bgpState").unwrap_or_default(),
            last_notification: s("lastNotificationReason"),
            last_error_code_subcode: s("lastErrorCodeSubcode"),
            last_reset_reason: s("lastResetDueTo"),
            hold_time_ms: n("bgpTimerHoldTimeMsecs"),
            keepalive_ms: n("bgpTimerKeepAliveIntervalMsecs"),
            remote_router_id: s("remoteRouterId"),
            connections_established: n("connectionsEstablished").unwrap_or(0),
            connections_dropped: n("connectionsDropped").unwrap_or(0),
            raw,
        }
    }
}

/// One path of a prefix in FRR's BGP table (from the detailed JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct FrrPath {
    /// AS path as text (`"64502 64510"`, `{..}` for sets); empty for locally originated.
    pub as_path: String,
    /// ASNs of all segments, in order (sets flattened).
    pub as_path_list: Vec<u32>,
    /// First next hop (for IPv6 the global one).
    pub next_hop: String,
    /// All next hops (IPv6: global then link-local).
    pub next_hops: Vec<String>,
    /// `community.string` split on spaces: `64502:100`, `no-export`, `graceful-shutdown`, ...
    pub communities: Vec<String>,
    /// `64502:1:2` form.
    pub large_communities: Vec<String>,
    /// `locPrf` (absent on eBGP-learned routes unless set by policy).
    pub local_pref: Option<u32>,
    /// `metric` (MED).
    pub med: Option<u32>,
    /// `IGP`, `EGP`, `incomplete`.
    pub origin: String,
    pub valid: bool,
    pub best: bool,
    /// `peer.peerId`: the neighbor address the path came from (`0.0.0.0` when local).
    pub peer: Option<String>,
    pub raw: Value,
}

impl FrrPath {
    /// Parses one path object of the detailed JSON.
    pub fn parse(p: &Value) -> FrrPath {
        let aspath = p.get("aspath");
        let mut as_path = aspath
            .and_then(|a| a.get("string"))
            .and_then(Value::as_str)
            .or_else(|| p.get("path").and_then(Value::as_str))
            .unwrap_or("")
            .to_string();
        if as_path == "Local" {
            as_path.clear();
        }
        let as_path_list = aspath
            .and_then(|a| a.get("segments"))
            .and_then(Value::as_array)
            .map(|segs| {
                segs.iter()
                    .filter_map(|s| s.get("list").and_then(Value::as_array))
                    .flatten()
                    .filter_map(|x| x.as_u64().map(|x| x as u32))
                    .collect()
            })
            .unwrap_or_else(|| {
                as_path
                    .split(|c: char| !c.is_ascii_digit())
                    .filter_map(|t| t.parse().ok())
                    .collect()
            });
        let next_hops: Vec<String> = p
            .get("nexthops")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.get("ip").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let strs = |key: &str| -> Vec<String> {
            p.get(key)
                .and_then(|c| c.get("string"))
                .and_then(Value::as_str)
                .map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        let best = match p.get("bestpath") {
            Some(Value::Bool(b)) => *b,
            Some(o) => o.get("overall").and_then(Value::as_bool).unwrap_or(false),
            None => false,
        };
        FrrPath {
            as_path,
            as_path_list,
            next_hop: next_hops.first().cloned().unwrap_or_default(),
            next_hops,
            communities: strs("community"),
            large_communities: strs("largeCommunity"),
            local_pref: p.get("locPrf").and_then(Value::as_u64).map(|x| x as u32),
            med: p.get("metric").and_then(Value::as_u64).map(|x| x as u32),
            origin: p
                .get("origin")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            valid: p.get("valid").and_then(Value::as_bool).unwrap_or(false),
            best,
            peer: p
                .get("peer")
                .and_then(|x| x.get("peerId"))
                .or_else(|| p.get("peerId"))
                .and_then(Value::as_str)
                .map(str::to_string),
            raw: p.clone(),
        }
    }
}

/// Parses `show bgp <afi> unicast json detail` into prefix → paths.
pub fn parse_detail_table(v: &Value) -> BTreeMap<String, Vec<FrrPath>> {
    let mut out = BTreeMap::new();
    if let Some(routes) = v.get("routes").and_then(Value::as_object) {
        for (prefix, arr) in routes {
            let paths = arr
                .as_array()
                .map(|a| {
                    a.iter()
                        // Skip the per-prefix header object ({prefix, version, advertisedTo}).
                        .filter(|p| p.get("nexthops").is_some() || p.get("aspath").is_some())
                        .map(FrrPath::parse)
                        .collect()
                })
                .unwrap_or_default();
            out.insert(prefix.clone(), paths);
        }
    }
    out
}

/// A running FRR instance. Dropping it stops the daemons and removes its directory.
pub struct Frr {
    ns: Netns,
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    bgpd: Option<Child>,
    zebra: Option<Child>,
    cfg: FrrConfig,
}

impl std::fmt::Debug for Frr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frr")
            .field("ns", &self.ns)
            .field("dir", &self.path)
            .field("asn", &self.cfg.asn)
            .finish()
    }
}

impl Frr {
    /// Starts zebra (if configured) and bgpd in `ns` and waits until vtysh answers.
    pub fn start(ns: &Netns, cfg: &FrrConfig) -> Result<Frr> {
        let dir = util::instance_dir("frr")?;
        let path = dir.path().to_path_buf();
        let mut frr = Frr {
            ns: ns.clone(),
            dir: Some(dir),
            path,
            bgpd: None,
            zebra: None,
            cfg: cfg.clone(),
        };
        frr.launch()?;
        Ok(frr)
    }

    fn launch(&mut self) -> Result<()> {
        let d = self.path.clone();
        let ds = d.to_string_lossy().into_owned();
        // Stale sockets of a previous run would make the readiness checks pass too early.
        for f in [
            "zserv.api",
            "zebra.vty",
            "bgpd.vty",
            "zebra.pid",
            "bgpd.pid",
        ] {
            let _ = std::fs::remove_file(d.join(f));
        }
        std::fs::write(d.join("bgpd.conf"), self.cfg.render())?;
        std::fs::write(
            d.join("zebra.conf"),
            format!("hostname {}\n!\n", self.cfg.hostname),
        )?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))?;
        run_checked(Command::new("chown").args(["-R", "frr:frr", &ds]))?;

        if self.cfg.strict_config {
            self.dry_run()?;
        }

        let common = |daemon: &str| -> Vec<String> {
            vec![
                "--vty_socket".into(),
                ds.clone(),
                "-i".into(),
                format!("{ds}/{daemon}.pid"),
                "-z".into(),
                format!("{ds}/zserv.api"),
                "-P".into(),
                "0".into(),
                "-f".into(),
                format!("{ds}/{daemon}.conf"),
                "--log".into(),
                format!("file:{ds}/{daemon}.log"),
            ]
        };

        if self.cfg.zebra {
            let mut args = vec![ZEBRA.to_string()];
            args.extend(common("zebra"));
            self.zebra = Some(self.ns.spawn_logged(&args, &d.join("zebra.out"))?);
            let zserv = d.join("zserv.api");
            let vty = d.join("zebra.vty");
            let res = util::wait_until(
                "zebra to create its sockets",
                Duration::from_secs(15),
                Duration::from_millis(50),
                || {
                    if zserv.exists() && vty.exists() {
                        return Some(Ok(()));
                    }
                    match self.zebra.as_mut().map(Child::try_wait) {
                        Some(Ok(Some(st))) => Some(Err(Error::msg(format!("zebra exited ({st})")))),
                        _ => None,
                    }
                },
            );
            res.and_then(|r| r)
                .map_err(|e| self.startup_error(e, "zebra"))?;
        }

        let mut args = vec![BGPD.to_string()];
        args.extend(common("bgpd"));
        if !self.cfg.zebra {
            args.push("-Z".into());
        }
        if let Some(p) = self.cfg.listen_port {
            args.extend(["-p".into(), p.to_string()]);
        }
        for a in &self.cfg.listen_addrs {
            args.extend(["-l".into(), a.clone()]);
        }
        self.bgpd = Some(self.ns.spawn_logged(&args, &d.join("bgpd.out"))?);
        let res = util::wait_until(
            "bgpd to answer vtysh",
            Duration::from_secs(15),
            Duration::from_millis(50),
            || {
                if d.join("bgpd.vty").exists() && self.vtysh_bgpd("show version").is_ok() {
                    return Some(Ok(()));
                }
                match self.bgpd.as_mut().map(Child::try_wait) {
                    Some(Ok(Some(st))) => Some(Err(Error::msg(format!("bgpd exited ({st})")))),
                    _ => None,
                }
            },
        );
        res.and_then(|r| r)
            .map_err(|e| self.startup_error(e, "bgpd"))?;
        Ok(())
    }

    /// `bgpd -C`: parse the config without starting; FRR only logs bad lines, so grep them.
    fn dry_run(&self) -> Result<()> {
        let ds = self.path.to_string_lossy().into_owned();
        let out = Command::new(BGPD)
            .args([
                "-C",
                "-Z",
                "-P",
                "0",
                "--log",
                "stdout",
                "--vty_socket",
                &ds,
                "-f",
            ])
            .arg(self.path.join("bgpd.conf"))
            .args([
                "-i",
                &format!("{ds}/dryrun.pid"),
                "-z",
                &format!("{ds}/dryrun.api"),
            ])
            .stdin(std::process::Stdio::null())
            .output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let bad: Vec<&str> = text.lines().filter(|l| l.contains("config line")).collect();
        if !bad.is_empty() || !out.status.success() {
            let detail = if bad.is_empty() {
                text.trim().to_string()
            } else {
                bad.join("\n")
            };
            return Err(Error::msg(format!(
                "FRR rejected its config ({}):\n{detail}\n--- bgpd.conf ---\n{}",
                out.status,
                self.cfg.render()
            )));
        }
        Ok(())
    }

    fn startup_error(&self, e: Error, daemon: &str) -> Error {
        Error::msg(format!(
            "FRR {daemon} failed to start in {}: {e}\n--- {daemon}.out ---\n{}\n--- {daemon}.log ---\n{}",
            self.ns.name(),
            tail_file(&self.path.join(format!("{daemon}.out")), 30),
            tail_file(&self.path.join(format!("{daemon}.log")), 30),
        ))
    }

    /// The instance directory (config, sockets, logs).
    pub fn dir(&self) -> &Path {
        &self.path
    }

    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    pub fn config(&self) -> &FrrConfig {
        &self.cfg
    }

    /// bgpd's pid (for [`crate::proc_stats`]).
    pub fn pid(&self) -> u32 {
        self.bgpd.as_ref().map(Child::id).unwrap_or(0)
    }

    pub fn zebra_pid(&self) -> Option<u32> {
        self.zebra.as_ref().map(Child::id)
    }

    /// Whether bgpd (and zebra, if started) are still running.
    pub fn is_running(&mut self) -> bool {
        let alive =
            |c: &mut Option<Child>| c.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        alive(&mut self.bgpd) && (self.zebra.is_none() || alive(&mut self.zebra))
    }

    /// Runs one vtysh command against this instance (all its daemons); output on success.
    /// Fails on non-zero exit or a `%` error line.
    pub fn vtysh(&self, cmd: &str) -> Result<String> {
        self.vtysh_cmds(&[cmd])
    }

    fn vtysh_bgpd(&self, cmd: &str) -> Result<String> {
        run_checked(
            Command::new(VTYSH)
                .arg("--vty_socket")
                .arg(&self.path)
                .args(["-d", "bgpd", "-c", cmd]),
        )
    }

    /// Several commands in one vtysh session (stops at the first failing one).
    pub fn vtysh_cmds(&self, cmds: &[&str]) -> Result<String> {
        let mut c = Command::new(VTYSH);
        c.arg("--vty_socket").arg(&self.path);
        for cmd in cmds {
            c.args(["-c", cmd]);
        }
        let out = run_checked(&mut c)?;
        if let Some(l) = out.lines().find(|l| l.starts_with('%')) {
            return Err(Error::msg(format!("vtysh {cmds:?}: {l}")));
        }
        Ok(out)
    }

    /// Runs a `... json` command and parses the output.
    pub fn vtysh_json(&self, cmd: &str) -> Result<Value> {
        let out = self.vtysh(cmd)?;
        serde_json::from_str(&out).map_err(|e| {
            Error::msg(format!(
                "vtysh {cmd:?}: bad JSON ({e}): {}",
                util::truncate(&out, 500)
            ))
        })
    }

    /// Applies configuration lines in `configure terminal` (give the context lines too, e.g.
    /// `["router bgp 64501", "neighbor 198.51.100.2 shutdown"]`).
    pub fn configure(&self, lines: &[&str]) -> Result<()> {
        let mut cmds = vec!["configure terminal"];
        cmds.extend_from_slice(lines);
        cmds.push("end");
        self.vtysh_cmds(&cmds).map(|_| ())
    }

    /// Parsed `show bgp summary json`.
    pub fn summary(&self) -> Result<FrrSummary> {
        Ok(FrrSummary::parse(
            &self.vtysh_json("show bgp summary json")?,
        ))
    }

    /// Raw `show bgp neighbors ADDR json` object for that neighbor.
    pub fn neighbor(&self, addr: &str) -> Result<Value> {
        let v = self.vtysh_json(&format!("show bgp neighbors {addr} json"))?;
        if v.get("bgpNoSuchNeighbor").is_some() {
            return Err(Error::msg(format!("FRR has no neighbor {addr}")));
        }
        v.get(addr)
            .cloned()
            .or_else(|| v.as_object().and_then(|m| m.values().next().cloned()))
            .ok_or_else(|| Error::msg(format!("show bgp neighbors {addr} json: empty")))
    }

    /// Typed view of [`Frr::neighbor`].
    pub fn neighbor_info(&self, addr: &str) -> Result<FrrNeighborInfo> {
        self.neighbor(addr).map(FrrNeighborInfo::parse)
    }

    /// The BGP table of one family: prefix → paths (with communities etc.). Uses
    /// `show bgp <afi> unicast json detail`; for large tables prefer [`Frr::route_count`].
    pub fn routes(&self, afi: Afi) -> Result<BTreeMap<String, Vec<FrrPath>>> {
        let v = self.vtysh_json(&format!("show bgp {} unicast json detail", afi.name()))?;
        Ok(parse_detail_table(&v))
    }

    pub fn routes_v4(&self) -> Result<BTreeMap<String, Vec<FrrPath>>> {
        self.routes(Afi::Ipv4)
    }

    pub fn routes_v6(&self) -> Result<BTreeMap<String, Vec<FrrPath>>> {
        self.routes(Afi::Ipv6)
    }

    /// Paths for exactly `prefix` (empty when FRR does not have it).
    pub fn route(&self, prefix: &str) -> Result<Vec<FrrPath>> {
        let afi = Afi::of(prefix);
        let out = self.vtysh(&format!("show bgp {} unicast {prefix} json", afi.name()))?;
        let v: Value = serde_json::from_str(&out)?;
        // Missing prefix: `{}` or `{"warning": "Network not in table"}`.
        let Some(paths) = v.get("paths").and_then(Value::as_array) else {
            return Ok(Vec::new());
        };
        // Without an exact match FRR answers with the longest match: check the prefix.
        let got = v.get("prefix").and_then(Value::as_str).unwrap_or("");
        let want = crate::netns::normalize_prefix(prefix);
        if want.is_some() && crate::netns::normalize_prefix(got) != want {
            return Ok(Vec::new());
        }
        Ok(paths.iter().map(FrrPath::parse).collect())
    }

    /// Number of prefixes in the family's BGP table, from
    /// `show bgp <afi> unicast statistics json` (`totalPrefixes`): cheap even with 100k
    /// routes. (The summary's `ribCount` is *not* this: it counts radix-tree nodes,
    /// including internal ones — 19,999 for 10,000 consecutive /32s.)
    pub fn route_count(&self, afi: Afi) -> Result<u64> {
        let v = self.vtysh_json(&format!("show bgp {} unicast statistics json", afi.name()))?;
        let key = match afi {
            Afi::Ipv4 => "ipv4Unicast",
            Afi::Ipv6 => "ipv6Unicast",
        };
        v.get(key)
            .and_then(|a| a.get(0))
            .and_then(|s| s.get("totalPrefixes"))
            .and_then(Value::as_u64)
            .ok_or_else(|| Error::msg(format!("no totalPrefixes in statistics: {v}")))
    }

    /// `show ip route json` / `show ipv6 route json` from zebra (needs zebra).
    pub fn zebra_routes(&self, afi: Afi) -> Result<Value> {
        let cmd = match afi {
            Afi::Ipv4 => "show ip route json",
            Afi::Ipv6 => "show ipv6 route json",
        };
        self.vtysh_json(cmd)
    }

    /// Polls `pred` every 100 ms until true, or fails after `timeout` with the summary and
    /// the bgpd log tail in the error.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Frr) -> bool,
    ) -> Result<()> {
        util::wait_until(what, timeout, Duration::from_millis(100), || {
            pred(self).then_some(())
        })
        .map_err(|e| self.diagnose(e))
    }

    /// Waits until the neighbor is `Established` (in any family).
    pub fn wait_established(&self, addr: &str, timeout: Duration) -> Result<()> {
        self.wait_for(&format!("FRR neighbor {addr} Established"), timeout, |f| {
            f.peer_state(addr).as_deref() == Some("Established")
        })
    }

    /// Waits until the neighbor's `pfxRcd` in `afi` equals `n`.
    pub fn wait_pfx_rcd(&self, addr: &str, afi: Afi, n: u64, timeout: Duration) -> Result<()> {
        self.wait_for(
            &format!("FRR pfxRcd {n} from {addr} ({})", afi.name()),
            timeout,
            |f| {
                f.summary()
                    .ok()
                    .and_then(|s| {
                        s.family(afi)
                            .get(addr)
                            .map(|p| p.pfx_rcd == n && p.state == "Established")
                    })
                    .unwrap_or(false)
            },
        )
    }

    /// Waits until `prefix` is (`present`) or is not in the BGP table; returns its paths.
    pub fn wait_route(
        &self,
        prefix: &str,
        present: bool,
        timeout: Duration,
    ) -> Result<Vec<FrrPath>> {
        let mut last = Vec::new();
        self.wait_for(
            &format!(
                "FRR route {prefix} {}",
                if present { "present" } else { "absent" }
            ),
            timeout,
            |f| match f.route(prefix) {
                Ok(p) => {
                    let ok = p.is_empty() != present;
                    last = p;
                    ok
                }
                Err(_) => false,
            },
        )?;
        Ok(last)
    }

    /// Waits until `prefix` has a valid best path (next hop resolved, selected) and returns
    /// it. Prefer this over [`Frr::wait_route`] before asserting on attributes: right after
    /// an UPDATE the path can still be waiting for next-hop tracking.
    pub fn wait_best(&self, prefix: &str, timeout: Duration) -> Result<FrrPath> {
        let mut best = None;
        self.wait_for(&format!("FRR best path for {prefix}"), timeout, |f| {
            best = f
                .route(prefix)
                .ok()
                .and_then(|ps| ps.into_iter().find(|p| p.best && p.valid));
            best.is_some()
        })?;
        best.ok_or_else(|| Error::msg("unreachable: best path vanished"))
    }

    /// The neighbor's state from the summary (None when unknown).
    pub fn peer_state(&self, addr: &str) -> Option<String> {
        self.summary().ok()?.peer(addr).map(|p| p.state.clone())
    }

    /// The whole bgpd log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path.join("bgpd.log")).unwrap_or_default()
    }

    /// Last `n` lines of the bgpd log, without the `zclient_send_message() failed` lines a
    /// zebra-less bgpd (`-Z`) logs for every next hop it would register.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("zclient_send_message() failed"))
            .collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Adds the current summary and log tail to an error (for timeouts).
    pub fn diagnose(&self, e: Error) -> Error {
        let summary = self
            .vtysh("show bgp summary")
            .unwrap_or_else(|e| format!("(summary unavailable: {e})"));
        Error::msg(format!(
            "{e}\n--- FRR {} (ns {}) show bgp summary ---\n{}\n--- bgpd.log (tail) ---\n{}",
            self.path.display(),
            self.ns.name(),
            summary.trim(),
            self.log_tail(40)
        ))
    }

    /// Stops the daemons and starts them again with the same config and directory (logs are
    /// appended), e.g. for graceful-restart tests.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.launch()
    }

    /// SIGKILLs bgpd (and reaps it): the peer sees the TCP session die without a
    /// NOTIFICATION, like a crash. zebra keeps running. [`Frr::restart`] brings it back.
    pub fn kill_bgpd(&mut self) {
        if let Some(mut c) = self.bgpd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the daemons now (also done on drop). The directory stays until drop.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.bgpd.take() {
            util::stop_child(&mut c, Duration::from_secs(3));
        }
        if let Some(mut c) = self.zebra.take() {
            util::stop_child(&mut c, Duration::from_secs(3));
        }
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- FRR {} (ns {}) bgpd.log tail ---\n{}",
                self.path.display(),
                self.ns.name(),
                self.log_tail(40)
            );
        }
        self.stop();
        if let Some(d) = self.dir.take() {
            if util::env_flag("FERROLB_KEEP_DIRS") {
                eprintln!("keeping FRR dir {}", d.keep().display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_config() {
        let cfg = FrrConfig::new(64501, "198.51.100.1")
            .neighbor(
                FrrNeighbor::new("198.51.100.2", 64502)
                    .ipv4()
                    .password("s3cret")
                    .passive()
                    .port(1790)
                    .timers(3, 9)
                    .ebgp_multihop(2)
                    .extra_af("route-map IN in"),
            )
            .neighbor(
                FrrNeighbor::new("2001:db8:100::2", "external")
                    .ipv6()
                    .ttl_security(1),
            )
            .network_v4("203.0.113.0/25")
            .maximum_paths(4)
            .global_line("bgp graceful-restart")
            .config_line("route-map IN permit 10");
        let c = cfg.render();
        let expect_in_order = [
            "router bgp 64501",
            " bgp router-id 198.51.100.1",
            " no bgp ebgp-requires-policy",
            " no bgp default ipv4-unicast",
            " no bgp network import-check",
            " bgp graceful-restart",
            " neighbor 198.51.100.2 remote-as 64502",
            " neighbor 198.51.100.2 password s3cret",
            " neighbor 198.51.100.2 passive",
            " neighbor 198.51.100.2 port 1790",
            " neighbor 198.51.100.2 timers 3 9",
            " neighbor 198.51.100.2 timers connect 1",
            " neighbor 198.51.100.2 ebgp-multihop 2",
            " neighbor 2001:db8:100::2 remote-as external",
            " neighbor 2001:db8:100::2 ttl-security hops 1",
            " address-family ipv4 unicast",
            "  network 203.0.113.0/25",
            "  maximum-paths 4",
            "  neighbor 198.51.100.2 activate",
            "  neighbor 198.51.100.2 route-map IN in",
            " exit-address-family",
            " address-family ipv6 unicast",
            "  neighbor 2001:db8:100::2 activate",
            " exit-address-family",
            "route-map IN permit 10",
        ];
        let mut pos = 0;
        for l in expect_in_order {
            let i = c[pos..]
                .find(&format!("{l}\n"))
                .unwrap_or_else(|| panic!("missing/out of order {l:?} in\n{c}"));
            pos += i + l.len();
        }
        assert!(
            !c.contains("neighbor 2001:db8:100::2 activate\n  neighbor 198"),
            "{c}"
        );
    }

    #[test]
    fn parses_summary_and_neighbor() {
        let v: Value = serde_json::from_str(
            r#"{"ipv4Unicast":{"routerId":"198.51.100.1","as":64501,"ribCount":3,"peers":{"198.51.100.2":{"remoteAs":64502,"localAs":64501,"pfxRcd":2,"pfxSnt":3,"state":"Established","peerUptimeMsec":5000,"connectionsEstablished":1,"connectionsDropped":0}}},"ipv6Unicast":{"ribCount":1,"peers":{"2001:db8:100::2":{"remoteAs":64502,"state":"Active","peerUptime":"never","pfxRcd":0}}}}"#,
        )
        .unwrap();
        let s = FrrSummary::parse(&v);
        assert_eq!(s.ipv4["198.51.100.2"].pfx_rcd, 2);
        assert_eq!(s.ipv4["198.51.100.2"].state, "Established");
        assert_eq!(s.peer("2001:db8:100::2").unwrap().state, "Active");
        assert_eq!(s.rib_count_v4, Some(3));
        assert_eq!(
            FrrSummary::parse(&serde_json::json!({})),
            FrrSummary::default()
        );

        let n = FrrNeighborInfo::parse(serde_json::json!({
            "bgpState":"Idle","lastErrorCodeSubcode":"0602",
            "lastNotificationReason":"Cease/Administrative Shutdown",
            "lastResetDueTo":"BGP Notification received","connectionsDropped":1
        }));
        assert_eq!(n.state, "Idle");
        assert_eq!(
            n.last_notification.as_deref(),
            Some("Cease/Administrative Shutdown")
        );
        assert_eq!(n.last_error_code_subcode.as_deref(), Some("0602"));
        assert_eq!(
            n.last_reset_reason.as_deref(),
            Some("BGP Notification received")
        );
    }

    #[test]
    fn parses_detail_json() {
        // Captured from FRR 8.4.4 `show bgp ipv4 unicast json detail` (BIRD peer, inbound
        // route-map setting local-preference 150 and metric 77).
        let v: Value = serde_json::from_str(r#"{
 "vrfId": 0, "vrfName": "default", "tableVersion": 4, "routerId": "198.51.100.1",
 "defaultLocPrf": 100, "localAS": 64501,
 "routes": { "203.0.113.0/25": [{"prefix":"203.0.113.0/25","version":1,"advertisedTo":{"198.51.100.2":{}}},{"aspath":{"string":"Local","segments":[],"length":0},"origin":"IGP","metric":0,"weight":32768,"valid":true,"version":1,"sourced":true,"local":true,"bestpath":{"overall":true,"selectionReason":"First path received"},"lastUpdate":{"epoch":1795459846,"string":"Mon Nov 23 18:50:46 2026\n"},"nexthops":[{"ip":"0.0.0.0","hostname":"frrA","afi":"ipv4","metric":0,"accessible":true,"used":true}],"peer":{"peerId":"0.0.0.0","routerId":"198.51.100.1"}}]
,"203.0.113.128/25": [{"prefix":"203.0.113.128/25","version":5},{"aspath":{"string":"64502","segments":[{"type":"as-sequence","list":[64502]}],"length":1},"origin":"IGP","metric":77,"locPrf":150,"valid":true,"version":5,"bestpath":{"overall":true,"selectionReason":"First path received"},"community":{"string":"64502:100 no-export","list":["64502:100","noExport"]},"largeCommunity":{"string":"64502:1:2","list":["64502:1:2"]},"lastUpdate":{"epoch":1795459872,"string":"Mon Nov 23 18:51:12 2026\n"},"nexthops":[{"ip":"198.51.100.2","afi":"ipv4","metric":0,"accessible":true,"used":true}],"peer":{"peerId":"198.51.100.2","routerId":"198.51.100.2","type":"external"}}]
 }  }"#).unwrap();
        let t = parse_detail_table(&v);
        assert_eq!(t.len(), 2);
        let local = &t["203.0.113.0/25"][0];
        assert_eq!(local.as_path, "");
        assert!(local.as_path_list.is_empty());
        assert_eq!(local.next_hop, "0.0.0.0");
        let p = &t["203.0.113.128/25"];
        assert_eq!(p.len(), 1);
        let p = &p[0];
        assert_eq!(p.as_path, "64502");
        assert_eq!(p.as_path_list, vec![64502]);
        assert_eq!(p.communities, vec!["64502:100", "no-export"]);
        assert_eq!(p.large_communities, vec!["64502:1:2"]);
        assert_eq!(p.local_pref, Some(150));
        assert_eq!(p.med, Some(77));
        assert_eq!(p.next_hop, "198.51.100.2");
        assert_eq!(p.peer.as_deref(), Some("198.51.100.2"));
        assert!(p.best && p.valid);

        // IPv6 single-prefix form: global next hop first, then link-local.
        let v6: Value = serde_json::from_str(r#"{"prefix":"2001:db8:77::/48","paths":[{"aspath":{"string":"64502","segments":[{"type":"as-sequence","list":[64502]}],"length":1},"origin":"IGP","valid":true,"bestpath":{"overall":true},"community":{"string":"64502:200","list":["64502:200"]},"largeCommunity":{"string":"4200000000:7:8","list":["4200000000:7:8"]},"nexthops":[{"ip":"2001:db8:1::2","afi":"ipv6","scope":"global","metric":0,"accessible":true},{"ip":"fe80::6c8f:60ff:fe1c:522e","afi":"ipv6","scope":"link-local","accessible":true,"used":true}],"peer":{"peerId":"2001:db8:1::2","routerId":"198.51.100.2","type":"external"}}]}"#).unwrap();
        let p = FrrPath::parse(&v6["paths"][0]);
        assert_eq!(p.next_hop, "2001:db8:1::2");
        assert_eq!(p.next_hops.len(), 2);
        assert_eq!(p.large_communities, vec!["4200000000:7:8"]);
        assert_eq!(p.local_pref, None);
    }
}
