//! Accepting connections for passive peers (and for peers in `Both` mode, where collision detection
//! picks one connection). One listener serves many sessions; a connection from an address with no
//! registered session is closed at once.

use super::SessionHandle;
use crate::sys;
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

type Registry = Arc<Mutex<HashMap<IpAddr, mpsc::Sender<TcpStream>>>>;

pub struct Listener {
    local: SocketAddr,
    fd_socket: Arc<TcpListener>,
    peers: Registry,
    task: JoinHandle<()>,
}

impl Listener {
    pub async fn bind(addr: SocketAddr) -> io::Result<Listener> {
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        sock.set_reuse_address(true)?;
        sock.set_nonblocking(true)?;
        sock.bind(&addr.into())?;
        sock.listen(64)?;
        let listener = Arc::new(TcpListener::from_std(sock.into())?);
        let local = listener.local_addr()?;
        let peers: Registry = Arc::default();
        let task = tokio::spawn(accept_loop(listener.clone(), peers.clone()));
        Ok(Listener {
            local,
            fd_socket: listener,
            peers,
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Routes this peer's connections to `session`; installs its TCP-MD5 key on the listening socket so
    /// that the kernel accepts its signed SYNs.
    pub fn register(&self, session: &SessionHandle, password: Option<&str>) -> io::Result<()> {
        let peer = session.peer();
        if let Some(key) = password {
            sys::set_tcp_md5(
                self.fd_socket.as_raw_fd(),
                self.local.is_ipv6(),
                peer,
                Some(key.as_bytes()),
            )?;
        }
        self.peers
            .lock()
            .expect("registry lock")
            .insert(peer, session.inbound_sender());
        Ok(())
    }

    pub fn unregister(&self, peer: IpAddr) {
        self.peers.lock().expect("registry lock").remove(&peer);
        let _ = sys::set_tcp_md5(self.fd_socket.as_raw_fd(), self.local.is_ipv6(), peer, None);
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

async fn accept_loop(listener: Arc<TcpListener>, peers: Registry) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let peer = canonical(remote.ip());
        let target = peers.lock().expect("registry lock").get(&peer).cloned();
        match target {
            Some(tx) => {
                if tx.try_send(stream).is_err() {
                    tracing::warn!(%remote, "session busy or gone; connection dropped");
                }
            }
            None => tracing::info!(%remote, "connection from an unconfigured address refused"),
        }
    }
}
