//! BIRD 2.0.12 as a test peer inside a [`Netns`].
//!
//! Why: BIRD is the second common open-source peer of MetalLB-style speakers and behaves
//! differently from FRR (stricter config, different defaults, no JSON). Tests get a config
//! builder, a checked start (`bird -p` first, so syntax errors surface with BIRD's own
//! message), `birdc` helpers and parsers for `show route all`, `show route ... count` and
//! `show protocols all NAME`. BIRD has no JSON output, so the parsers below are tested
//! against captured real output.
//!
//! Text formats (BIRD 2.0.12, captured):
//! ```text
//! Table master4:
//! 100.64.5.0/24        unicast [p3 18:58:23.806] * (100) [i]
//!     via 203.0.113.3 on c
//!     Type: BGP univ
//!     BGP.origin: IGP
//!     BGP.as_path:
//!     BGP.next_hop: 203.0.113.3
//!     BGP.local_pref: 100
//!                      unicast [p2 18:58:23.744] (100) [AS64502i]
//!     via 198.51.100.2 on a
//!     ...
//!     BGP.community: (64500,1) (64500,2)
//!     BGP.large_community: (64500, 3, 4)
//! 203.0.113.128/25     unreachable [s4 18:51:00.413] * (200)
//! ```
//! (attribute lines are tab-indented; further routes of the same network are indented with
//! spaces; `*` marks the primary route; `unreachable` on a BGP route means its next hop did
//! not resolve.)

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::netns::Netns;
use crate::util::{self, run_checked, tail_file, Afi, Error, Result};

/// The BIRD daemon.
pub const BIRD: &str = "/usr/sbin/bird";
/// The BIRD CLI client.
pub const BIRDC: &str = "/usr/sbin/birdc";
/// Everything [`Bird`] needs, for [`crate::interop_guard!`] / [`crate::guard`].
pub const REQUIRED: [&str; 2] = [BIRD, BIRDC];

/// Export filter that sends the routes of this config's `protocol static` blocks.
pub const EXPORT_STATIC: &str = "where source = RTS_STATIC";

/// Import/export filters and extra lines of one BGP channel (`ipv4 { ... }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirdChannel {
    /// `all`, `none`, `where ...`, `filter NAME`.
    pub import: String,
    pub export: String,
    /// Raw lines inside the channel block (`next hop self;`, `extended next hop on;`,
    /// `add paths rx;`).
    pub extra: Vec<String>,
}

impl Default for BirdChannel {
    fn default() -> Self {
        BirdChannel {
            import: "all".into(),
            export: "none".into(),
            extra: Vec::new(),
        }
    }
}

/// One `protocol bgp NAME { ... }`.
#[derive(Debug, Clone)]
pub struct BirdNeighbor {
    /// Protocol name (used by `show protocols`, `enable`, `disable`).
    pub name: String,
    pub local_addr: Option<String>,
    pub local_port: Option<u16>,
    pub local_as: u32,
    pub neighbor_addr: String,
    pub neighbor_port: Option<u16>,
    pub neighbor_as: u32,
    pub passive: bool,
    pub password: Option<String>,
    pub hold_time: Option<u16>,
    pub keepalive_time: Option<u16>,
    /// `multihop;` (`Some(None)`) or `multihop N;`.
    pub multihop: Option<Option<u8>>,
    pub ipv4: Option<BirdChannel>,
    pub ipv6: Option<BirdChannel>,
    /// Raw lines inside the protocol block (`strict bind on;`, `graceful restart on;`).
    pub extra: Vec<String>,
}

