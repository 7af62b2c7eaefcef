//! Every `unsafe` of the layer-2 announcer: binding an AF_PACKET socket to one interface and protocol,
//! receiving with the packet type (to skip our own outgoing frames), and registering the socket with
//! tokio's reactor. Everything else goes through socket2's safe API.

use std::io;
use std::mem;
use std::os::fd::AsRawFd;

use socket2::{Domain, Socket, Type};
use tokio::io::unix::AsyncFd;

/// `sll_pkttype` of a frame this host sent (packet sockets see those too).
pub(crate) const PACKET_OUTGOING: u8 = libc::PACKET_OUTGOING;

fn sockaddr_ll(ifindex: u32, protocol: u16) -> io::Result<libc::sockaddr_ll> {
    Ok(libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as libc::c_ushort,
        sll_protocol: protocol.to_be(),
        sll_ifindex: i32::try_from(ifindex).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "interface index too large")
        })?,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    })
}

/// A non-blocking AF_PACKET/SOCK_RAW socket that receives nothing yet (protocol 0): attach the filter
/// first, then [`bind_packet`], so no unfiltered frame is ever queued.
pub(crate) fn packet_socket() -> io::Result<Socket> {
    Socket::new(Domain::PACKET, Type::RAW.nonblocking(), None)
}

/// Binds `sock` to interface `ifindex` and EtherType `protocol` (host order); from now on it receives
/// that interface's frames of that type and sends out of it.
pub(crate) fn bind_packet(sock: &Socket, ifindex: u32, protocol: u16) -> io::Result<()> {
    let sll = sockaddr_ll(ifindex, protocol)?;
    // SAFETY: the fd is open for the lifetime of `sock`; the pointer and length describe `sll`, a fully
    // initialised sockaddr_ll that lives across the call; bind only reads it.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast::<libc::sockaddr>(),
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// One frame into `buf` (truncated to its length) and its `sll_pkttype` (`PACKET_HOST`, `PACKET_BROADCAST`,
/// `PACKET_MULTICAST`, `PACKET_OTHERHOST`, [`PACKET_OUTGOING`]). Non-blocking: `WouldBlock` when empty.
pub(crate) fn recv_packet(sock: &Socket, buf: &mut [u8]) -> io::Result<(usize, u8)> {
    let mut sll = sockaddr_ll(0, 0)?;
    let mut len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes; `sll` and `len` are valid, initialised
    // out-parameters and `len` holds the size of `sll`, so the kernel writes at most that much into it.
    let n = unsafe {
        libc::recvfrom(
            sock.as_raw_fd(),
            buf.as_mut_ptr().cast::<libc::c_void>(),
            buf.len(),
            0,
            (&mut sll as *mut libc::sockaddr_ll).cast::<libc::sockaddr>(),
            &mut len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // n >= 0 and at most buf.len().
    Ok((n as usize, sll.sll_pkttype))
}

/// Registers `sock` with the current tokio reactor (must run inside a runtime).
pub(crate) fn register(sock: Socket) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: `Socket` owns its file descriptor: it stays open, and `as_raw_fd` returns that same
    // descriptor, until the `Socket` is dropped, which happens only when the `AsyncFd` owning it is
    // dropped (or hands it back with `into_inner`).
    unsafe { AsyncFd::register(sock) }.map_err(|e| e.into_parts().1)
}
