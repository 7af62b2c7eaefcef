//! Test harness for ferrolb interop tests: Linux network namespaces plus real BGP routers
//! (FRR 8.4, BIRD 2.0.12, GoBGP 3.10) running inside them.
//!
//! Everything here is synchronous (`std::process` + polling): the routers are separate
//! processes, so there is nothing to gain from an async runtime, and plain blocking code keeps
//! failures easy to read. Every resource (namespace, daemon, temp dir) is owned by a value whose
//! `Drop` tears it down, so a failing test still cleans up after itself.
//!
//! [`apiserver`] runs a real Kubernetes API server (etcd + kube-apiserver on 127.0.0.1) for end-to-end
//! tests of the manifests and of the product's processes under their own ServiceAccounts.
//!
//! Typical use:
//!
//! ```no_run
//! use std::time::Duration;
//! use ferrolb_interop_tests::frr::{self, Frr, FrrConfig, FrrNeighbor};
//! use ferrolb_interop_tests::{interop_guard, Afi, LinkedPair};
//!
//! fn frr_learns_a_route() {
//!     interop_guard!(frr::BGPD, frr::ZEBRA);
//!     let pair = LinkedPair::new().unwrap(); // a: 198.51.100.1, b: 198.51.100.2
//!     let cfg = FrrConfig::new(64501, &pair.a_v4)
//!         .with_zebra()
//!         .neighbor(FrrNeighbor::new(&pair.b_v4, 64502).ipv4());
//!     let frr = Frr::start(&pair.a, &cfg).unwrap();
//!     // ... start the speaker in pair.b ...
//!     frr.wait_established(&pair.b_v4, Duration::from_secs(30)).unwrap();
//!     frr.wait_pfx_rcd(&pair.b_v4, Afi::Ipv4, 1, Duration::from_secs(30)).unwrap();
//!     pair.a.wait_route("203.0.113.10/32", true, Duration::from_secs(10)).unwrap();
//! }
//! ```
//!
//! Address rules: links and anything that carries traffic use only 198.51.100.0/24,
//! 203.0.113.0/24 and 2001:db8::/32; bulk route data that is never pinged may also use
//! 100.64.0.0/10.

pub mod apiserver;
pub mod bird;
pub mod frr;
pub mod gobgp;
pub mod l2;
pub mod lab;
pub mod manifests;
pub mod mrt;
pub mod netns;
pub mod proc_stats;
pub mod process;
pub mod speaker;
mod util;

#[cfg(test)]
mod smoke;

pub use netns::{guard, require_binary, require_root_and_netns, veth, LinkedPair, Netns};
pub use util::{wait_until, Afi, Error, Result};

/// Returns early from the calling test (after printing `SKIPPED: ...`) unless root, network
/// namespaces and the listed binaries are available. With `FERROLB_REQUIRE_INTEROP=1` a
/// missing prerequisite panics instead, so CI cannot silently skip interop coverage.
///
/// ```no_run
/// # use ferrolb_interop_tests::interop_guard;
/// fn my_test() {
///     interop_guard!("/usr/lib/frr/bgpd", "/usr/sbin/bird");
///     // ...
/// }
/// ```
#[macro_export]
macro_rules! interop_guard {
    ($($bin:expr),* $(,)?) => {
        if !$crate::netns::guard(&[$($bin),*]) {
            return;
        }
    };
}