impl BirdNeighbor {
    /// A neighbor with no channels yet (add [`BirdNeighbor::ipv4`] / [`BirdNeighbor::ipv6`]).
    pub fn new(name: &str, local_as: u32, neighbor_addr: &str, neighbor_as: u32) -> BirdNeighbor {
        BirdNeighbor {
            name: name.to_string(),
            local_addr: None,
            local_port: None,
            local_as,
            neighbor_addr: neighbor_addr.to_string(),
            neighbor_port: None,
            neighbor_as,
            passive: false,
            password: None,
            hold_time: None,
            keepalive_time: None,
            multihop: None,
            ipv4: None,
            ipv6: None,
            extra: Vec::new(),
        }
    }
    /// IPv4 channel: `import all; export none;`.
    pub fn ipv4(mut self) -> Self {
        self.ipv4.get_or_insert_with(BirdChannel::default);
        self
    }
    /// IPv6 channel: `import all; export none;`.
    pub fn ipv6(mut self) -> Self {
        self.ipv6.get_or_insert_with(BirdChannel::default);
        self
    }
    /// Sets the export filter of the IPv4 channel (creating it).
    pub fn export_v4(mut self, filter: &str) -> Self {
        self.ipv4.get_or_insert_with(BirdChannel::default).export = filter.to_string();
        self
    }
    /// Sets the export filter of the IPv6 channel (creating it).
    pub fn export_v6(mut self, filter: &str) -> Self {
        self.ipv6.get_or_insert_with(BirdChannel::default).export = filter.to_string();
        self
    }
    /// Exports the static routes on every configured channel.
    pub fn export_static(mut self) -> Self {
        for ch in [&mut self.ipv4, &mut self.ipv6].into_iter().flatten() {
            ch.export = EXPORT_STATIC.to_string();
        }
        self
    }
    pub fn local_addr(mut self, addr: &str) -> Self {
        self.local_addr = Some(addr.to_string());
        self
    }
    pub fn local_port(mut self, port: u16) -> Self {
        self.local_port = Some(port);
        self
    }
    pub fn neighbor_port(mut self, port: u16) -> Self {
        self.neighbor_port = Some(port);
        self
    }
    pub fn passive(mut self) -> Self {
        self.passive = true;
        self
    }
    pub fn password(mut self, p: &str) -> Self {
        self.password = Some(p.to_string());
        self
    }
    pub fn hold_time(mut self, secs: u16) -> Self {
        self.hold_time = Some(secs);
        self
    }
    pub fn keepalive_time(mut self, secs: u16) -> Self {
        self.keepalive_time = Some(secs);
        self
    }
    pub fn multihop(mut self, ttl: Option<u8>) -> Self {
        self.multihop = Some(ttl);
        self
    }
    pub fn extra(mut self, line: &str) -> Self {
        self.extra.push(line.to_string());
        self
    }
}

/// A whole bird.conf.
#[derive(Debug, Clone)]
pub struct BirdConfig {
    pub router_id: String,
    /// `protocol kernel` for IPv4 and IPv6 exporting BGP routes (`merge paths on` for ECMP).
    pub kernel: bool,
    /// Route statements of `protocol static static4`, without `route` and `;`, e.g.
    /// `203.0.113.0/25 unreachable` or
    /// `203.0.113.0/25 unreachable { bgp_community.add((64502,100)); }`.
    pub static_v4: Vec<String>,
    pub static_v6: Vec<String>,
    pub neighbors: Vec<BirdNeighbor>,
    /// Raw top-level lines (filters, functions, extra protocols).
    pub extra: Vec<String>,
}

impl BirdConfig {
    pub fn new(router_id: &str) -> BirdConfig {
        BirdConfig {
            router_id: router_id.to_string(),
            kernel: false,
            static_v4: Vec::new(),
            static_v6: Vec::new(),
            neighbors: Vec::new(),
            extra: Vec::new(),
        }
    }
    /// Install BGP routes into the namespace's kernel table.
    pub fn with_kernel(mut self) -> Self {
        self.kernel = true;
        self
    }
    pub fn static_v4(mut self, route: &str) -> Self {
        self.static_v4.push(route.to_string());
        self
    }
    pub fn static_v6(mut self, route: &str) -> Self {
        self.static_v6.push(route.to_string());
        self
    }
    pub fn neighbor(mut self, n: BirdNeighbor) -> Self {
        self.neighbors.push(n);
        self
    }
    pub fn extra(mut self, line: &str) -> Self {
        self.extra.push(line.to_string());
        self
    }

    /// The config text; `log_file` becomes `log "..." all;`.
    pub fn render(&self, log_file: Option<&Path>) -> String {
        let mut c = String::new();
        if let Some(l) = log_file {
            let _ = writeln!(c, "log \"{}\" all;", l.display());
        }
        let _ = writeln!(c, "router id {};", self.router_id);
        let _ = writeln!(c, "protocol device {{}}");
        let _ = writeln!(c, "protocol direct {{ ipv4; ipv6; }}");
        if self.kernel {
            for afi in ["ipv4", "ipv6"] {
                let _ = writeln!(
                    c,
                    "protocol kernel kernel_{afi} {{ {afi} {{ import none; export where source = RTS_BGP; }}; merge paths on; }}"
                );
            }
        }
        for (name, afi, routes) in [
            ("static4", "ipv4", &self.static_v4),
            ("static6", "ipv6", &self.static_v6),
        ] {
            if routes.is_empty() {
                continue;
            }
            let _ = writeln!(c, "protocol static {name} {{");
            let _ = writeln!(c, "  {afi};");
            for r in routes {
                let _ = writeln!(c, "  route {};", r.trim_end_matches(';'));
            }
            let _ = writeln!(c, "}}");
        }
        for l in &self.extra {
            let _ = writeln!(c, "{l}");
        }
        for n in &self.neighbors {
            let _ = writeln!(c, "protocol bgp {} {{", n.name);
            let mut local = "  local".to_string();
            if let Some(a) = &n.local_addr {
                local.push_str(&format!(" {a}"));
            }
            if let Some(p) = n.local_port {
                local.push_str(&format!(" port {p}"));
            }
            let _ = writeln!(c, "{local} as {};", n.local_as);
            let mut nb = format!("  neighbor {}", n.neighbor_addr);
            if let Some(p) = n.neighbor_port {
                nb.push_str(&format!(" port {p}"));
            }
            let _ = writeln!(c, "{nb} as {};", n.neighbor_as);
            if n.passive {
                let _ = writeln!(c, "  passive on;");
            }
            if let Some(p) = &n.password {
                let _ = writeln!(c, "  password \"{p}\";");
            }
            if let Some(h) = n.hold_time {
                let _ = writeln!(c, "  hold time {h};");
            }
            if let Some(k) = n.keepalive_time {
                let _ = writeln!(c, "  keepalive time {k};");
            }
            match n.multihop {
                Some(Some(t)) => {
                    let _ = writeln!(c, "  multihop {t};");
                }
                Some(None) => {
                    let _ = writeln!(c, "  multihop;");
                }
                None => {}
            }
            let _ = writeln!(c, "  connect retry time 1;");
            let _ = writeln!(c, "  error wait time 1, 5;");
            let _ = writeln!(c, "  debug {{ states, events }};");
            for l in &n.extra {
                let _ = writeln!(c, "  {}", l);
            }
            for (afi, ch) in [("ipv4", &n.ipv4), ("ipv6", &n.ipv6)] {
                if let Some(ch) = ch {
                    let _ = writeln!(c, "  {afi} {{");
                    let _ = writeln!(c, "    import {};", ch.import);
                    let _ = writeln!(c, "    export {};", ch.export);
                    for l in &ch.extra {
                        let _ = writeln!(c, "    {l}");
                    }
                    let _ = writeln!(c, "  }};");
                }
            }
            let _ = writeln!(c, "}}");
        }
        c
    }
}

