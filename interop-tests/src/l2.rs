//! The ferrolb layer-2 announcer under test: the `l2-harness` binary (src/bin/l2-harness.rs) run inside a
//! "node" namespace and driven by JSON lines, plus a switched segment ([`Segment`]) joining node
//! namespaces and a client namespace, and the client's view of its neighbour table.
//!
//! Node namespaces are set up like a kube-proxy IPVS node with `strictARP: true`: the VIPs are local
//! addresses on `lo` (so pings to them are answered once they arrive), and `arp_ignore=1`,
//! `arp_announce=2` keep the kernel itself from answering ARP for them on `eth0`. (The kernel never
//! answers NDP for an address of another interface.) Whatever resolves a VIP on the segment is
//! therefore the announcer, which the tests also show by the VIP going silent when it is withdrawn.

use crate::netns::{veth, Netns};
use crate::process::JsonProcess;
use crate::util::{Error, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where cargo put the harness binary: next to the running test binary.
pub fn harness_binary() -> PathBuf {
    crate::process::sibling_binary("l2-harness", option_env!("CARGO_BIN_EXE_l2-harness"))
}

/// One running `l2-harness`.
pub struct L2Node {
    process: JsonProcess,
}

impl std::fmt::Debug for L2Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L2Node").field("pid", &self.pid()).finish()
    }
}

