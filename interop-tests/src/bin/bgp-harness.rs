//! A ferrolb-bgp speaker as a standalone process, for interop tests and benchmarks: it runs inside a
//! test network namespace (`ip netns exec NS bgp-harness CONFIG-JSON`), takes commands as JSON lines on
//! stdin and prints JSON lines on stdout.
//!
//! Commands: `{"cmd":"routes", <RouteSpec>}`, `{"cmd":"status"}`, `{"cmd":"shutdown","text":"…"}`
//! (Cease, then exit), `{"cmd":"restart"}` (close without Cease for graceful restart, then exit).
//! Output: `{"event":"state","state":"Established"}` on every state change, `{"status":{…}}` on request,
//! `{"done":"shutdown"}` before exiting.

use ferrolb_bgp::fsm::{Backoff, ConnectMode, FsmConfig, GracefulRestartConfig};
use ferrolb_bgp::rib_out::{RouteAttributes, Routes};
use ferrolb_bgp::session::{Listener, SessionConfig, SessionHandle};
use ferrolb_bgp::wire::{Family, LargeCommunity};
use ipnetwork::IpNetwork;
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct RouteSpec {
    v4_start: Option<Ipv4Addr>,
    v4_count: u32,
    v6_start: Option<Ipv6Addr>,
    v6_count: u32,
    /// Further prefixes, e.g. one that a test pings through.
    extra: Vec<String>,
    communities: Vec<String>,
    large_communities: Vec<String>,
    local_pref: Option<u32>,
    med: Option<u32>,
}

#[derive(Deserialize)]
struct GrSpec {
    restart_time: u16,
    #[serde(default)]
    restarting: bool,
}

#[derive(Deserialize)]
struct Config {
    peer: IpAddr,
    #[serde(default = "default_port")]
    peer_port: u16,
    source: Option<IpAddr>,
    local_asn: u32,
    peer_asn: u32,
    router_id: Option<Ipv4Addr>,
    #[serde(default = "default_hold")]
    hold_time: u16,
    keepalive: Option<u16>,
    #[serde(default = "default_retry")]
    connect_retry_ms: u64,
    #[serde(default)]
    mode: Mode,
    /// Where to accept connections (passive / both).
    listen: Option<SocketAddr>,
    password: Option<String>,
    ebgp_multihop: Option<u8>,
    gtsm_hops: Option<u8>,
    ipv4_next_hop: Option<Ipv4Addr>,
    ipv6_next_hop: Option<Ipv6Addr>,
    graceful_restart: Option<GrSpec>,
    max_prefixes: Option<u64>,
    #[serde(default = "default_idle_initial")]
    idle_hold_initial_ms: u64,
    #[serde(default = "default_idle_max")]
    idle_hold_max_ms: u64,
    #[serde(default)]
    routes: RouteSpec,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Active,
    Passive,
    Both,
}

fn default_port() -> u16 {
    179
}
fn default_hold() -> u16 {
    90
}
fn default_retry() -> u64 {
    1000
}
fn default_idle_initial() -> u64 {
    500
}
fn default_idle_max() -> u64 {
    8000
}

fn parse_community(s: &str) -> Result<u32, String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("community {s}: want A:B"))?;
    let a: u16 = a.parse().map_err(|_| format!("community {s}"))?;
    let b: u16 = b.parse().map_err(|_| format!("community {s}"))?;
    Ok(u32::from(a) << 16 | u32::from(b))
}

fn parse_large(s: &str) -> Result<LargeCommunity, String> {
    let p: Vec<u32> = s
        .split(':')
        .map(|x| x.parse().map_err(|_| format!("large community {s}")))
        .collect::<Result<_, _>>()?;
    match p.as_slice() {
        [a, b, c] => Ok(LargeCommunity {
            global_admin: *a,
            local_data1: *b,
            local_data2: *c,
        }),
        _ => Err(format!("large community {s}: want A:B:C")),
    }
}

fn build_routes(spec: &RouteSpec) -> Result<Routes, String> {
    let attrs = Arc::new(RouteAttributes {
        next_hop: None,
        med: spec.med,
        local_pref: spec.local_pref,
        communities: spec
            .communities
            .iter()
            .map(|c| parse_community(c))
            .collect::<Result<_, _>>()?,
        large_communities: spec
            .large_communities
            .iter()
            .map(|c| parse_large(c))
            .collect::<Result<_, _>>()?,
    });
    let mut routes = Routes::new();
    if let Some(start) = spec.v4_start {
        for i in 0..spec.v4_count {
            let a = Ipv4Addr::from(u32::from(start) + i);
            routes.insert(IpNetwork::new(IpAddr::V4(a), 32).unwrap(), attrs.clone());
        }
    }
    if let Some(start) = spec.v6_start {
        for i in 0..spec.v6_count {
            let a = Ipv6Addr::from(u128::from(start) + u128::from(i));
            routes.insert(IpNetwork::new(IpAddr::V6(a), 128).unwrap(), attrs.clone());
        }
    }
    for p in &spec.extra {
        let p: IpNetwork = p.parse().map_err(|e| format!("prefix {p}: {e}"))?;
        routes.insert(p, attrs.clone());
    }
    Ok(routes)
}