/// One route from `show route all`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BirdRoute {
    /// `master4`, `master6`, ...
    pub table: String,
    /// Network as printed (`203.0.113.0/25`, `2001:db8::/48`).
    pub prefix: String,
    /// Destination kind: `unicast`, `unreachable`, `blackhole`, `prohibit`.
    pub kind: String,
    /// Protocol the route came from (`frr4`, `static4`, `direct1`).
    pub protocol: String,
    /// Selected route for its network (`*`).
    pub primary: bool,
    /// The `(pref)` / `(pref/metric)` field.
    pub preference: Option<u32>,
    /// Gateways from `via X on IF` lines (several for multipath).
    pub via: Vec<String>,
    /// Interfaces from `via X on IF` / `dev IF` lines.
    pub devs: Vec<String>,
    /// `Type:` line (`BGP univ`).
    pub route_type: Option<String>,
    /// Every `KEY: value` attribute line (`BGP.as_path` → `64501 64502`), raw.
    pub attrs: BTreeMap<String, String>,
    /// `BGP.as_path` (empty string for an empty path; `None` for non-BGP routes).
    pub as_path: Option<String>,
    /// `BGP.next_hop` (IPv6 may hold `global link-local`).
    pub bgp_next_hop: Option<String>,
    pub local_pref: Option<u32>,
    pub med: Option<u32>,
    pub origin: Option<String>,
    /// `BGP.community` as `a:b` strings.
    pub communities: Vec<String>,
    /// `BGP.large_community` as `a:b:c` strings.
    pub large_communities: Vec<String>,
}

impl BirdRoute {
    /// True when BIRD could not resolve the route's next hop (or it is a reject route).
    pub fn unreachable(&self) -> bool {
        self.kind == "unreachable"
    }

    /// ASNs of `BGP.as_path` (sets flattened).
    pub fn as_path_list(&self) -> Vec<u32> {
        self.as_path
            .as_deref()
            .unwrap_or("")
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|t| t.parse().ok())
            .collect()
    }

    /// First address of `BGP.next_hop`.
    pub fn next_hop(&self) -> Option<&str> {
        self.bgp_next_hop.as_deref()?.split_whitespace().next()
    }
}

