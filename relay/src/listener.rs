//! The browser-facing listening socket: bound alone, or in a SO_REUSEPORT group so that a
//! redeploy can start the new relay on the same port before the old one stops accepting
//! (`WSPROXY_REUSE_PORT`), and closed without dropping what is already queued on it.
//!
//! Why the sweep at close: in a reuse-port group the kernel spreads new connections over the
//! members' queues; a member that closes resets the connections still waiting in its own
//! queue (unless the host sets `net.ipv4.tcp_migrate_req=1`, which hands them to the other
//! members). Accepting everything queued just before closing leaves only the connections whose
//! handshake completes in that instant, and those the sysctl covers.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// The backlog std and tokio use for `TcpListener::bind`.
const BACKLOG: u32 = 1024;

/// Bind `addr` (SO_REUSEADDR as usual; SO_REUSEPORT when `reuse_port`). The IPv6 wildcard
/// `[::]` is bound dual stack (IPv4 clients arrive as IPv4-mapped addresses, see
/// [`client_address`]), whatever the host's `net.ipv6.bindv6only`; on a host without IPv6
/// (a pod with IPv6 disabled) it is bound as `0.0.0.0` instead, and a warning says so.
pub fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    match bind_exactly(addr, reuse_port) {
        Err(e) if addr.ip() == Ipv6Addr::UNSPECIFIED && no_ipv6_here(&e) => {
            let v4 = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port());
            tracing::warn!(error = %e, "no IPv6 on this host: listening on {v4} (IPv4 only) instead of {addr}");
            bind_exactly(v4, reuse_port)
        }
        other => other,
    }
}

fn bind_exactly(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    if addr.ip() == Ipv6Addr::UNSPECIFIED {
        dual_stack(&socket)?;
    }
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// The errors a host without IPv6 gives for an IPv6 socket or the `[::]` bind.
fn no_ipv6_here(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL) | Some(libc::EPROTONOSUPPORT))
}

/// IPV6_V6ONLY off: the socket takes IPv4 connections too (tokio's TcpSocket has no setter).
fn dual_stack(socket: &TcpSocket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let off: libc::c_int = 0;
    // SAFETY: a valid socket descriptor and a c_int option of the size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            (&off as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A client's address as people write it: an IPv4 client of a dual-stack listener is
/// `::ffff:192.0.2.1` to the socket and `192.0.2.1` in limits, logs, audit records and metrics.
pub fn client_address(peer: SocketAddr) -> SocketAddr {
    SocketAddr::new(peer.ip().to_canonical(), peer.port())
}

/// Accept one connection, its peer written canonically; on an error (EMFILE and friends) log
/// it and back off instead of spinning. The relay's, the metrics' and the admin listener use it.
pub async fn accept(listener: &TcpListener) -> Option<(TcpStream, SocketAddr)> {
    match listener.accept().await {
        Ok((tcp, peer)) => Some((tcp, client_address(peer))),
        Err(e) => {
            tracing::warn!(error = %e, address = ?listener.local_addr().ok(), "accept failed");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            None
        }
    }
}

/// Close the listener, first accepting every connection already queued on it. Returns them
/// with their peers, to be served like any other.
pub fn close_after_sweep(listener: TcpListener) -> Vec<(TcpStream, SocketAddr)> {
    let mut queued = Vec::new();
    let Ok(listener) = listener.into_std() else {
        return queued;
    };
    // into_std leaves the socket non-blocking: accept returns WouldBlock once the queue is empty.
    while let Ok((tcp, peer)) = listener.accept() {
        if tcp.set_nonblocking(true).is_ok() {
            if let Ok(tcp) = TcpStream::from_std(tcp) {
                queued.push((tcp, client_address(peer)));
            }
        }
    }
    queued
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_relays_of_one_user_share_a_port_only_with_reuse_port() {
        let first = bind("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let addr = first.local_addr().unwrap();
        let second = bind(addr, true).expect("a second member of the reuse-port group");
        assert_eq!(second.local_addr().unwrap(), addr);
        let lone = bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let err = bind(lone.local_addr().unwrap(), true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "a listener bound without SO_REUSEPORT keeps its port");
    }

    #[tokio::test]
    async fn the_ipv6_wildcard_takes_ipv4_and_ipv6_clients() {
        let listener = bind("[::]:0".parse().unwrap(), false).unwrap();
        let port = listener.local_addr().unwrap().port();
        for client in ["127.0.0.1", "::1"] {
            let ip: std::net::IpAddr = client.parse().unwrap();
            let _c = std::net::TcpStream::connect((ip, port)).unwrap_or_else(|e| panic!("{client}: {e}"));
            let (_, peer) = listener.accept().await.unwrap();
            assert_eq!(client_address(peer).ip(), ip, "{client} arrives as itself (not ::ffff:...)");
        }
    }

    #[tokio::test]
    async fn closing_serves_what_was_queued() {
        let listener = bind("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let addr = listener.local_addr().unwrap();
        let clients: Vec<_> = (0..3).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
        let queued = close_after_sweep(listener);
        assert_eq!(queued.len(), clients.len(), "every connection waiting in the queue is handed over, none reset");
        let locals: Vec<_> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
        assert!(queued.iter().all(|(_, peer)| locals.contains(peer)));
        assert!(std::net::TcpStream::connect(addr).is_err(), "closed afterwards");
    }
}