fn say(v: serde_json::Value) {
    println!("{v}");
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    ferrolb_speaker::logging::init(false);
    let arg = std::env::args()
        .nth(1)
        .expect("usage: bgp-harness CONFIG-JSON");
    let cfg: Config = serde_json::from_str(&arg).expect("config JSON");

    let router_id = ferrolb_bgp::identity::router_id(
        cfg.router_id,
        &ferrolb_bgp::identity::host_addresses(),
        "bgp-harness",
    );
    let mut fsm = FsmConfig::new(cfg.local_asn, cfg.peer_asn, router_id);
    fsm.hold_time = cfg.hold_time;
    fsm.keepalive_time = cfg.keepalive;
    fsm.connect_retry = Duration::from_millis(cfg.connect_retry_ms);
    fsm.mode = match cfg.mode {
        Mode::Active => ConnectMode::Active,
        Mode::Passive => ConnectMode::Passive,
        Mode::Both => ConnectMode::Both,
    };
    fsm.families = vec![Family::Ipv4Unicast, Family::Ipv6Unicast];
    fsm.graceful_restart = cfg
        .graceful_restart
        .as_ref()
        .map(|g| GracefulRestartConfig {
            restart_time: g.restart_time,
            restarting: g.restarting,
            forwarding_preserved: true,
        });
    fsm.max_prefixes = cfg.max_prefixes;
    fsm.idle_hold = Backoff {
        initial: Duration::from_millis(cfg.idle_hold_initial_ms),
        max: Duration::from_millis(cfg.idle_hold_max_ms),
    };
    let mut session = SessionConfig::new(cfg.peer, fsm);
    session.peer_port = cfg.peer_port;
    session.source_address = cfg.source;
    session.password = cfg.password.clone();
    session.ebgp_multihop = cfg.ebgp_multihop;
    session.gtsm_hops = cfg.gtsm_hops;
    session.ipv4_next_hop = cfg.ipv4_next_hop;
    session.ipv6_next_hop = cfg.ipv6_next_hop;

    let routes = build_routes(&cfg.routes).expect("routes");
    let handle = SessionHandle::spawn_with_routes(session, Arc::new(routes));
    let _listener = match cfg.listen {
        Some(addr) => {
            let l = Listener::bind(addr).await.expect("listen");
            l.register(&handle, cfg.password.as_deref())
                .expect("register peer");
            Some(l)
        }
        None => None,
    };

    let mut status = handle.status();
    tokio::spawn(async move {
        let mut last = "";
        loop {
            let state = status.borrow_and_update().state;
            if state != last {
                say(serde_json::json!({"event": "state", "state": state}));
                last = state;
            }
            if status.changed().await.is_err() {
                return;
            }
        }
    });
    say(serde_json::json!({"ready": true, "router_id": router_id.to_string()}));

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let v: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                say(serde_json::json!({"error": format!("bad command: {e}")}));
                continue;
            }
        };
        match v["cmd"].as_str() {
            Some("routes") => match serde_json::from_value::<RouteSpec>(v.clone())
                .map_err(|e| e.to_string())
                .and_then(|s| build_routes(&s))
            {
                Ok(r) => {
                    handle.set_routes(Arc::new(r));
                    say(serde_json::json!({"ok": "routes"}));
                }
                Err(e) => say(serde_json::json!({"error": e})),
            },
            Some("status") => {
                let s = handle.status().borrow().clone();
                say(serde_json::json!({"status": s}));
            }
            Some("shutdown") => {
                handle.shutdown(v["text"].as_str()).await;
                say(serde_json::json!({"done": "shutdown"}));
                return;
            }
            Some("restart") => {
                handle.stop_for_restart().await;
                say(serde_json::json!({"done": "restart"}));
                return;
            }
            _ => say(serde_json::json!({"error": "unknown command"})),
        }
    }
    // stdin closed: leave politely.
    handle.shutdown(Some("ferrolb bgp-harness exiting")).await;
}