/// Parses `birdc show route all` (or `show route`) output. Lines BIRD prints before the
/// first table (the `BIRD x.y ready.` banner) are ignored.
pub fn parse_routes(text: &str) -> Vec<BirdRoute> {
    let mut out: Vec<BirdRoute> = Vec::new();
    let mut table = String::new();
    let mut last_prefix = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(t) = line.strip_prefix("Table ") {
            table = t.trim_end_matches(':').trim().to_string();
            continue;
        }
        if line.starts_with('\t') {
            let Some(r) = out.last_mut() else { continue };
            let l = line.trim();
            if let Some(rest) = l.strip_prefix("via ") {
                let mut it = rest.split_whitespace();
                if let Some(gw) = it.next() {
                    r.via.push(gw.to_string());
                }
                if it.next() == Some("on") {
                    if let Some(d) = it.next() {
                        r.devs.push(d.to_string());
                    }
                }
            } else if let Some(rest) = l.strip_prefix("dev ") {
                if let Some(d) = rest.split_whitespace().next() {
                    r.devs.push(d.to_string());
                }
            } else if let Some((k, v)) = l.split_once(':') {
                let k = k.trim();
                let v = v.trim().to_string();
                match k {
                    "Type" => r.route_type = Some(v.clone()),
                    "BGP.as_path" => r.as_path = Some(v.clone()),
                    "BGP.next_hop" => r.bgp_next_hop = Some(v.clone()),
                    "BGP.local_pref" => r.local_pref = v.parse().ok(),
                    "BGP.med" => r.med = v.parse().ok(),
                    "BGP.origin" => r.origin = Some(v.clone()),
                    "BGP.community" => r.communities = parse_tuples(&v),
                    "BGP.large_community" => r.large_communities = parse_tuples(&v),
                    _ => {}
                }
                r.attrs.insert(k.to_string(), v);
            }
            continue;
        }
        // A route header: `PREFIX KIND [PROTO ...] * (PREF) [AS...]`, or, for further routes
        // of the same network, the same without PREFIX and indented with spaces.
        let continuation = line.starts_with(' ');
        let mut rest = line.trim_start();
        let prefix = if continuation {
            last_prefix.clone()
        } else {
            let (p, r) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            rest = r.trim_start();
            p.to_string()
        };
        let Some(open) = rest.find('[') else { continue };
        let kind = rest[..open].trim().to_string();
        let Some(close) = rest[open..].find(']').map(|i| i + open) else {
            continue;
        };
        let protocol = rest[open + 1..close]
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        let after = &rest[close + 1..];
        let primary = after.trim_start().starts_with('*');
        let preference = after.find('(').and_then(|i| {
            let inner = &after[i + 1..];
            let end = inner.find(|c: char| !c.is_ascii_digit())?;
            inner[..end].parse().ok()
        });
        last_prefix = prefix.clone();
        out.push(BirdRoute {
            table: table.clone(),
            prefix,
            kind,
            protocol,
            primary,
            preference,
            ..Default::default()
        });
    }
    out
}

/// `(64500,1) (64500,2)` → `["64500:1","64500:2"]`; `(64500, 3, 4)` → `["64500:3:4"]`.
fn parse_tuples(v: &str) -> Vec<String> {
    v.split(')')
        .filter_map(|t| {
            let t = t.trim().strip_prefix('(')?;
            Some(t.split(',').map(str::trim).collect::<Vec<_>>().join(":"))
        })
        .collect()
}

/// Parses `show route ... count` output into the number of matching routes: the `Total:`
/// line when present, else the sum of the per-table lines.
pub fn parse_count(text: &str) -> Option<u64> {
    let first_num = |l: &str| {
        l.split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
    };
    if let Some(total) = text.lines().find_map(|l| l.trim().strip_prefix("Total:")) {
        return first_num(total);
    }
    let mut sum = None;
    for l in text.lines() {
        if l.contains(" routes for ") {
            if let Some(n) = first_num(l) {
                *sum.get_or_insert(0) += n;
            }
        }
    }
    sum
}

/// Parsed `show protocols all NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BirdProtocol {
    pub name: String,
    /// `BGP`, `Static`, `Kernel`, ...
    pub proto: String,
    /// `up`, `start`, `down`, ...
    pub state: String,
    /// The Info column, e.g. `Established` or `Active        Received: Administrative shutdown`.
    pub info: String,
    /// `BGP state:` (`Established`, `Active`, `Connect`, `OpenSent`, `Idle`, `Down`).
    pub bgp_state: Option<String>,
    /// `Last error:` (`Received: Administrative shutdown`, `Hold timer expired`, ...).
    pub last_error: Option<String>,
    /// Negotiated hold time from `Hold timer: left/total`.
    pub hold_time: Option<u32>,
    /// Negotiated keepalive from `Keepalive timer: left/total`.
    pub keepalive_time: Option<u32>,
    /// `Neighbor graceful restart active`: BIRD is keeping the peer's routes as stale
    /// (e.g. after a hold-timer expiry with a GR-capable peer such as FRR).
    pub graceful_restart_active: bool,
    /// `Channel NAME` → `Routes:` counts `(imported, exported)`.
    pub channel_routes: BTreeMap<String, (u64, u64)>,
    pub raw: String,
}

impl BirdProtocol {
    /// Whether the BGP session is up.
    pub fn established(&self) -> bool {
        self.bgp_state.as_deref() == Some("Established")
            || self.info.split_whitespace().next() == Some("Established")
    }
}

