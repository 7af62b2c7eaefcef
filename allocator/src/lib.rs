//! IP address allocation for LoadBalancer Services (issue 3, parts 3 and 4): MetalLB's rules, made
//! deterministic and fast, and stable across restarts and pool edits.
//!
//! The core is pure — no Kubernetes client, no I/O; only [`controller`] talks to the API server. Callers describe pools ([`PoolConfig`], already validated)
//! and Services ([`ServiceView`]), and get assignments or typed reasons back:
//!
//! - [`Allocator`] is the incremental core for the controller: [`Allocator::set_pools`],
//!   [`Allocator::import`] (every existing status, on start, before anything else), [`Allocator::reconcile`]
//!   per Service event, [`Allocator::release`] on deletion, [`Allocator::stats`] and
//!   [`Allocator::conflicts`] for pool status.
//! - [`allocate_all`] / [`plan`] compute the whole state at once, independent of input order (standalone
//!   speakers, `ferrolb plan`).
//!
//! ```
//! use std::net::IpAddr;
//! use ferrolb_allocator::{allocate_all, Allocator, PoolConfig, Reconciled, ServiceView};
//!
//! let first: IpAddr = "203.0.113.0".parse().unwrap();
//! let pools = vec![PoolConfig::new("default", &["203.0.113.0/24", "2001:db8::/64"])];
//! let mut allocator = Allocator::new(None);
//! allocator.set_pools(pools.clone()).unwrap();
//!
//! let web = ServiceView::load_balancer("shop", "web");
//! match allocator.reconcile(&web) {
//!     Reconciled::Handled { result: Ok(a), .. } => assert_eq!(a.ips, [first]),
//!     other => panic!("{other:?}"),
//! }
//!
//! // The same objects, whole-state: the same answer.
//! let all = allocate_all(&pools, None, &[web.clone()]).unwrap();
//! assert_eq!(all[&web.key()].as_ref().unwrap().ips, [first]);
//! ```
//!
//! Rules: `shared/reference/metallb-semantics.md` §1.1 (pools), §2 (Service inputs), §3 (allocation). Where
//! ferrolb deliberately differs from MetalLB:
//! - pools are tried in a deterministic order (ties and fallback pools by name, not Go map order);
//! - the first free address comes from a free-interval set per CIDR, not a walk of the CIDR (same result);
//! - a pool edit or deletion never renumbers a Service: its IPs are kept and reported as a [`PoolConflict`];
//! - a failure names every pool tried and how each fell short (MetalLB: "no available IPs");
//! - a `serviceAllocation` with no namespaces and no selectors admits every Service (MetalLB never uses it).

pub mod adapt;
mod addrset;
mod allocator;
pub mod annotations;
pub mod controller;
mod error;
mod held;
mod plan;
mod pool;
mod request;
mod selector;
mod service;
mod table;

pub use allocator::{AllocEvent, Allocator, Assignment, Imported, PoolStats, Reconciled};
pub use annotations::{aliases_used, AliasUse};
pub use error::{
    AllocationError, ClearReason, ConfigError, PoolConflict, SharingMismatch, Shortfall,
    StrandedReason,
};
pub use ipnetwork::IpNetwork;
pub use plan::{allocate_all, plan, Plan, Planned};
pub use pool::{Denied, PoolConfig, ServiceAllocation};
pub use selector::{
    LabelSelector, Labels, Requirement as LabelSelectorRequirement, SelectorOperator,
};
pub use service::{
    ExternalTrafficPolicy, Ignored, IpFamily, IpFamilyPolicy, Protocol, ServiceKey, ServicePort,
    ServiceView,
};
