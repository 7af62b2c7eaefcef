//! Every way an allocation can fail or an assignment can be cleared or stranded, each with a plain-words
//! message for `AllocationFailed` / `ClearAssignment` events and `ferrolb plan`.

use std::fmt;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::pool::Denied;
use crate::service::{IpFamily, ServiceKey, ServicePort};

/// Why a Service gets no IP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    #[error("the Service has no cluster IP, so its IP family is unknown")]
    NoClusterIp,
    #[error("annotation {key}={value:?} is invalid: {problem}")]
    InvalidAnnotation {
        key: String,
        value: String,
        problem: String,
    },
    #[error("spec.loadBalancerIP {value:?} is not an IP address")]
    InvalidLoadBalancerIp { value: String },
    #[error("annotation {annotation} and spec.loadBalancerIP cannot both be set")]
    ConflictingRequests { annotation: String },
    #[error(
        "requested IPs {} do not match the Service's IP families ({})",
        join_ips(.requested),
        join_families(.families)
    )]
    RequestedFamilyMismatch {
        requested: Vec<IpAddr>,
        families: Vec<IpFamily>,
    },
    #[error("requested IP {ip} is in no pool")]
    RequestedIpNotInPool { ip: IpAddr },
    #[error("requested IP {ip} is in pool {pool}, which avoids addresses ending in .0 or .255")]
    RequestedIpBuggy { ip: IpAddr, pool: String },
    #[error("requested IPs {} lie in different pools ({})", join_ips(.requested), .pools.join(", "))]
    RequestedIpsInDifferentPools {
        requested: Vec<IpAddr>,
        pools: Vec<String>,
    },
    #[error("requested IP {ip} is in pool {pool}, but the address-pool annotation asks for pool {wanted}")]
    RequestedIpWrongPool {
        ip: IpAddr,
        pool: String,
        wanted: String,
    },
    #[error("pool {pool} does not exist")]
    UnknownPool { pool: String },
    #[error("pool {pool} does not admit this Service: {denied}")]
    PoolDoesNotAdmit { pool: String, denied: Denied },
    #[error("IP {ip} is held by {holder} with an incompatible sharing key: {mismatch}")]
    SharingConflict {
        ip: IpAddr,
        holder: ServiceKey,
        mismatch: Box<SharingMismatch>,
    },
    #[error("IP {ip} is held by {holder}, which also uses port {port}")]
    PortConflict {
        ip: IpAddr,
        holder: ServiceKey,
        port: ServicePort,
    },
    #[error("no address pools are configured")]
    NoPools,
    #[error("no pool admits this Service")]
    NoPoolAdmits,
    #[error("{}", no_address(*.dual_stack_required, .shortfalls))]
    NoAddress {
        dual_stack_required: bool,
        shortfalls: Vec<Shortfall>,
    },
}

impl AllocationError {
    /// A stable identifier of the variant (event reason detail, metric label, JSON `reason`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoClusterIp => "NoClusterIP",
            Self::InvalidAnnotation { .. } => "InvalidAnnotation",
            Self::InvalidLoadBalancerIp { .. } => "InvalidLoadBalancerIP",
            Self::ConflictingRequests { .. } => "ConflictingRequests",
            Self::RequestedFamilyMismatch { .. } => "RequestedFamilyMismatch",
            Self::RequestedIpNotInPool { .. } => "RequestedIPNotInPool",
            Self::RequestedIpBuggy { .. } => "RequestedIPBuggy",
            Self::RequestedIpsInDifferentPools { .. } => "RequestedIPsInDifferentPools",
            Self::RequestedIpWrongPool { .. } => "RequestedIPWrongPool",
            Self::UnknownPool { .. } => "UnknownPool",
            Self::PoolDoesNotAdmit { .. } => "PoolDoesNotAdmit",
            Self::SharingConflict { .. } => "SharingConflict",
            Self::PortConflict { .. } => "PortConflict",
            Self::NoPools => "NoPools",
            Self::NoPoolAdmits => "NoPoolAdmits",
            Self::NoAddress { .. } => "NoAddress",
        }
    }
}

impl Serialize for AllocationError {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("AllocationError", 2)?;
        st.serialize_field("reason", self.code())?;
        st.serialize_field("message", &self.to_string())?;
        st.end()
    }
}

/// How a pool fell short for one family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Shortfall {
    pub pool: String,
    pub family: IpFamily,
    /// False: the pool has no addresses of this family at all. True: it has some, none usable now.
    pub exhausted: bool,
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.exhausted {
            write!(
                f,
                "pool {} is exhausted (no free {} address)",
                self.pool, self.family
            )
        } else {
            write!(f, "pool {} has no {} addresses", self.pool, self.family)
        }
    }
}

fn no_address(dual_stack_required: bool, shortfalls: &[Shortfall]) -> String {
    let list = shortfalls
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if dual_stack_required {
        format!("RequireDualStack needs IPv4 and IPv6 from one pool, but {list}")
    } else {
        format!("no address available: {list}")
    }
}