/// Parses `show protocols all NAME` output (the first protocol in it).
pub fn parse_protocol(text: &str) -> Option<BirdProtocol> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with("Name ")).skip(1);
    let header = lines.next()?;
    let mut cols = header.split_whitespace();
    let name = cols.next()?.to_string();
    let proto = cols.next()?.to_string();
    let _table = cols.next()?;
    let state = cols.next()?.to_string();
    // The Info column starts after `Since`, which is one token (`18:52:55.253`) or two
    // (`2026-11-23 18:52:55`); find it after the state token.
    let after_state = &header[header.find(&format!(" {state} "))? + state.len() + 2..];
    let mut rest = after_state.trim_start();
    let since_tokens = {
        let first = rest.split_whitespace().next().unwrap_or("");
        if first.len() == 10 && first.as_bytes().get(4) == Some(&b'-') {
            2
        } else {
            1
        }
    };
    for _ in 0..since_tokens {
        rest = rest.trim_start();
        rest = rest.find(char::is_whitespace).map_or("", |i| &rest[i..]);
    }
    let mut p = BirdProtocol {
        name,
        proto,
        state,
        info: rest.trim().to_string(),
        raw: text.to_string(),
        ..Default::default()
    };
    let timer_total = |v: &str| -> Option<u32> {
        let total = v.split('/').nth(1)?.trim();
        total.split('.').next()?.parse().ok()
    };
    let mut channel = None;
    for l in lines {
        let t = l.trim();
        if t == "Neighbor graceful restart active" {
            p.graceful_restart_active = true;
            continue;
        }
        if let Some(ch) = t.strip_prefix("Channel ") {
            channel = Some(ch.trim().to_string());
            continue;
        }
        let Some((k, v)) = t.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "BGP state" => p.bgp_state = Some(v.to_string()),
            "Last error" => p.last_error = Some(v.to_string()),
            "Hold timer" => p.hold_time = timer_total(v),
            "Keepalive timer" => p.keepalive_time = timer_total(v),
            "Routes" => {
                if let Some(ch) = &channel {
                    let num = |what: &str| {
                        v.split(',').find_map(|part| {
                            let mut it = part.split_whitespace();
                            let n = it.next()?.parse::<u64>().ok()?;
                            (it.next()? == what).then_some(n)
                        })
                    };
                    p.channel_routes.insert(
                        ch.clone(),
                        (num("imported").unwrap_or(0), num("exported").unwrap_or(0)),
                    );
                }
            }
            _ => {}
        }
    }
    Some(p)
}

/// A running BIRD. Dropping it stops the daemon and removes its directory.
pub struct Bird {
    ns: Netns,
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    child: Option<Child>,
    cfg: BirdConfig,
}

impl std::fmt::Debug for Bird {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bird")
            .field("ns", &self.ns)
            .field("dir", &self.path)
            .finish()
    }
}

impl Bird {
    /// Checks the config (`bird -p`), starts BIRD in the foreground in `ns` and waits until
    /// `birdc` reports the daemon up.
    pub fn start(ns: &Netns, cfg: &BirdConfig) -> Result<Bird> {
        let dir = util::instance_dir("bird")?;
        let path = dir.path().to_path_buf();
        let mut b = Bird {
            ns: ns.clone(),
            dir: Some(dir),
            path,
            child: None,
            cfg: cfg.clone(),
        };
        b.write_and_check(cfg)?;
        let conf = b.conf_path();
        let sock = b.socket();
        let args = [
            BIRD.to_string(),
            "-f".into(),
            "-c".into(),
            conf.to_string_lossy().into_owned(),
            "-s".into(),
            sock.to_string_lossy().into_owned(),
            "-P".into(),
            b.path.join("bird.pid").to_string_lossy().into_owned(),
        ];
        b.child = Some(ns.spawn_logged(&args, &b.path.join("bird.out"))?);
        let res = util::wait_until(
            "BIRD to come up",
            Duration::from_secs(15),
            Duration::from_millis(50),
            || {
                if sock.exists() {
                    if let Ok(s) = b.birdc("show status") {
                        if s.contains("Daemon is up and running") {
                            return Some(Ok(()));
                        }
                    }
                }
                match b.child.as_mut().map(Child::try_wait) {
                    Some(Ok(Some(st))) => Some(Err(Error::msg(format!("bird exited ({st})")))),
                    _ => None,
                }
            },
        );
        res.and_then(|r| r).map_err(|e| {
            Error::msg(format!(
                "BIRD failed to start in {}: {e}\n--- bird.out ---\n{}\n--- bird.log ---\n{}",
                ns.name(),
                tail_file(&b.path.join("bird.out"), 30),
                b.log_tail(30)
            ))
        })?;
        Ok(b)
    }

    fn conf_path(&self) -> PathBuf {
        self.path.join("bird.conf")
    }

    fn write_and_check(&self, cfg: &BirdConfig) -> Result<()> {
        let text = cfg.render(Some(&self.path.join("bird.log")));
        let conf = self.conf_path();
        std::fs::write(&conf, &text)?;
        run_checked(Command::new(BIRD).arg("-p").arg("-c").arg(&conf))
            .map_err(|e| e.context(format!("BIRD rejected its config:\n{text}\n")))?;
        Ok(())
    }