impl L2Node {
    /// Starts the harness in `ns` with `options` (see the harness; `json!({})` for the defaults) and
    /// waits until it is ready.
    pub fn start(ns: &Netns, binary: &Path, options: &Value) -> Result<L2Node> {
        Ok(L2Node {
            process: JsonProcess::start(ns, binary, options, "l2 harness")?,
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The harness's own log (stderr).
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Sends `cmd` and waits for the answer carrying `answer_key` (an `{"error": …}` answer fails).
    fn request(&mut self, cmd: &Value, answer_key: &str) -> Result<Value> {
        let before = self.process.seen();
        self.process.send(cmd)?;
        let line = self
            .process
            .wait_line(before, answer_key, Duration::from_secs(10), |v| {
                v.get(answer_key).is_some() || v.get("error").is_some()
            })?;
        match line.value.get("error") {
            Some(e) => Err(Error::msg(format!("l2 harness: {e}"))),
            None => Ok(line.value),
        }
    }

    /// Applies the whole desired state, e.g. `json!({"198.51.100.200": ["eth0"]})`. Returns the answer:
    /// `{"applied": {ip: [ifs]}, "errors": [..]}`.
    pub fn apply(&mut self, desired: &Value) -> Result<Value> {
        self.request(&json!({ "apply": desired }), "applied")
    }

    /// Like [`L2Node::apply`], failing unless every item was applied.
    pub fn apply_ok(&mut self, desired: &Value) -> Result<Value> {
        let r = self.apply(desired)?;
        match r["errors"].as_array() {
            Some(e) if e.is_empty() => Ok(r),
            _ => Err(Error::msg(format!("apply {desired}: {r}"))),
        }
    }

    /// Counters per IP: `{ip: {"requests_received", "responses_sent", "gratuitous_sent"}}`.
    pub fn stats(&mut self) -> Result<Value> {
        Ok(self.request(&json!({ "stats": null }), "stats")?["stats"].clone())
    }

    /// One counter of one IP (0 when the IP has none).
    pub fn stat(&mut self, ip: &str, counter: &str) -> Result<u64> {
        Ok(self.stats()?[ip][counter].as_u64().unwrap_or(0))
    }

    /// Sends SIGTERM and waits for a clean exit (status 0 after `{"done":"shutdown"}`).
    pub fn terminate(mut self) -> Result<()> {
        if !crate::util::signal(self.pid(), libc::SIGTERM) {
            return Err(Error::msg("the l2 harness is not running"));
        }
        self.wait_exit_ok()
    }

    /// Closes stdin (EOF) and waits for a clean exit.
    pub fn close(mut self) -> Result<()> {
        self.process.close_stdin();
        self.wait_exit_ok()
    }

    fn wait_exit_ok(&mut self) -> Result<()> {
        let status = self.process.wait_exit()?;
        let done = self
            .process
            .lines()
            .iter()
            .any(|l| l.value["done"] == "shutdown");
        if status.success() && done {
            Ok(())
        } else {
            Err(Error::msg(format!(
                "l2 harness exited with {status}, shutdown reported: {done}"
            )))
        }
    }
}

/// One entry of a neighbour table (`ip -j neigh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub lladdr: Option<String>,
    pub state: Vec<String>,
}

/// The neighbour entry for `ip` on `dev` in `ns`, if any.
pub fn neighbour(ns: &Netns, dev: &str, ip: &str) -> Result<Option<Neighbour>> {
    let out = ns.ip(&["-j", "neigh", "show", "to", ip, "dev", dev])?;
    if out.trim().is_empty() {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(&out)?;
    Ok(v.as_array().and_then(|a| a.first()).map(|e| Neighbour {
        lladdr: e["lladdr"].as_str().map(str::to_owned),
        state: e["state"]
            .as_array()
            .map(|s| {
                s.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    }))
}

/// The MAC `ns` currently has for `ip` on `dev` (None when absent or unresolved).
pub fn neighbour_mac(ns: &Netns, dev: &str, ip: &str) -> Option<String> {
    neighbour(ns, dev, ip).ok().flatten().and_then(|n| n.lladdr)
}

/// Removes the neighbour entry for `ip` on `dev` (nothing when there is none).
pub fn flush_neighbour(ns: &Netns, dev: &str, ip: &str) -> Result<()> {
    ns.ip(&["neigh", "flush", "to", ip, "dev", dev]).map(|_| ())
}

/// The MAC address of `ifname` in `ns`.
pub fn mac_of(ns: &Netns, ifname: &str) -> Result<String> {
    let out = ns.ip(&["-j", "link", "show", "dev", ifname])?;
    let v: Value = serde_json::from_str(&out)?;
    v[0]["address"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::msg(format!("no address for {ifname}: {out}")))
}

/// A switched segment: the client namespace owns a Linux bridge `br0` (198.51.100.1/24,
/// 2001:db8:100::1/64) and each node namespace is a port of it through a veth, named `eth0` on the
/// node side (198.51.100.11, .12, … and 2001:db8:100::11, ::12, …).
#[derive(Debug)]
pub struct Segment {
    pub client: Netns,
    pub nodes: Vec<Netns>,
}

impl Segment {
    pub const BRIDGE: &'static str = "br0";
    pub const NODE_IF: &'static str = "eth0";
    pub const CLIENT_V4: &'static str = "198.51.100.1";
    pub const CLIENT_V6: &'static str = "2001:db8:100::1";

    /// The node's own addresses.
    pub fn node_v4(i: usize) -> String {
        format!("198.51.100.{}", 11 + i)
    }
    pub fn node_v6(i: usize) -> String {
        format!("2001:db8:100::{}", 11 + i)
    }

    /// Creates the client with its bridge and `n` nodes, and waits until the client reaches every node
    /// over IPv4 and IPv6.
    pub fn new(n: usize) -> Result<Segment> {
        let client = Netns::new()?;
        client.ip(&["link", "add", Self::BRIDGE, "type", "bridge"])?;
        client.add_addr(Self::BRIDGE, &format!("{}/24", Self::CLIENT_V4))?;
        client.add_addr(Self::BRIDGE, &format!("{}/64", Self::CLIENT_V6))?;
        client.set_link(Self::BRIDGE, true)?;
        let mut nodes = Vec::new();
        for i in 0..n {
            let node = Netns::new()?;
            let port = format!("p{i}");
            veth(
                &node,
                Self::NODE_IF,
                &[
                    &format!("{}/24", Self::node_v4(i)),
                    &format!("{}/64", Self::node_v6(i)),
                ],
                &client,
                &port,
                &[],
            )?;
            client.ip(&["link", "set", "dev", &port, "master", Self::BRIDGE])?;
            // kube-proxy IPVS with strictARP: the kernel answers ARP only for addresses of the
            // receiving interface and never uses a VIP as ARP source.
            node.sysctl(&[
                ("net.ipv4.conf.all.arp_ignore", "1"),
                ("net.ipv4.conf.all.arp_announce", "2"),
            ])?;
            nodes.push(node);
        }
        let t = Duration::from_secs(10);
        for i in 0..n {
            client.wait_ping(&Self::node_v4(i), None, t)?;
            client.wait_ping(&Self::node_v6(i), None, t)?;
        }
        Ok(Segment { client, nodes })
    }

    /// Puts `vips` on node `i`'s loopback (as kube-proxy IPVS puts them on `kube-ipvs0`), so traffic
    /// that reaches the node is answered.
    pub fn serve_vips(&self, i: usize, vips: &[&str]) -> Result<()> {
        for vip in vips {
            let cidr = if vip.contains(':') {
                format!("{vip}/128")
            } else {
                format!("{vip}/32")
            };
            self.nodes[i].add_addr("lo", &cidr)?;
        }
        Ok(())
    }

    /// The client's MAC for `ip` (on the bridge).
    pub fn client_mac_for(&self, ip: &str) -> Option<String> {
        neighbour_mac(&self.client, Self::BRIDGE, ip)
    }

    /// Node `i`'s MAC on the segment.
    pub fn node_mac(&self, i: usize) -> Result<String> {
        mac_of(&self.nodes[i], Self::NODE_IF)
    }
}
