//! Whole-configuration validation: [`validate()`] turns the set of objects into a [`Config`] or reports
//! every problem, each with the object, the field path and what is wrong.
//!
//! It re-checks every rule the CRD schemas carry as CEL (objects may come from files, or from a cluster
//! whose CRDs predate a rule) and adds what needs the whole set: pools that overlap, references to pools,
//! peers, BFD profiles, community aliases and secrets, aggregation lengths against the pools they
//! apply to, conflicting local preferences, duplicate names and sessions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::Resource;

use crate::config::{
    ip_to_u128, AddressRange, Bfd, BgpAd, BgpCommunity, Config, L2Ad, NodePreference, Peer,
    PeerAsn, PeerPassword, PeerTarget, Pool, PoolAllocation,
};
use crate::duration::GoDuration;
use crate::manifest::{ConfigObject, Objects, Source};
use crate::selector::Selector;
use crate::{DynamicASNMode, Kind, ObjectRef};

/// One problem in a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The object at fault.
    pub object: ObjectRef,
    /// Where the object was read from, when it came from a file.
    pub source: Option<Source>,
    /// The field path within the object, such as `spec.addresses[2]`.
    pub field: String,
    /// What is wrong, in plain words.
    pub problem: String,
    /// The problem is a reference to an object that does not exist (a pool, peer, BFD profile or
    /// community alias). Such errors can be transient while objects are being created one by one; an
    /// admission webhook may choose to ignore them.
    pub unresolved_reference: bool,
}

impl ConfigError {
    /// `file: Kind namespace/name: field: problem` (without `file: ` when the source is unknown).
    pub fn line(&self) -> String {
        match &self.source {
            Some(source) => format!("{}: {self}", source.file.display()),
            None => self.to_string(),
        }
    }
}

impl fmt::Display for ConfigError {
    /// `Kind namespace/name: field: problem`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.object, self.field, self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// The default BGP hold time when neither holdTime nor keepaliveTime is set.
pub const DEFAULT_HOLD_TIME: Duration = Duration::from_secs(90);

/// Validate a whole configuration. Either every object is valid and consistent with the others and the
/// parsed [`Config`] is returned, or every problem found is returned (never only the first).
pub fn validate(objects: &Objects) -> Result<Config, Vec<ConfigError>> {
    let mut v = Validator {
        objects,
        errors: Vec::new(),
    };
    v.check_names();
    let pools = v.pools();
    let aliases = v.community_aliases();
    let bfds = v.bfd_profiles();
    let peers = v.peers();
    let bgp_ads = v.bgp_advertisements(&pools, &aliases);
    let l2_ads = v.l2_advertisements(&pools);
    v.local_pref_conflicts(&pools, &bgp_ads);
    v.bfd_echo(&pools, &peers, &bgp_ads, &bfds);
    v.duplicate_sessions(&peers);
    if !v.errors.is_empty() {
        return Err(v.errors);
    }
    let mut config = Config {
        pools: pools.into_iter().flatten().collect(),
        peers: peers.into_iter().flatten().collect(),
        bgp_advertisements: bgp_ads.into_iter().flatten().collect(),
        l2_advertisements: l2_ads.into_iter().flatten().collect(),
        bfd_profiles: bfds.into_iter().flatten().collect(),
        community_aliases: aliases.into_iter().map(|(k, (v, _))| (k, v)).collect(),
    };
    config.pools.sort_by(|a, b| a.name.cmp(&b.name));
    config.peers.sort_by(|a, b| a.name.cmp(&b.name));
    config
        .bgp_advertisements
        .sort_by(|a, b| a.name.cmp(&b.name));
    config.l2_advertisements.sort_by(|a, b| a.name.cmp(&b.name));
    config.bfd_profiles.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(config)
}

struct Validator<'a> {
    objects: &'a Objects,
    errors: Vec<ConfigError>,
}

/// A parsed pool entry, for overlap detection.
struct Interval {
    family: u32,
    first: u128,
    last: u128,
    pool: usize,
    entry: usize,
    text: String,
}

fn name_of<T: Resource>(o: &T) -> &str {
    o.meta().name.as_deref().unwrap_or("")
}

fn namespace_of<T: Resource>(o: &T) -> Option<&str> {
    o.meta().namespace.as_deref()
}