    /// The control socket path (for `birdc -s`).
    pub fn socket(&self) -> PathBuf {
        self.path.join("bird.ctl")
    }

    pub fn dir(&self) -> &Path {
        &self.path
    }

    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    pub fn config(&self) -> &BirdConfig {
        &self.cfg
    }

    /// BIRD's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Runs one birdc command (`show route all`, `disable frr4`); output without the
    /// `BIRD x.y ready.` banner. birdc exits non-zero on CLI errors, which become `Err`.
    pub fn birdc(&self, cmd: &str) -> Result<String> {
        let out = run_checked(Command::new(BIRDC).arg("-s").arg(self.socket()).arg(cmd))?;
        Ok(strip_banner(&out))
    }

    /// Writes a new config, checks it and reloads (`birdc configure`).
    pub fn reconfigure(&mut self, cfg: &BirdConfig) -> Result<()> {
        self.write_and_check(cfg)?;
        let out = self.birdc("configure")?;
        if !out.contains("Reconfigured") && !out.contains("Reconfiguration in progress") {
            return Err(Error::msg(format!("birdc configure: {out}")));
        }
        self.cfg = cfg.clone();
        Ok(())
    }

    pub fn enable(&self, proto: &str) -> Result<()> {
        self.birdc(&format!("enable {proto}")).map(|_| ())
    }

    pub fn disable(&self, proto: &str) -> Result<()> {
        self.birdc(&format!("disable {proto}")).map(|_| ())
    }

    pub fn restart(&self, proto: &str) -> Result<()> {
        self.birdc(&format!("restart {proto}")).map(|_| ())
    }

    /// All routes of all tables (`show route all`).
    pub fn routes(&self) -> Result<Vec<BirdRoute>> {
        Ok(parse_routes(&self.birdc("show route all")?))
    }

    /// Routes of one family's master table.
    pub fn routes_afi(&self, afi: Afi) -> Result<Vec<BirdRoute>> {
        let table = match afi {
            Afi::Ipv4 => "master4",
            Afi::Ipv6 => "master6",
        };
        Ok(parse_routes(
            &self.birdc(&format!("show route all table {table}"))?,
        ))
    }

    /// All routes for exactly `prefix` (empty when none).
    pub fn route(&self, prefix: &str) -> Result<Vec<BirdRoute>> {
        // `show route for X` would do a longest-prefix match; `show route X` is exact.
        match self.birdc(&format!("show route all {prefix}")) {
            Ok(out) => Ok(parse_routes(&out)),
            Err(e) if e.message().contains("Network not found") => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Number of BGP-learned routes in all tables.
    pub fn route_count(&self) -> Result<u64> {
        self.count_where("source = RTS_BGP")
    }

    /// `show route where FILTER count`.
    pub fn count_where(&self, filter: &str) -> Result<u64> {
        let out = self.birdc(&format!("show route where {filter} count"))?;
        parse_count(&out).ok_or_else(|| Error::msg(format!("cannot parse route count: {out}")))
    }

    /// Parsed `show protocols all NAME`.
    pub fn protocol(&self, name: &str) -> Result<BirdProtocol> {
        let out = self.birdc(&format!("show protocols all {name}"))?;
        parse_protocol(&out)
            .ok_or_else(|| Error::msg(format!("cannot parse protocol {name}: {out}")))
    }

    /// Polls `pred` every 100 ms; the timeout error carries `show protocols` and the log tail.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Bird) -> bool,
    ) -> Result<()> {
        util::wait_until(what, timeout, Duration::from_millis(100), || {
            pred(self).then_some(())
        })
        .map_err(|e| self.diagnose(e))
    }

    /// Waits until protocol `name` is Established.
    pub fn wait_established(&self, name: &str, timeout: Duration) -> Result<()> {
        self.wait_for(&format!("BIRD protocol {name} Established"), timeout, |b| {
            b.protocol(name).map(|p| p.established()).unwrap_or(false)
        })
    }

    /// Waits until `prefix` is (or is no longer) in BIRD's tables; returns its routes.
    pub fn wait_route(
        &self,
        prefix: &str,
        present: bool,
        timeout: Duration,
    ) -> Result<Vec<BirdRoute>> {
        let mut last = Vec::new();
        self.wait_for(
            &format!(
                "BIRD route {prefix} {}",
                if present { "present" } else { "absent" }
            ),
            timeout,
            |b| match b.route(prefix) {
                Ok(r) => {
                    let ok = r.is_empty() != present;
                    last = r;
                    ok
                }
                Err(_) => false,
            },
        )?;
        Ok(last)
    }

    /// The whole BIRD log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path.join("bird.log")).unwrap_or_default()
    }

    pub fn log_tail(&self, n: usize) -> String {
        tail_file(&self.path.join("bird.log"), n)
    }

