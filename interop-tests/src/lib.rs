//! Test harness for ferrolb interop tests: Linux network namespaces plus real BGP routers
//! (FRR 8.4, BIRD 2.0.12, GoBGP 3.10) running inside them.
//!
//! Everything here is synchronous (`std::process` + polling): the routers are separate
//! processes, so there is nothing to gain from an async runtime, and plain blocking code keeps
//! failures easy to read. Every resource (namespace, daemon, temp dir) is owned by a value whose
//! `Drop` tears it down, so a failing test still cleans up after itself.
//!
//! Typical use:
//!
//! ```no_run
//! use ferrolb_interop_tests::{interop_guard, netns::LinkedPair, frr::{Frr, FrrConfig, FrrNeighbor}};
//! # fn t() -> ferrolb_interop_tests::Result<()> {
//! interop_guard!(ferrolb_interop_tests::frr::BGPD);
//! let pair = LinkedPair::new()?;
//! let cfg = FrrConfig::new(64501, &pair.a_v4)
//!     .neighbor(FrrNeighbor::new(&pair.b_v4, 64502).ipv4());
//! let frr = Frr::start(&pair.a, &cfg)?;
//! frr.wait_established(&pair.b_v4, std::time::Duration::from_secs(30))?;
//! # Ok(()) }
//! ```
//!
//! Address rules: links and anything that carries traffic use only 198.51.100.0/24,
//! 203.0.113.0/24 and 2001:db8::/32; bulk route data that is never pinged may also use
//! 100.64.0.0/10.

pub mod bird;
pub mod frr;
pub mod gobgp;
pub mod mrt;
pub mod netns;
pub mod proc_stats;
mod util;

#[cfg(test)]
mod smoke;

pub use netns::{guard, require_binary, require_root_and_netns, LinkedPair, Netns};
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
