//! ferrolb-bgp: a BGP-4 speaker that originates routes to routers.
//!
//! Layers, each usable alone:
//! - [`wire`]: the message codec (RFC 4271 §4, §6 and extensions), pure;
//! - [`fsm`]: the per-peer finite state machine (RFC 4271 §8), pure `handle(event) -> actions`;
//! - [`rib_out`]: the Adj-RIB-Out: desired routes in, packed UPDATEs out, pure;
//! - [`session`]: the tokio driver that runs one task per peer over TCP;
//! - [`identity`]: deterministic router-ID selection.
//!
//! No Kubernetes here: the speaker crate maps its objects onto [`session::SessionConfig`].
#![deny(unsafe_code)]

pub mod fsm;
pub mod identity;
pub mod rib_out;
pub mod session;
mod sys;
pub mod wire;
