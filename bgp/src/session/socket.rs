//! Building TCP sockets for BGP: source address, TCP-MD5, TTL for single-hop / multihop eBGP, GTSM and
//! TCP_USER_TIMEOUT, all set before `connect()` so that they apply to the SYN.

use super::SessionConfig;
use crate::sys;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};

/// TTL / hop limit of our packets and the minimum we accept, per the session's options.
pub(super) fn ttl_policy(cfg: &SessionConfig) -> (Option<u32>, Option<u8>) {
    if let Some(hops) = cfg.gtsm_hops {
        // RFC 5082 §3: send 255, accept 255 − (hops − 1).
        return (
            Some(255),
            Some(255u8.saturating_sub(hops.saturating_sub(1)).max(1)),
        );
    }
    if cfg.fsm.is_ibgp() {
        return (cfg.ebgp_multihop.map(u32::from), None);
    }
    (Some(u32::from(cfg.ebgp_multihop.unwrap_or(1))), None)
}

pub(super) fn user_timeout(cfg: &SessionConfig) -> Option<Duration> {
    cfg.tcp_user_timeout
        .or_else(|| (cfg.fsm.hold_time > 0).then(|| Duration::from_secs(cfg.fsm.hold_time.into())))
}

/// Applies TTL, GTSM and user-timeout options to an established or about-to-connect socket.
pub(super) fn apply_options(sock: &Socket, v6: bool, cfg: &SessionConfig) -> io::Result<()> {
    let (ttl, min_ttl) = ttl_policy(cfg);
    if let Some(ttl) = ttl {
        if v6 {
            sock.set_unicast_hops_v6(ttl)?;
        } else {
            sock.set_ttl_v4(ttl)?;
        }
    }
    if let Some(min) = min_ttl {
        sys::set_min_ttl(sock.as_raw_fd(), v6, min)?;
    }
    if let Some(t) = user_timeout(cfg) {
        sock.set_tcp_user_timeout(Some(t))?;
    }
    sock.set_tcp_nodelay(true)?;
    Ok(())
}

/// Dials the peer with every option in place before the SYN leaves.
pub(super) async fn connect(cfg: &SessionConfig) -> io::Result<TcpStream> {
    let peer = SocketAddr::new(cfg.peer_address, cfg.peer_port);
    let v6 = peer.is_ipv6();
    let sock = Socket::new(
        if v6 { Domain::IPV6 } else { Domain::IPV4 },
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    sock.set_nonblocking(true)?;
    if let Some(key) = &cfg.password {
        sys::set_tcp_md5(sock.as_raw_fd(), v6, cfg.peer_address, Some(key.as_bytes()))
            .map_err(|e| io::Error::new(e.kind(), format!("setting TCP-MD5 key: {e}")))?;
    }
    apply_options(&sock, v6, cfg)?;
    if let Some(src) = cfg.source_address {
        if src.is_ipv6() != v6 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "source address {src} and peer {} are of different families",
                    cfg.peer_address
                ),
            ));
        }
        sock.bind(&SocketAddr::new(src, 0).into())
            .map_err(|e| io::Error::new(e.kind(), format!("binding source address {src}: {e}")))?;
    }
    let std_stream: std::net::TcpStream = sock.into();
    TcpSocket::from_std_stream(std_stream).connect(peer).await
}

/// Applies per-session options to a connection the peer opened to us.
pub(super) fn prepare_inbound(stream: &TcpStream, cfg: &SessionConfig) -> io::Result<()> {
    let sock = socket2::SockRef::from(stream);
    let v6 = matches!(stream.local_addr()?.ip(), IpAddr::V6(_));
    let (ttl, _) = ttl_policy(cfg);
    if let Some(ttl) = ttl {
        if v6 {
            sock.set_unicast_hops_v6(ttl)?;
        } else {
            sock.set_ttl_v4(ttl)?;
        }
    }
    if let Some(t) = user_timeout(cfg) {
        sock.set_tcp_user_timeout(Some(t))?;
    }
    sock.set_tcp_nodelay(true)
}