/// Why two Services may not share an IP (besides overlapping ports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum SharingMismatch {
    /// The holder has no `allow-shared-ip` key.
    HolderDoesNotShare,
    /// This Service has no `allow-shared-ip` key.
    ServiceDoesNotShare,
    DifferentKeys {
        held: String,
        wanted: String,
    },
    /// With externalTrafficPolicy Local both must select the same endpoints (or one of them is Cluster).
    DifferentBackends {
        held: String,
        wanted: String,
    },
}

impl fmt::Display for SharingMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HolderDoesNotShare => f.write_str("the holder does not allow sharing"),
            Self::ServiceDoesNotShare => f.write_str("this Service does not allow sharing"),
            Self::DifferentKeys { held, wanted } => {
                write!(f, "its key is {held:?}, this Service's is {wanted:?}")
            }
            Self::DifferentBackends { held, wanted } => write!(
                f,
                "externalTrafficPolicy/selector differ (holder: {}, this Service: {})",
                backend(held),
                backend(wanted)
            ),
        }
    }
}

fn backend(key: &str) -> String {
    if key.is_empty() {
        "Cluster".into()
    } else {
        format!("Local with selector {key}")
    }
}

/// Why an existing assignment no longer fits the pools. ferrolb keeps such an IP (it is never handed to
/// another Service) and reports the conflict instead of renumbering the Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum StrandedReason {
    /// The pool the IP came from was deleted.
    PoolDeleted { pool: String },
    /// The IP is no longer inside the pool it came from (`now`: the pool it lies in today, if any).
    LeftPool {
        pool: Option<String>,
        now: Option<String>,
    },
    /// The pool now sets avoidBuggyIPs and the IP ends in .0 or .255.
    BuggyIp { pool: String },
    /// The Service's IPs now lie in different pools.
    SplitAcrossPools { pools: Vec<String> },
    /// The pool's serviceAllocation no longer admits the Service.
    NotAdmitted { pool: String, denied: Denied },
}

impl fmt::Display for StrandedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PoolDeleted { pool } => write!(f, "pool {pool} no longer exists"),
            Self::LeftPool { pool, now } => {
                match pool {
                    Some(p) => write!(f, "the IP is no longer in pool {p}")?,
                    None => f.write_str("the IP is in no pool")?,
                }
                match now {
                    Some(n) if pool.is_some() => write!(f, " (it now belongs to pool {n})"),
                    _ => Ok(()),
                }
            }
            Self::BuggyIp { pool } => {
                write!(f, "pool {pool} now avoids addresses ending in .0 or .255")
            }
            Self::SplitAcrossPools { pools } => write!(
                f,
                "the Service's IPs now lie in different pools ({})",
                pools.join(", ")
            ),
            Self::NotAdmitted { pool, denied } => {
                write!(f, "pool {pool} no longer admits the Service: {denied}")
            }
        }
    }
}

/// An assigned IP that a pool edit or deletion left outside the rules: kept, and reported for the Service's
/// events and the pool's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolConflict {
    /// The pool concerned: the one the IP came from, or the one that no longer admits it. None only when an
    /// imported IP lies in no pool and the Service does not say which pool it came from.
    pub pool: Option<String>,
    pub service: ServiceKey,
    pub ip: IpAddr,
    pub reason: StrandedReason,
}

impl fmt::Display for PoolConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} keeps {} although {}",
            self.service, self.ip, self.reason
        )
    }
}

/// Why an existing assignment was dropped (a `ClearAssignment` event); a new allocation follows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClearReason {
    #[error("the Service has no cluster IP")]
    NoClusterIp,
    #[error(
        "the assigned IPs {} do not match the Service's IP families ({})",
        join_ips(.ips),
        join_families(.families)
    )]
    FamilyChanged {
        ips: Vec<IpAddr>,
        families: Vec<IpFamily>,
    },
    #[error("the Service now requests {}", join_ips(.requested))]
    RequestedIpsChanged { requested: Vec<IpAddr> },
    #[error("the address-pool annotation now asks for pool {wanted}{}", came_from(.current))]
    PoolAnnotationChanged {
        wanted: String,
        current: Option<String>,
    },
    #[error("{0}")]
    Sharing(Box<AllocationError>),
    #[error("after a change to the Service, {0}")]
    ServiceChanged(StrandedReason),
    #[error("status lists {}: {problem}", join_ips(.ips))]
    InvalidStatus {
        ips: Vec<IpAddr>,
        problem: &'static str,
    },
}

impl Serialize for ClearReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Pools the allocator refuses (the validation layer normally rejects these first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("pool {name} is defined twice")]
    DuplicatePool { name: String },
    /// Two pools share addresses. `pool` and `cidr` are the ones being added when
    /// [`crate::Allocator::set_pools`] can tell (a CIDR the pool of that name did not have before).
    #[error(
        "pool {pool}: {cidr} overlaps {other_cidr} of pool {other_pool}; an address can belong to one pool only"
    )]
    Overlap {
        pool: String,
        cidr: IpNetwork,
        other_pool: String,
        other_cidr: IpNetwork,
    },
}

fn came_from(pool: &Option<String>) -> String {
    pool.as_ref()
        .map(|p| format!(" (the IPs came from pool {p})"))
        .unwrap_or_default()
}

fn join_ips(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn join_families(f: &[IpFamily]) -> String {
    f.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