    /// Adds `show protocols` and the log tail to an error.
    pub fn diagnose(&self, e: Error) -> Error {
        let protos = self
            .birdc("show protocols")
            .unwrap_or_else(|e| format!("(unavailable: {e})"));
        Error::msg(format!(
            "{e}\n--- BIRD {} (ns {}) show protocols ---\n{}\n--- bird.log (tail) ---\n{}",
            self.path.display(),
            self.ns.name(),
            protos.trim(),
            self.log_tail(40)
        ))
    }

    /// Stops BIRD now (also done on drop).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            util::stop_child(&mut c, Duration::from_secs(3));
        }
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- BIRD {} (ns {}) bird.log tail ---\n{}",
                self.path.display(),
                self.ns.name(),
                self.log_tail(40)
            );
        }
        self.stop();
        if let Some(d) = self.dir.take() {
            if util::env_flag("FERROLB_KEEP_DIRS") {
                eprintln!("keeping BIRD dir {}", d.keep().display());
            }
        }
    }
}

fn strip_banner(out: &str) -> String {
    let mut lines = out.lines().peekable();
    if lines
        .peek()
        .is_some_and(|l| l.starts_with("BIRD ") && l.trim_end().ends_with("ready."))
    {
        lines.next();
    }
    let mut s = lines.collect::<Vec<_>>().join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from BIRD 2.0.12: one eBGP (p2) and one iBGP (p3) FRR peer announcing the
    // same prefixes, plus static and direct routes.
    const ROUTES: &str = "BIRD 2.0.12 ready.
Table master4:
198.51.100.0/24      unicast [direct1 18:58:22.639] * (240)
\tdev a
\tType: device univ
100.64.5.0/24        unicast [p3 18:58:23.806] * (100) [i]
\tvia 203.0.113.3 on c
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 
\tBGP.next_hop: 203.0.113.3
\tBGP.med: 0
\tBGP.local_pref: 100
                     unicast [p2 18:58:23.744] (100) [AS64502i]
\tvia 198.51.100.2 on a
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 64502
\tBGP.next_hop: 198.51.100.2
\tBGP.med: 0
\tBGP.local_pref: 100
100.64.6.0/24        unicast [p2 18:58:27.742] * (100) [AS64502i]
\tvia 198.51.100.2 on a
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 64502
\tBGP.next_hop: 198.51.100.2
\tBGP.med: 0
\tBGP.local_pref: 100
\tBGP.community: (64500,1) (64500,2)
\tBGP.large_community: (64500, 3, 4)
203.0.113.128/25     unreachable [s4 18:51:00.413] * (200)
\tType: static univ
\tBGP.med: 55
\tBGP.community: (64502,100) (65535,65281)
\tBGP.large_community: (64502, 1, 2)

Table master6:
2001:db8:99::/48     unicast [frr6 18:50:53.841] * (100) [AS64501i]
\tvia 2001:db8:1::1 on vB
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 64501
\tBGP.next_hop: 2001:db8:1::1 fe80::2897:6bff:fe70:ebcc
\tBGP.med: 0
\tBGP.local_pref: 100
2001:db8:77::/48     unreachable [s6 18:50:51.950] * (200)
\tType: static univ
";

    #[test]
    fn parses_show_route_all() {
        let r = parse_routes(ROUTES);
        assert_eq!(r.len(), 7, "{r:#?}");
        assert_eq!(r[0].prefix, "198.51.100.0/24");
        assert_eq!(r[0].devs, vec!["a"]);
        assert_eq!(r[0].protocol, "direct1");
        assert_eq!(r[0].preference, Some(240));
        assert!(r[0].as_path.is_none());

        let (ibgp, ebgp) = (&r[1], &r[2]);
        assert_eq!(ibgp.prefix, "100.64.5.0/24");
        assert_eq!(ebgp.prefix, "100.64.5.0/24");
        assert!(ibgp.primary && !ebgp.primary);
        assert_eq!(ibgp.protocol, "p3");
        assert_eq!(ebgp.protocol, "p2");
        assert_eq!(ibgp.as_path.as_deref(), Some(""));
        assert_eq!(ebgp.as_path.as_deref(), Some("64502"));
        assert_eq!(ebgp.as_path_list(), vec![64502]);
        assert_eq!(ebgp.via, vec!["198.51.100.2"]);
        assert_eq!(ebgp.devs, vec!["a"]);
        assert_eq!(ebgp.local_pref, Some(100));
        assert_eq!(ebgp.med, Some(0));
        assert_eq!(ebgp.origin.as_deref(), Some("IGP"));
        assert_eq!(ebgp.route_type.as_deref(), Some("BGP univ"));
        assert!(!ebgp.unreachable());

        let c = &r[3];
        assert_eq!(c.communities, vec!["64500:1", "64500:2"]);
        assert_eq!(c.large_communities, vec!["64500:3:4"]);

        let s = &r[4];
        assert!(s.unreachable());
        assert_eq!(s.protocol, "s4");
        assert_eq!(s.communities, vec!["64502:100", "65535:65281"]);
        assert_eq!(s.attrs.get("BGP.med").map(String::as_str), Some("55"));

        let v6 = &r[5];
        assert_eq!(v6.table, "master6");
        assert_eq!(
            v6.bgp_next_hop.as_deref(),
            Some("2001:db8:1::1 fe80::2897:6bff:fe70:ebcc")
        );
        assert_eq!(v6.next_hop(), Some("2001:db8:1::1"));
        assert_eq!(r[6].prefix, "2001:db8:77::/48");
        assert!(parse_routes("BIRD 2.0.12 ready.\n").is_empty());
    }

    #[test]
    fn parses_counts() {
        let t = "4 of 4 routes for 4 networks in table master4\n3 of 3 routes for 3 networks in table master6\nTotal: 7 of 7 routes for 7 networks in 2 tables\n";
        assert_eq!(parse_count(t), Some(7));
        assert_eq!(
            parse_count("1 of 4 routes for 4 networks in table master4\n"),
            Some(1)
        );
        assert_eq!(parse_count("nonsense"), None);
    }

    #[test]
    fn parses_protocols() {
        let down = "Name       Proto      Table      State  Since         Info
frr4       BGP        ---        start  18:52:55.253  Active        Received: Administrative shutdown
  Message:        bye
  BGP state:          Active
    Neighbor address: 198.51.100.1
    Neighbor AS:      64501
    Local AS:         64502
    Connect delay:    3.405/5
    Last error:       Received: Administrative shutdown
  Channel ipv4
    State:          DOWN
    Table:          master4
    Preference:     100
    Input filter:   ACCEPT
    Output filter:  (unnamed)
";
        let p = parse_protocol(down).unwrap();
        assert_eq!(p.name, "frr4");
        assert_eq!(p.proto, "BGP");
        assert_eq!(p.state, "start");
        assert_eq!(p.info, "Active        Received: Administrative shutdown");
        assert_eq!(p.bgp_state.as_deref(), Some("Active"));
        assert_eq!(
            p.last_error.as_deref(),
            Some("Received: Administrative shutdown")
        );
        assert!(!p.established());

        let up = "BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
frr4       BGP        ---        up     18:50:52.741  Established   
  BGP state:          Established
    Neighbor address: 198.51.100.1
    Neighbor AS:      64501
    Local AS:         64502
    Neighbor ID:      198.51.100.1
    Session:          external AS4
    Source address:   198.51.100.2
    Hold timer:       8.327/9
    Keepalive timer:  2.125/3
  Channel ipv4
    State:          UP
    Table:          master4
    Preference:     100
    Input filter:   ACCEPT
    Output filter:  (unnamed)
    Routes:         1 imported, 2 exported, 1 preferred
    Route change stats:     received   rejected   filtered    ignored   accepted
      Import updates:              1          0          0          0          1
    BGP Next hop:   198.51.100.2
";
        let p = parse_protocol(up).unwrap();
        assert!(p.established());
        assert_eq!(p.state, "up");
        assert_eq!(p.info, "Established");
        assert_eq!(p.hold_time, Some(9));
        assert_eq!(p.keepalive_time, Some(3));
        assert_eq!(p.channel_routes.get("ipv4"), Some(&(1, 2)));
        assert_eq!(p.last_error, None);

        let dated = "Name       Proto      Table      State  Since         Info\nx          BGP        ---        up     2026-11-23 18:50:52  Established\n";
        assert_eq!(parse_protocol(dated).unwrap().info, "Established");
        assert!(parse_protocol("garbage").is_none());
    }

    #[test]
    fn renders_config() {
        let cfg = BirdConfig::new("198.51.100.2")
            .with_kernel()
            .static_v4("203.0.113.128/25 unreachable")
            .neighbor(
                BirdNeighbor::new("frr4", 64502, "198.51.100.1", 64501)
                    .local_addr("198.51.100.2")
                    .neighbor_port(1790)
                    .ipv4()
                    .export_static()
                    .passive()
                    .password("pw")
                    .hold_time(9)
                    .multihop(Some(2)),
            );
        let c = cfg.render(None);
        for l in [
            "router id 198.51.100.2;",
            "protocol kernel kernel_ipv4 { ipv4 { import none; export where source = RTS_BGP; }; merge paths on; }",
            "  route 203.0.113.128/25 unreachable;",
            "protocol bgp frr4 {",
            "  local 198.51.100.2 as 64502;",
            "  neighbor 198.51.100.1 port 1790 as 64501;",
            "  passive on;",
            "  password \"pw\";",
            "  hold time 9;",
            "  multihop 2;",
            "  connect retry time 1;",
            "  error wait time 1, 5;",
            "    import all;",
            "    export where source = RTS_STATIC;",
        ] {
            assert!(c.contains(&format!("{l}\n")), "missing {l:?} in\n{c}");
        }
        assert!(!c.contains("ipv6 {\n"), "{c}");
    }
}