fn labels_of<T: Resource>(o: &T) -> BTreeMap<String, String> {
    o.meta().labels.clone().unwrap_or_default()
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

impl<'a> Validator<'a> {
    fn object_ref<T: ConfigObject>(&self, index: usize) -> ObjectRef {
        let o = &T::all(self.objects)[index];
        ObjectRef::new(T::KIND, namespace_of(o), name_of(o))
    }

    fn push<T: ConfigObject>(
        &mut self,
        index: usize,
        field: impl Into<String>,
        problem: impl Into<String>,
        unresolved: bool,
    ) {
        let object = self.object_ref::<T>(index);
        self.errors.push(ConfigError {
            object,
            source: self.objects.source(T::KIND, index).cloned(),
            field: field.into(),
            problem: problem.into(),
            unresolved_reference: unresolved,
        });
    }

    fn err<T: ConfigObject>(
        &mut self,
        index: usize,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) {
        self.push::<T>(index, field, problem, false);
    }

    fn dangling<T: ConfigObject>(
        &mut self,
        index: usize,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) {
        self.push::<T>(index, field, problem, true);
    }

    /// Where another object is, for messages: `IPAddressPool ns/a (pools.yaml)`.
    fn describe<T: ConfigObject>(&self, index: usize) -> String {
        let r = self.object_ref::<T>(index);
        match self.objects.source(T::KIND, index) {
            Some(s) => format!("{r} in {}", s.file.display()),
            None => r.to_string(),
        }
    }

    fn exists<T: ConfigObject>(&self, name: &str) -> bool {
        T::all(self.objects).iter().any(|o| name_of(o) == name)
            || self.objects.failed_to_load(T::KIND, name)
    }

    fn selectors<T: ConfigObject>(
        &mut self,
        index: usize,
        field: &str,
        list: &[LabelSelector],
    ) -> Vec<Selector> {
        let mut out = Vec::new();
        for (i, sel) in list.iter().enumerate() {
            match Selector::from_label_selector(sel) {
                Ok(s) => out.push(s),
                Err(problems) => {
                    for (sub, problem) in problems {
                        self.err::<T>(index, format!("{field}[{i}].{sub}"), problem);
                    }
                }
            }
        }
        out
    }

    // ---- names -------------------------------------------------------------------------------------

    fn check_names(&mut self) {
        self.names_of::<crate::IPAddressPool>();
        self.names_of::<crate::BGPPeer>();
        self.names_of::<crate::BGPAdvertisement>();
        self.names_of::<crate::L2Advertisement>();
        self.names_of::<crate::Community>();
        self.names_of::<crate::BFDProfile>();
    }

    /// Names are required and unique per kind: references between objects use bare names.
    fn names_of<T: ConfigObject>(&mut self) {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, o) in T::all(self.objects).iter().enumerate() {
            let name = name_of(o).to_owned();
            if name.is_empty() {
                self.err::<T>(i, "metadata.name", "a name is required");
                continue;
            }
            match seen.get(&name) {
                Some(&first) => {
                    let other = self.describe::<T>(first);
                    self.err::<T>(
                        i,
                        "metadata.name",
                        format!("duplicate name: {other} has the same name"),
                    );
                }
                None => {
                    seen.insert(name, i);
                }
            }
        }
    }

    // ---- pools -------------------------------------------------------------------------------------

    fn pools(&mut self) -> Vec<Option<Pool>> {
        let objects = self.objects;
        let mut pools = Vec::new();
        let mut intervals = Vec::new();
        for (i, p) in objects.ip_address_pools.iter().enumerate() {
            let before = self.errors.len();
            if p.spec.addresses.is_empty() {
                self.err::<crate::IPAddressPool>(
                    i,
                    "spec.addresses",
                    "at least one address range is required",
                );
            }
            let mut cidrs = Vec::new();
            for (j, entry) in p.spec.addresses.iter().enumerate() {
                match entry.parse::<AddressRange>() {
                    Ok(range) => {
                        let (first, family) = ip_to_u128(range.first);
                        let (last, _) = ip_to_u128(range.last);
                        intervals.push(Interval {
                            family,
                            first,
                            last,
                            pool: i,
                            entry: j,
                            text: entry.trim().to_owned(),
                        });
                        cidrs.extend(range.cidrs);
                    }
                    Err(problem) => {
                        self.err::<crate::IPAddressPool>(i, format!("spec.addresses[{j}]"), problem)
                    }
                }
            }
            let service_allocation = p.spec.service_allocation.as_ref().map(|a| {
                let namespace_selectors = self.selectors::<crate::IPAddressPool>(
                    i,
                    "spec.serviceAllocation.namespaceSelectors",
                    &a.namespace_selectors,
                );
                let service_selectors = self.selectors::<crate::IPAddressPool>(
                    i,
                    "spec.serviceAllocation.serviceSelectors",
                    &a.service_selectors,
                );
                for (j, ns) in a.namespaces.iter().enumerate() {
                    if ns.is_empty() {
                        self.err::<crate::IPAddressPool>(
                            i,
                            format!("spec.serviceAllocation.namespaces[{j}]"),
                            "empty namespace name",
                        );
                    }
                }
                PoolAllocation {
                    priority: a.priority,
                    namespaces: a.namespaces.clone(),
                    namespace_selectors,
                    service_selectors,
                }
            });
            let ok = self.errors.len() == before;
            pools.push(ok.then(|| Pool {
                name: name_of(p).to_owned(),
                namespace: namespace_of(p).map(str::to_owned),
                labels: labels_of(p),
                cidrs,
                auto_assign: p.spec.auto_assign,
                avoid_buggy_ips: p.spec.avoid_buggy_ips,
                service_allocation,
            }));
        }
        self.overlaps(intervals);
        pools
    }

    /// The order in which pools came to be, for naming the one whose addition causes an overlap: by
    /// `metadata.creationTimestamp` (objects from files have none and keep their file order), then by
    /// position.
    fn pool_age(&self, pool: usize) -> (bool, Option<k8s_openapi::jiff::Timestamp>, usize) {
        let created = self.objects.ip_address_pools[pool]
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0);
        (created.is_none(), created, pool)
    }

    /// Pools (and the entries of one pool) must not overlap: an address belongs to one pool. The error
    /// goes to the entry that came last (the later pool, or the later entry of one pool), and the
    /// message names both objects, the one being added first.
    fn overlaps(&mut self, mut intervals: Vec<Interval>) {
        intervals.sort_by_key(|iv| (iv.family, iv.first, iv.pool, iv.entry));
        // Sweep, keeping the interval reaching furthest so far in the current family.
        let mut reach: Option<usize> = None;
        let mut reported = BTreeSet::new();
        for k in 0..intervals.len() {
            if let Some(r) = reach {
                let (a, b) = (&intervals[r], &intervals[k]);
                if a.family == b.family && b.first <= a.last {
                    // Report on whichever entry came later: the pool created (or declared) later, or
                    // the later entry of one pool.
                    let (earlier, later) =
                        if (self.pool_age(a.pool), a.entry) < (self.pool_age(b.pool), b.entry) {
                            (a, b)
                        } else {
                            (b, a)
                        };
                    if reported.insert((later.pool, later.entry)) {
                        // Its file, if any, is already where the error line starts.
                        let added = self.object_ref::<crate::IPAddressPool>(later.pool);
                        let problem = if earlier.pool == later.pool {
                            format!(
                                "{} of {added} overlaps its own spec.addresses[{}] ({}); an address \
                                 can belong to one pool only",
                                later.text, earlier.entry, earlier.text
                            )
                        } else {
                            let since = match (
                                self.pool_age(earlier.pool).1,
                                self.pool_age(later.pool).1,
                            ) {
                                (Some(_), Some(_)) => ", which was created earlier",
                                _ => "",
                            };
                            format!(
                                "{} of {added} overlaps {} of {}{since}; an address can belong to \
                                 one pool only",
                                later.text,
                                earlier.text,
                                self.describe::<crate::IPAddressPool>(earlier.pool)
                            )
                        };
                        let (pool, entry) = (later.pool, later.entry);
                        self.err::<crate::IPAddressPool>(
                            pool,
                            format!("spec.addresses[{entry}]"),
                            problem,
                        );
                    }
                }
                let a = &intervals[r];
                let b = &intervals[k];
                if a.family != b.family || b.last > a.last {
                    reach = Some(k);
                }
            } else {
                reach = Some(k);
            }
        }
    }

    // ---- communities -------------------------------------------------------------------------------

    fn community_aliases(&mut self) -> BTreeMap<String, (BgpCommunity, usize)> {
        let objects = self.objects;
        let mut aliases: BTreeMap<String, (BgpCommunity, usize)> = BTreeMap::new();
        let mut first_seen: HashMap<String, (usize, usize)> = HashMap::new();
        for (i, c) in objects.communities.iter().enumerate() {
            for (j, alias) in c.spec.communities.iter().enumerate() {
                let field = |f: &str| format!("spec.communities[{j}].{f}");
                if alias.name.is_empty() {
                    self.err::<crate::Community>(
                        i,
                        field("name"),
                        "the alias name must not be empty",
                    );
                } else if alias.name.parse::<BgpCommunity>().is_ok() {
                    self.err::<crate::Community>(
                        i,
                        field("name"),
                        format!(
                            "alias name {:?} is itself a community value; choose a name",
                            alias.name
                        ),
                    );
                } else if let Some(&(ci, cj)) = first_seen.get(&alias.name) {
                    let other = if ci == i {
                        format!("spec.communities[{cj}] of the same object")
                    } else {
                        self.describe::<crate::Community>(ci)
                    };
                    self.err::<crate::Community>(
                        i,
                        field("name"),
                        format!("alias {:?} is already defined by {other}", alias.name),
                    );
                } else {
                    first_seen.insert(alias.name.clone(), (i, j));
                }
                match alias.value.parse::<BgpCommunity>() {
                    Ok(v) => {
                        if !alias.name.is_empty() {
                            aliases.entry(alias.name.clone()).or_insert((v, i));
                        }
                    }
                    Err(problem) => self.err::<crate::Community>(i, field("value"), problem),
                }
            }
        }
        aliases
    }

    // ---- BFD profiles ------------------------------------------------------------------------------

    fn bfd_profiles(&mut self) -> Vec<Option<Bfd>> {
        let objects = self.objects;
        let mut out = Vec::new();
        for (i, b) in objects.bfd_profiles.iter().enumerate() {
            let s = &b.spec;
            let before = self.errors.len();
            for (field, value, lo, hi, unit) in [
                (
                    "spec.receiveInterval",
                    s.receive_interval,
                    10,
                    60000,
                    " milliseconds",
                ),
                (
                    "spec.transmitInterval",
                    s.transmit_interval,
                    10,
                    60000,
                    " milliseconds",
                ),
                ("spec.detectMultiplier", s.detect_multiplier, 2, 255, ""),
                (
                    "spec.echoInterval",
                    s.echo_interval,
                    10,
                    60000,
                    " milliseconds",
                ),
                ("spec.minimumTtl", s.minimum_ttl, 1, 254, ""),
            ] {
                if !(lo..=hi).contains(&value) {
                    self.err::<crate::BFDProfile>(
                        i,
                        field,
                        format!("{value} is out of range: must be {lo} to {hi}{unit}"),
                    );
                }
            }
            let ok = self.errors.len() == before;
            out.push(ok.then(|| Bfd {
                name: name_of(b).to_owned(),
                namespace: namespace_of(b).map(str::to_owned),
                receive_interval: Duration::from_millis(s.receive_interval.into()),
                transmit_interval: Duration::from_millis(s.transmit_interval.into()),
                detect_multiplier: s.detect_multiplier as u8,
                echo_interval: Duration::from_millis(s.echo_interval.into()),
                echo_mode: s.echo_mode,
                passive_mode: s.passive_mode,
                minimum_ttl: s.minimum_ttl as u8,
            }));
        }
        out
    }

    // ---- peers -------------------------------------------------------------------------------------

    fn duration_field(
        &mut self,
        index: usize,
        field: &str,
        value: &Option<String>,
    ) -> Option<GoDuration> {
        let text = value.as_deref()?;
        match GoDuration::parse(text) {
            Ok(d) if d.is_negative() => {
                self.err::<crate::BGPPeer>(index, field, format!("{text} is negative"));
                None
            }
            Ok(d) if !d.is_whole_seconds() => {
                self.err::<crate::BGPPeer>(
                    index,
                    field,
                    format!("{text} is not a whole number of seconds"),
                );
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.err::<crate::BGPPeer>(index, field, e.to_string());
                None
            }
        }
    }

    fn peers(&mut self) -> Vec<Option<Peer>> {
        type P = crate::BGPPeer;
        let objects = self.objects;
        let mut out = Vec::new();
        for (i, p) in objects.bgp_peers.iter().enumerate() {
            let s = &p.spec;
            let before = self.errors.len();

            if s.my_asn == 0 {
                self.err::<P>(
                    i,
                    "spec.myASN",
                    "must not be 0 (AS numbers are 1 to 4294967295)",
                );
            }
            if s.local_asn == Some(0) {
                self.err::<P>(
                    i,
                    "spec.localASN",
                    "must not be 0 (AS numbers are 1 to 4294967295)",
                );
            }
            let peer_asn = match (s.peer_asn, s.dynamic_asn) {
                (Some(_), Some(_)) => {
                    self.err::<P>(
                        i,
                        "spec.peerASN",
                        "set either peerASN or dynamicASN, not both",
                    );
                    None
                }
                (None, None) => {
                    self.err::<P>(
                        i,
                        "spec.peerASN",
                        "one of peerASN or dynamicASN is required",
                    );
                    None
                }
                (Some(0), None) => {
                    self.err::<P>(
                        i,
                        "spec.peerASN",
                        "must not be 0 (AS numbers are 1 to 4294967295)",
                    );
                    None
                }
                (Some(asn), None) => Some(PeerAsn::Fixed(asn)),
                (None, Some(DynamicASNMode::Internal)) => Some(PeerAsn::Internal),
                (None, Some(DynamicASNMode::External)) => Some(PeerAsn::External),
            };

            let address = non_empty(&s.peer_address);
            let interface = non_empty(&s.interface);
            let target = match (address, interface) {
                (Some(_), Some(_)) => {
                    self.err::<P>(
                        i,
                        "spec.peerAddress",
                        "set either peerAddress or interface, not both",
                    );
                    None
                }
                (None, None) => {
                    self.err::<P>(
                        i,
                        "spec.peerAddress",
                        "one of peerAddress or interface is required",
                    );
                    None
                }
                (Some(a), None) => match a.parse::<IpAddr>() {
                    Ok(ip) => Some(PeerTarget::Address(ip)),
                    Err(_) => {
                        self.err::<P>(i, "spec.peerAddress", format!("{a:?} is not an IP address"));
                        None
                    }
                },
                (None, Some(ifname)) => match check_interface_name(ifname) {
                    Ok(()) => Some(PeerTarget::Interface(ifname.to_owned())),
                    Err(problem) => {
                        self.err::<P>(i, "spec.interface", problem);
                        None
                    }
                },
            };

            let source_address = match non_empty(&s.source_address) {
                None => None,
                Some(a) => match a.parse::<IpAddr>() {
                    Ok(ip) => {
                        if let Some(PeerTarget::Address(peer)) = &target {
                            if peer.is_ipv4() != ip.is_ipv4() {
                                self.err::<P>(
                                    i,
                                    "spec.sourceAddress",
                                    format!(
                                        "{ip} is {} but peerAddress {peer} is {}: both ends of a session use one IP family",
                                        family_name(ip),
                                        family_name(*peer)
                                    ),
                                );
                            }
                        }
                        Some(ip)
                    }
                    Err(_) => {
                        self.err::<P>(
                            i,
                            "spec.sourceAddress",
                            format!("{a:?} is not an IP address"),
                        );
                        None
                    }
                },
            };

            if !(1..=16384).contains(&s.peer_port) {
                self.err::<P>(
                    i,
                    "spec.peerPort",
                    format!("{} is out of range: must be 1 to 16384", s.peer_port),
                );
            }

            // Timers.
            let hold = self.duration_field(i, "spec.holdTime", &s.hold_time);
            let keepalive = self.duration_field(i, "spec.keepaliveTime", &s.keepalive_time);
            let connect = self.duration_field(i, "spec.connectTime", &s.connect_time);
            if let Some(h) = hold {
                let secs = h.whole_seconds();
                if secs != 0 && !(3..=65535).contains(&secs) {
                    self.err::<P>(
                        i,
                        "spec.holdTime",
                        format!("{h} is out of range: must be 0 (no hold timer) or 3s to 65535s"),
                    );
                }
            }
            if let Some(k) = keepalive {
                match hold {
                    Some(h) if k > h => self.err::<P>(
                        i,
                        "spec.keepaliveTime",
                        format!("{k} is longer than holdTime {h}: keepalives must be sent before the hold timer expires"),
                    ),
                    Some(h) if k.is_zero() && !h.is_zero() => self.err::<P>(
                        i,
                        "spec.keepaliveTime",
                        format!("0 disables keepalives, so the peer would drop the session after holdTime {h}; set holdTime to 0 too"),
                    ),
                    None if k.whole_seconds() > 65535 / 3 => self.err::<P>(
                        i,
                        "spec.keepaliveTime",
                        format!("{k} is too long: without holdTime, the hold time is three times the keepalive and must stay within 65535s"),
                    ),
                    _ => {}
                }
            }
            if let Some(c) = connect {
                if !(1..=65535).contains(&c.whole_seconds()) {
                    self.err::<P>(
                        i,
                        "spec.connectTime",
                        format!("{c} is out of range: must be 1s to 65535s"),
                    );
                }
            }
            let secs = |d: GoDuration| Duration::from_secs(d.whole_seconds() as u64);
            let (hold_time, keepalive_time) = match (hold, keepalive) {
                (Some(h), Some(k)) => (secs(h), secs(k)),
                (Some(h), None) => (secs(h), Duration::from_secs(secs(h).as_secs() / 3)),
                (None, Some(k)) => (secs(k) * 3, secs(k)),
                (None, None) => (DEFAULT_HOLD_TIME, DEFAULT_HOLD_TIME / 3),
            };

            let router_id = match non_empty(&s.router_id) {
                None => None,
                Some(r) => match r.parse::<IpAddr>() {
                    Ok(IpAddr::V4(v4)) if !v4.is_unspecified() => Some(v4),
                    Ok(IpAddr::V4(_)) => {
                        self.err::<P>(i, "spec.routerID", "0.0.0.0 is not a usable router ID");
                        None
                    }
                    Ok(IpAddr::V6(_)) => {
                        self.err::<P>(
                            i,
                            "spec.routerID",
                            format!("{r} is IPv6: a BGP router ID is an IPv4 address"),
                        );
                        None
                    }
                    Err(_) => {
                        self.err::<P>(i, "spec.routerID", format!("{r:?} is not an IPv4 address"));
                        None
                    }
                },
            };

            let node_selectors = self.selectors::<P>(i, "spec.nodeSelectors", &s.node_selectors);

            // Authentication.
            let password = non_empty(&s.password);
            if let Some(pw) = password {
                if pw.len() > 80 {
                    self.err::<P>(
                        i,
                        "spec.password",
                        format!("{} bytes long; TCP-MD5 keys are at most 80 bytes", pw.len()),
                    );
                }
            }
            let secret_ref = s
                .password_secret
                .as_ref()
                .filter(|r| r.name.is_some() || r.namespace.is_some());
            let password = match (password, secret_ref) {
                (Some(_), Some(_)) => {
                    self.err::<P>(
                        i,
                        "spec.passwordSecret",
                        "set either password or passwordSecret, not both",
                    );
                    None
                }
                (Some(pw), None) => Some(PeerPassword::Literal(pw.to_owned())),
                (None, None) => None,
                (None, Some(r)) => self.password_secret(i, p, r),
            };

            let bfd_profile = non_empty(&s.bfd_profile).map(str::to_owned);
            if let Some(b) = &bfd_profile {
                if !self.exists::<crate::BFDProfile>(b) {
                    self.dangling::<P>(
                        i,
                        "spec.bfdProfile",
                        format!("there is no BFDProfile named {b:?}"),
                    );
                }
            }

            if s.ebgp_multi_hop {
                let local = s.local_asn.unwrap_or(s.my_asn);
                let ibgp = match peer_asn {
                    Some(PeerAsn::Fixed(asn)) => asn == local,
                    Some(PeerAsn::Internal) => true,
                    _ => false,
                };
                if ibgp {
                    self.err::<P>(
                        i,
                        "spec.ebgpMultiHop",
                        format!("applies to eBGP only, but this session is iBGP (local and peer AS are both {local})"),
                    );
                }
            }

            let ok = self.errors.len() == before;
            out.push(match (ok, peer_asn, target) {
                (true, Some(peer_asn), Some(target)) => Some(Peer {
                    name: name_of(p).to_owned(),
                    namespace: namespace_of(p).map(str::to_owned),
                    my_asn: s.my_asn,
                    peer_asn,
                    local_asn: s.local_asn,
                    target,
                    source_address,
                    port: s.peer_port,
                    hold_time,
                    keepalive_time,
                    connect_time: connect.map(secs),
                    router_id,
                    node_selectors,
                    password,
                    bfd_profile,
                    enable_graceful_restart: s.enable_graceful_restart,
                    ebgp_multi_hop: s.ebgp_multi_hop,
                    vrf: non_empty(&s.vrf).map(str::to_owned),
                    disable_mp: s.disable_mp,
                    dual_stack_address_family: s.dual_stack_address_family,
                }),
                _ => None,
            });
        }
        out
    }

    fn password_secret(
        &mut self,
        i: usize,
        peer: &crate::BGPPeer,
        r: &k8s_openapi::api::core::v1::SecretReference,
    ) -> Option<PeerPassword> {
        type P = crate::BGPPeer;
        let Some(name) = non_empty(&r.name) else {
            self.err::<P>(
                i,
                "spec.passwordSecret.name",
                "the name of the Secret is required",
            );
            return None;
        };
        let peer_ns = namespace_of(peer);
        let ns = non_empty(&r.namespace);
        if let (Some(ns), Some(peer_ns)) = (ns, peer_ns) {
            if ns != peer_ns {
                self.err::<P>(
                    i,
                    "spec.passwordSecret.namespace",
                    format!("the Secret must be in the BGPPeer's namespace {peer_ns:?} (ferrolb's namespace), not {ns:?}"),
                );
                return None;
            }
        }
        let want_ns = ns.or(peer_ns);
        let secret = self.objects.secrets.iter().find(|s| {
            s.metadata.name.as_deref() == Some(name)
                && (want_ns.is_none()
                    || s.metadata.namespace.is_none()
                    || s.metadata.namespace.as_deref() == want_ns)
        });
        let mut password = None;
        if let Some(secret) = secret {
            let ty = secret.type_.as_deref().unwrap_or("Opaque");
            if ty != "kubernetes.io/basic-auth" {
                self.err::<P>(
                    i,
                    "spec.passwordSecret",
                    format!("Secret {name:?} has type {ty:?}; it must be of type kubernetes.io/basic-auth"),
                );
            }
            let value = secret
                .string_data
                .as_ref()
                .and_then(|d| d.get("password").cloned())
                .or_else(|| {
                    secret
                        .data
                        .as_ref()
                        .and_then(|d| d.get("password"))
                        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                });
            match value {
                Some(v) if v.len() > 80 => self.err::<P>(
                    i,
                    "spec.passwordSecret",
                    format!("the password in Secret {name:?} is {} bytes long; TCP-MD5 keys are at most 80 bytes", v.len()),
                ),
                Some(v) => password = Some(v),
                None => self.err::<P>(i, "spec.passwordSecret", format!("Secret {name:?} has no key \"password\"")),
            }
        }
        Some(PeerPassword::Secret {
            namespace: ns.map(str::to_owned),
            name: name.to_owned(),
            password,
        })
    }

    // ---- advertisements ----------------------------------------------------------------------------

    /// The pools an advertisement applies to: the named ones and the selected ones, or every pool when
    /// neither names nor selectors are given.
    fn resolve_pools<T: ConfigObject>(
        &mut self,
        index: usize,
        names: &[String],
        selectors: &[LabelSelector],
    ) -> Vec<String> {
        let objects = self.objects;
        let mut out = BTreeSet::new();
        for (j, name) in names.iter().enumerate() {
            if self.exists::<crate::IPAddressPool>(name) {
                out.insert(name.clone());
            } else {
                self.dangling::<T>(
                    index,
                    format!("spec.ipAddressPools[{j}]"),
                    format!("there is no IPAddressPool named {name:?}"),
                );
            }
        }
        let parsed = self.selectors::<T>(index, "spec.ipAddressPoolSelectors", selectors);
        for pool in &objects.ip_address_pools {
            if parsed.iter().any(|s| s.matches(&labels_of(pool))) {
                out.insert(name_of(pool).to_owned());
            }
        }
        if names.is_empty() && selectors.is_empty() {
            out.extend(
                objects
                    .ip_address_pools
                    .iter()
                    .map(|p| name_of(p).to_owned()),
            );
        }
        out.into_iter().filter(|n| !n.is_empty()).collect()
    }

    fn bgp_advertisements(
        &mut self,
        pools: &[Option<Pool>],
        aliases: &BTreeMap<String, (BgpCommunity, usize)>,
    ) -> Vec<Option<BgpAd>> {
        type A = crate::BGPAdvertisement;
        let objects = self.objects;
        let mut out = Vec::new();
        for (i, a) in objects.bgp_advertisements.iter().enumerate() {
            let s = &a.spec;
            let before = self.errors.len();
            let agg4 = if (1..=32).contains(&s.aggregation_length) {
                Some(s.aggregation_length as u8)
            } else {
                self.err::<A>(
                    i,
                    "spec.aggregationLength",
                    format!("{} is out of range: must be 1 to 32", s.aggregation_length),
                );
                None
            };
            let agg6 = if (1..=128).contains(&s.aggregation_length_v6) {
                Some(s.aggregation_length_v6 as u8)
            } else {
                self.err::<A>(
                    i,
                    "spec.aggregationLengthV6",
                    format!(
                        "{} is out of range: must be 1 to 128",
                        s.aggregation_length_v6
                    ),
                );
                None
            };
            if !s.service_selectors.is_empty()
                && (s.aggregation_length != 32 || s.aggregation_length_v6 != 128)
            {
                self.err::<A>(
                    i,
                    "spec.serviceSelectors",
                    "can only be used with the default aggregation lengths (32 and 128): an aggregate covers other Services too",
                );
            }

            let mut communities = Vec::new();
            for (j, c) in s.communities.iter().enumerate() {
                let field = format!("spec.communities[{j}]");
                let value = if let Some((v, _)) = aliases.get(c) {
                    Some(*v)
                } else if c.contains(':') {
                    match c.parse::<BgpCommunity>() {
                        Ok(v) => Some(v),
                        Err(problem) => {
                            self.err::<A>(i, field, problem);
                            None
                        }
                    }
                } else {
                    let defined = objects
                        .communities
                        .iter()
                        .any(|o| o.spec.communities.iter().any(|al| &al.name == c));
                    if !defined && !objects.any_failed(Kind::Community) {
                        self.dangling::<A>(
                            i,
                            field,
                            format!("{c:?} is neither a community value (AA:NN, large:A:B:C) nor the name of a Community alias"),
                        );
                    }
                    None
                };
                if let Some(v) = value {
                    if !communities.contains(&v) {
                        communities.push(v);
                    }
                }
            }

            let resolved =
                self.resolve_pools::<A>(i, &s.ip_address_pools, &s.ip_address_pool_selectors);

            // An aggregate may not be wider than a CIDR of a pool it applies to.
            for pool_name in &resolved {
                let Some(pool) = pools.iter().flatten().find(|p| &p.name == pool_name) else {
                    continue;
                };
                let pool_index = objects
                    .ip_address_pools
                    .iter()
                    .position(|p| name_of(p) == pool_name)
                    .unwrap_or(0);
                for (agg, v4, field) in [
                    (agg4, true, "spec.aggregationLength"),
                    (agg6, false, "spec.aggregationLengthV6"),
                ] {
                    let Some(agg) = agg else { continue };
                    let narrowest = pool
                        .cidrs
                        .iter()
                        .filter(|c| c.is_ipv4() == v4)
                        .max_by_key(|c| c.prefix());
                    if let Some(cidr) = narrowest.filter(|c| c.prefix() > agg) {
                        let pool_desc = self.describe::<crate::IPAddressPool>(pool_index);
                        self.err::<A>(
                            i,
                            field,
                            format!(
                                "{agg} is shorter than the prefix length of {cidr} in {pool_desc}: the aggregate would cover addresses outside the pool; use {} or more",
                                cidr.prefix()
                            ),
                        );
                    }
                }
            }

            for (j, peer) in s.peers.iter().enumerate() {
                if !self.exists::<crate::BGPPeer>(peer) {
                    self.dangling::<A>(
                        i,
                        format!("spec.peers[{j}]"),
                        format!("there is no BGPPeer named {peer:?}"),
                    );
                }
            }
            let node_selectors = self.selectors::<A>(i, "spec.nodeSelectors", &s.node_selectors);
            let service_selectors =
                self.selectors::<A>(i, "spec.serviceSelectors", &s.service_selectors);

            let ok = self.errors.len() == before;
            out.push(match (ok, agg4, agg6) {
                (true, Some(aggregation_length), Some(aggregation_length_v6)) => Some(BgpAd {
                    name: name_of(a).to_owned(),
                    namespace: namespace_of(a).map(str::to_owned),
                    aggregation_length,
                    aggregation_length_v6,
                    local_pref: s.local_pref,
                    communities,
                    pools: resolved,
                    node_selectors,
                    peers: s.peers.clone(),
                    service_selectors,
                }),
                _ => None,
            });
        }
        out
    }

    fn l2_advertisements(&mut self, _pools: &[Option<Pool>]) -> Vec<Option<L2Ad>> {
        type A = crate::L2Advertisement;
        let objects = self.objects;
        let mut out = Vec::new();
        for (i, a) in objects.l2_advertisements.iter().enumerate() {
            let s = &a.spec;
            let before = self.errors.len();
            let pools =
                self.resolve_pools::<A>(i, &s.ip_address_pools, &s.ip_address_pool_selectors);
            let node_selectors = self.selectors::<A>(i, "spec.nodeSelectors", &s.node_selectors);
            let service_selectors =
                self.selectors::<A>(i, "spec.serviceSelectors", &s.service_selectors);
            for (j, ifname) in s.interfaces.iter().enumerate() {
                if let Err(problem) = check_interface_name(ifname) {
                    self.err::<A>(i, format!("spec.interfaces[{j}]"), problem);
                }
            }
            let mut preferred = Vec::new();
            for (j, pref) in s.preferred_node_selectors.iter().enumerate() {
                if !(1..=100).contains(&pref.weight) {
                    self.err::<A>(
                        i,
                        format!("spec.preferredNodeSelectors[{j}].weight"),
                        format!("{} is out of range: must be 1 to 100", pref.weight),
                    );
                }
                let sel = self.selectors::<A>(
                    i,
                    &format!("spec.preferredNodeSelectors[{j}].preference"),
                    std::slice::from_ref(&pref.preference),
                );
                if let Some(selector) = sel.into_iter().next() {
                    preferred.push(NodePreference {
                        weight: pref.weight.clamp(1, 100) as u8,
                        selector,
                    });
                }
            }
            let ok = self.errors.len() == before;
            out.push(ok.then(|| L2Ad {
                name: name_of(a).to_owned(),
                namespace: namespace_of(a).map(str::to_owned),
                pools,
                node_selectors,
                interfaces: s.interfaces.clone(),
                service_selectors,
                preferred_node_selectors: preferred,
            }));
        }
        out
    }

    // ---- cross-object checks -----------------------------------------------------------------------

    /// Two advertisements announcing the same prefixes (same pool, same aggregation, same nodes, same
    /// Services) to a common peer must agree on LOCAL_PREF, or the peer gets two versions of one route.
    fn local_pref_conflicts(&mut self, pools: &[Option<Pool>], ads: &[Option<BgpAd>]) {
        let objects = self.objects;
        let specs = &objects.bgp_advertisements;
        let mut reported = BTreeSet::new();
        for pool in pools.iter().flatten() {
            let applying: Vec<usize> = (0..ads.len())
                .filter(|&i| {
                    ads[i]
                        .as_ref()
                        .is_some_and(|a| a.pools.contains(&pool.name))
                })
                .collect();
            for (x, &i) in applying.iter().enumerate() {
                for &j in &applying[x + 1..] {
                    let (a, b) = (
                        ads[i].as_ref().expect("filtered"),
                        ads[j].as_ref().expect("filtered"),
                    );
                    let same_prefixes = (pool.has_ipv4()
                        && a.aggregation_length == b.aggregation_length)
                        || (pool.has_ipv6() && a.aggregation_length_v6 == b.aggregation_length_v6);
                    let common_peer = a.peers.is_empty()
                        || b.peers.is_empty()
                        || a.peers.iter().any(|p| b.peers.contains(p));
                    let same_nodes = specs[i].spec.node_selectors == specs[j].spec.node_selectors;
                    let same_services =
                        specs[i].spec.service_selectors == specs[j].spec.service_selectors;
                    let (pa, pb) = (a.local_pref.unwrap_or(0), b.local_pref.unwrap_or(0));
                    if same_prefixes
                        && common_peer
                        && same_nodes
                        && same_services
                        && pa != pb
                        && reported.insert((i, j))
                    {
                        let other = self.describe::<crate::BGPAdvertisement>(i);
                        self.err::<crate::BGPAdvertisement>(
                            j,
                            "spec.localPref",
                            format!(
                                "{pb} conflicts with localPref {pa} of {other}: both announce the same prefixes of IPAddressPool {:?} to the same peers from the same nodes",
                                pool.name
                            ),
                        );
                    }
                }
            }
        }
    }

    /// BFD echo mode works on single-hop IPv4 sessions only.
    fn bfd_echo(
        &mut self,
        pools: &[Option<Pool>],
        peers: &[Option<Peer>],
        ads: &[Option<BgpAd>],
        bfds: &[Option<Bfd>],
    ) {
        let objects = self.objects;
        for (i, p) in objects.bgp_peers.iter().enumerate() {
            let Some(profile) = non_empty(&p.spec.bfd_profile) else {
                continue;
            };
            let Some(bfd) = bfds.iter().flatten().find(|b| b.name == profile) else {
                continue;
            };
            if !bfd.echo_mode {
                continue;
            }
            if p.spec.ebgp_multi_hop {
                self.err::<crate::BGPPeer>(
                    i,
                    "spec.bfdProfile",
                    format!("BFDProfile {profile:?} enables echoMode, which is not supported on multi-hop sessions (ebgpMultiHop)"),
                );
                continue;
            }
            let Some(peer) = peers[i].as_ref() else {
                continue;
            };
            let v6_pool = ads
                .iter()
                .flatten()
                .filter(|a| a.targets_peer(&peer.name))
                .find_map(|a| {
                    a.pools.iter().find(|name| {
                        pools
                            .iter()
                            .flatten()
                            .any(|p| &p.name == *name && p.has_ipv6())
                    })
                });
            if let Some(pool) = v6_pool {
                self.err::<crate::BGPPeer>(
                    i,
                    "spec.bfdProfile",
                    format!("BFDProfile {profile:?} enables echoMode, which is not supported for peers advertising IPv6 pools (IPAddressPool {pool:?})"),
                );
            }
        }
    }

    /// Two peers opening the same session (same address, VRF and port) from the same nodes.
    fn duplicate_sessions(&mut self, peers: &[Option<Peer>]) {
        let objects = self.objects;
        let mut seen: HashMap<(PeerTarget, Option<String>, u16, String), usize> = HashMap::new();
        for (i, peer) in peers.iter().enumerate() {
            let Some(peer) = peer else { continue };
            let nodes = serde_json::to_string(&objects.bgp_peers[i].spec.node_selectors)
                .unwrap_or_default();
            let key = (peer.target.clone(), peer.vrf.clone(), peer.port, nodes);
            match seen.get(&key) {
                Some(&first) => {
                    let other = self.describe::<crate::BGPPeer>(first);
                    let field = match peer.target {
                        PeerTarget::Address(_) => "spec.peerAddress",
                        PeerTarget::Interface(_) => "spec.interface",
                    };
                    self.err::<crate::BGPPeer>(
                        i,
                        field,
                        format!("{other} already opens this session (same address, VRF and port) from the same nodes"),
                    );
                }
                None => {
                    seen.insert(key, i);
                }
            }
        }
    }
}

fn family_name(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// A Linux interface name: 1 to 15 bytes, no `/`, no whitespace, not `.` or `..`.
fn check_interface_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the interface name must not be empty".into());
    }
    if name.len() > 15 {
        return Err(format!(
            "{name:?} is longer than 15 bytes, the limit for Linux interface names"
        ));
    }
    if name == "."
        || name == ".."
        || name.contains('/')
        || name.contains(char::is_whitespace)
        || name.contains(':')
    {
        return Err(format!("{name:?} is not a valid interface name"));
    }
    Ok(())
}
