//! Moving a session's sockets to the I/O driver of the runtime that polls them.
//!
//! A tokio socket stays registered with the runtime it was made on: polled from another one,
//! every readiness event wakes a thread of the first runtime, which hands the wake-up across
//! (a shared queue and a futex). For a session that moves to the bulk lane (`crate::runtime`)
//! that is a cross-thread hand-off per event at the highest event rates the relay sees. So the
//! session takes its sockets along: the descriptor is duplicated, registered with the current
//! runtime's driver, and the old registration is dropped (tokio deregisters it before closing
//! the old descriptor; the socket lives on in the duplicate). A new edge-triggered
//! registration reports the socket's current readiness at once, so no event is lost in the
//! move. TLS state stays where it is: only the transport underneath is swapped.

use std::io;
use std::os::fd::AsFd;

use tokio::net::TcpStream;

use crate::target::ByteStream;

/// A connection whose socket can move to the current runtime's I/O driver.
pub trait Rehome {
    /// Register the socket with the runtime this is called on. On an error (no descriptor
    /// left for the duplicate) the connection is unchanged and still works from here, at the
    /// cost of the cross-runtime wake-ups.
    fn rehome(&mut self) -> io::Result<()>;
}

impl Rehome for TcpStream {
    fn rehome(&mut self) -> io::Result<()> {
        let duplicate = std::net::TcpStream::from(self.as_fd().try_clone_to_owned()?);
        *self = TcpStream::from_std(duplicate)?;
        Ok(())
    }
}

impl Rehome for tokio_rustls::server::TlsStream<TcpStream> {
    fn rehome(&mut self) -> io::Result<()> {
        self.get_mut().0.rehome()
    }
}

impl Rehome for ByteStream {
    fn rehome(&mut self) -> io::Result<()> {
        match self {
            ByteStream::Tcp(s) => s.rehome(),
            ByteStream::Tls(s) => s.get_mut().0.rehome(),
        }
    }
}
