//! The real client address behind load balancers and reverse proxies.
//!
//! Behind a balancer every client arrives from the balancer's address, so per-address limits,
//! audit records and logs would all name the balancer. A balancer can say who the client is: in
//! a PROXY protocol header (v1 text or v2 binary, HAProxy's format, parsed by the `ppp` crate)
//! before the first byte of TLS, or in `Forwarded` / `X-Forwarded-For` request headers (nginx
//! and other HTTP proxies). Anyone can write either, so both are believed only from peers in
//! `WSPROXY_TRUSTED_PROXIES`; from every other peer they are never read (a PROXY header) or
//! ignored (request headers), and the peer is the client.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use ppp::{v1, v2, HeaderResult, PartialResult};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Whether trusted peers send a PROXY protocol header (`WSPROXY_PROXY_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocol {
    /// Never read one: a header would be taken for the start of TLS or HTTP, and refused.
    Off,
    /// Read one when a trusted peer sends it; a trusted peer may also connect without.
    Optional,
    /// A trusted peer must send one: a balancer that forgot it would make every client look
    /// like the balancer, so such a connection is closed. Other peers are taken as themselves.
    Required,
}

impl ProxyProtocol {
    pub fn parse(value: &str) -> Result<ProxyProtocol, String> {
        match value.to_ascii_lowercase().as_str() {
            "off" => Ok(ProxyProtocol::Off),
            "optional" => Ok(ProxyProtocol::Optional),
            "required" => Ok(ProxyProtocol::Required),
            _ => Err("expected off, optional or required".into()),
        }
    }
}

/// Which peers are believed about the client, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTrust {
    proxies: Vec<IpNet>,
    pub proxy_protocol: ProxyProtocol,
}

/// The most bytes a PROXY header may take before the connection is closed: v1 is at most 107;
/// v2 is 16 plus addresses (at most 216, for UNIX sockets) plus TLVs, which HAProxy keeps small.
/// Read before anyone is authenticated, so bounded.
pub const MAX_PROXY_HEADER: usize = 1024;

/// Why a connection from a trusted peer was closed at its PROXY header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderRefusal {
    /// `required`, and the connection began with something else.
    Missing,
    /// It began like a header but is not a valid one, or is longer than [`MAX_PROXY_HEADER`].
    Invalid(String),
    /// Closed or timed out before the header was complete.
    Incomplete,
}

impl std::fmt::Display for HeaderRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderRefusal::Missing => write!(f, "no PROXY protocol header from a trusted proxy (WSPROXY_PROXY_PROTOCOL=required)"),
            HeaderRefusal::Invalid(why) => write!(f, "invalid PROXY protocol header: {why}"),
            HeaderRefusal::Incomplete => write!(f, "PROXY protocol header not complete before the connection closed or timed out"),
        }
    }
}

/// The v2 signature and the v1 prefix: what a header begins with.
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8] = b"PROXY ";

impl ClientTrust {
    /// From `WSPROXY_TRUSTED_PROXIES` (comma-separated CIDRs or addresses) and
    /// `WSPROXY_PROXY_PROTOCOL`.
    pub fn parse(proxies: &str, proxy_protocol: ProxyProtocol) -> Result<ClientTrust, String> {
        let mut nets = Vec::new();
        for item in proxies.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => item.parse::<IpAddr>().map(IpNet::from).map_err(|_| format!("{item:?} is not a CIDR or an IP address"))?,
            };
            nets.push(net);
        }
        if nets.is_empty() && proxy_protocol != ProxyProtocol::Off {
            return Err("a PROXY protocol header is believed only from WSPROXY_TRUSTED_PROXIES, which is empty: \
                        list the balancers' addresses there"
                .into());
        }
        Ok(ClientTrust { proxies: nets, proxy_protocol })
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.proxies.iter().any(|net| net.contains(&ip))
    }

    /// Whether a connection from `ip` may begin with a PROXY header (so is looked at for one).
    pub fn reads_header_from(&self, ip: IpAddr) -> bool {
        self.proxy_protocol != ProxyProtocol::Off && self.trusts(ip)
    }

    /// The client a trusted peer names in a PROXY header at the start of `tcp`, which is
    /// consumed (and nothing after it); `peer` itself when the protocol is off, the peer is not
    /// trusted, or (`optional`) it sent no header. A v2 `LOCAL` header (a balancer's own health
    /// check) and v1 `UNKNOWN` name no client: the peer it is.
    pub async fn proxy_header(&self, tcp: &mut TcpStream, peer: SocketAddr, deadline: Instant) -> Result<SocketAddr, HeaderRefusal> {
        if !self.reads_header_from(peer.ip()) {
            return Ok(peer);
        }
        let mut buf = [0u8; MAX_PROXY_HEADER];
        loop {
            let n = match tokio::time::timeout_at(deadline, tcp.peek(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => n,
                _ => return Err(HeaderRefusal::Incomplete),
            };
            let seen = &buf[..n];
            let begins_like_a_header = |prefix: &[u8]| prefix[..prefix.len().min(n)] == seen[..prefix.len().min(n)];
            if !begins_like_a_header(V2_SIGNATURE) && !begins_like_a_header(V1_PREFIX) {
                return match self.proxy_protocol {
                    ProxyProtocol::Required => Err(HeaderRefusal::Missing),
                    _ => Ok(peer),
                };
            }
            let parsed = HeaderResult::parse(seen);
            if parsed.is_incomplete() {
                if n == buf.len() {
                    return Err(HeaderRefusal::Invalid(format!("longer than {MAX_PROXY_HEADER} bytes")));
                }
                // A peek returns at once with the bytes already there; wait a little for more
                // (a balancer writes its header in one piece, so this is rare).
                let next = (Instant::now() + Duration::from_millis(5)).min(deadline);
                if next >= deadline {
                    return Err(HeaderRefusal::Incomplete);
                }
                tokio::time::sleep_until(next).await;
                continue;
            }
            let (len, client) = match parsed {
                HeaderResult::V2(Ok(header)) => (header.len(), v2_client(&header)),
                HeaderResult::V1(Ok(header)) => (header.header.len(), v1_client(&header)),
                HeaderResult::V2(Err(e)) => return Err(HeaderRefusal::Invalid(e.to_string())),
                HeaderResult::V1(Err(e)) => return Err(HeaderRefusal::Invalid(e.to_string())),
            };
            let mut header = vec![0u8; len];
            tokio::time::timeout_at(deadline, tcp.read_exact(&mut header))
                .await
                .map_err(|_| HeaderRefusal::Incomplete)?
                .map_err(|_| HeaderRefusal::Incomplete)?;
            return Ok(client.map(crate::listener::client_address).unwrap_or(peer));
        }
    }

    /// The client behind a trusted HTTP proxy: `peer` when it is not trusted; else, walking the
    /// chain from the nearest hop outwards (`Forwarded`'s `for=` when the request has a
    /// `Forwarded` header, `X-Forwarded-For` otherwise), the first address that is not a
    /// trusted proxy (the last one the trusted chain vouches for). Each proxy appends the
    /// address it got the request from, so only the right-hand end, written by proxies we
    /// trust, can be believed; whatever a client wrote itself stands to the left of it.
    pub fn forwarded_client(&self, peer: SocketAddr, forwarded: &[String], x_forwarded_for: &[String]) -> SocketAddr {
        if !self.trusts(peer.ip()) {
            return peer;
        }
        let hops: Vec<Option<IpAddr>> = if !forwarded.is_empty() {
            forwarded.iter().flat_map(|h| h.split(',')).map(forwarded_for).collect()
        } else {
            x_forwarded_for.iter().flat_map(|h| h.split(',')).map(|hop| parse_hop(hop.trim())).collect()
        };
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            // An address a proxy could not name ("unknown", an obfuscated name, garbage): the
            // chain stops at the last one it vouched for.
            let Some(ip) = hop else { break };
            client = crate::listener::client_address(SocketAddr::new(ip, 0));
            if !self.trusts(client.ip()) {
                break;
            }
        }
        client
    }
}

fn v2_client(header: &v2::Header) -> Option<SocketAddr> {
    if header.command == v2::Command::Local {
        return None;
    }
    match header.addresses {
        v2::Addresses::IPv4(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        v2::Addresses::IPv6(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        _ => None,
    }
}

fn v1_client(header: &v1::Header) -> Option<SocketAddr> {
    match header.addresses {
        v1::Addresses::Tcp4(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        v1::Addresses::Tcp6(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        v1::Addresses::Unknown => None,
    }
}

/// The address in one `Forwarded` element's `for=` parameter (RFC 7239: quoted or not, an IPv6
/// address in brackets, a port after it); `None` for `unknown`, obfuscated names or none.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let value = element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim().eq_ignore_ascii_case("for").then(|| value.trim().trim_matches('"'))
    })?;
    parse_hop(value)
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1` or
/// `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    hop.strip_prefix('[')?.split_once(']')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trust(list: &str) -> ClientTrust {
        ClientTrust::parse(list, ProxyProtocol::Optional).unwrap()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn trusted_proxies_are_cidrs_or_addresses_and_a_header_needs_some() {
        let t = trust("10.0.0.0/8, 192.0.2.7,2001:db8::/32");
        assert!(
            t.trusts("10.1.2.3".parse().unwrap()) && t.trusts("192.0.2.7".parse().unwrap()) && t.trusts("2001:db8::5".parse().unwrap())
        );
        assert!(!t.trusts("192.0.2.8".parse().unwrap()));
        assert!(ClientTrust::parse("10.0.0.0/33", ProxyProtocol::Off).unwrap_err().contains("\"10.0.0.0/33\" is not a CIDR"));
        assert!(ClientTrust::parse("", ProxyProtocol::Required).unwrap_err().contains("WSPROXY_TRUSTED_PROXIES, which is empty"));
        assert!(ClientTrust::parse("", ProxyProtocol::Off).is_ok());
        assert_eq!(ProxyProtocol::parse("Required"), Ok(ProxyProtocol::Required));
        assert!(ProxyProtocol::parse("yes").is_err());
    }

    #[test]
    fn forwarded_headers_are_believed_only_from_trusted_peers_and_only_their_end_of_the_chain() {
        let t = trust("127.0.0.1, 10.0.0.0/8");
        let nginx = addr("127.0.0.1:40000");
        // One trusted proxy: the address it appended.
        assert_eq!(t.forwarded_client(nginx, &[], &strings(&["198.51.100.4"])).ip(), "198.51.100.4".parse::<IpAddr>().unwrap());
        // A client that wrote its own header first: what the trusted proxy appended wins.
        assert_eq!(t.forwarded_client(nginx, &[], &strings(&["6.6.6.6, 198.51.100.4"])).ip().to_string(), "198.51.100.4");
        // Two trusted hops (10.x, then nginx): walked past.
        assert_eq!(t.forwarded_client(nginx, &[], &strings(&["198.51.100.4", "10.1.1.1"])).ip().to_string(), "198.51.100.4");
        // The same header from a peer that is not trusted: ignored.
        let stranger = addr("203.0.113.9:5555");
        assert_eq!(t.forwarded_client(stranger, &[], &strings(&["198.51.100.4"])), stranger);
        // Garbage stops the walk at the last address a trusted proxy vouched for.
        assert_eq!(t.forwarded_client(nginx, &[], &strings(&["198.51.100.4, garbage, 10.1.1.1"])).ip().to_string(), "10.1.1.1");
        // Forwarded (RFC 7239) is preferred when present: quoted IPv6 with a port, other parameters.
        let fwd = strings(&[r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https;by=10.0.0.1"#]);
        assert_eq!(t.forwarded_client(nginx, &fwd, &strings(&["198.51.100.4"])).ip().to_string(), "2001:db8:cafe::17");
        assert_eq!(t.forwarded_client(nginx, &strings(&["for=unknown"]), &[]), nginx);
        // IPv4-mapped addresses are written as IPv4.
        assert_eq!(t.forwarded_client(nginx, &[], &strings(&["::ffff:198.51.100.4"])).ip().to_string(), "198.51.100.4");
        // No header at all: the trusted peer is the client.
        assert_eq!(t.forwarded_client(nginx, &[], &[]), nginx);
    }

    /// A connected pair: what the relay accepted, and the client end.
    async fn pair() -> (TcpStream, TcpStream, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (accepted, peer) = listener.accept().await.unwrap();
        (accepted, client, peer)
    }

    async fn header_of(mode: ProxyProtocol, trusted: &str, sent: &[u8]) -> (Result<SocketAddr, HeaderRefusal>, Vec<u8>, SocketAddr) {
        use tokio::io::AsyncWriteExt;
        let t = ClientTrust::parse(trusted, mode).unwrap();
        let (mut accepted, mut client, peer) = pair().await;
        client.write_all(sent).await.unwrap();
        client.shutdown().await.unwrap();
        let got = t.proxy_header(&mut accepted, peer, Instant::now() + Duration::from_secs(2)).await;
        let mut rest = Vec::new();
        accepted.read_to_end(&mut rest).await.unwrap();
        (got, rest, peer)
    }

    #[tokio::test]
    async fn a_proxy_header_from_a_trusted_peer_names_the_client_and_only_it_is_consumed() {
        let v1 = b"PROXY TCP4 198.51.100.4 192.0.2.1 40001 443\r\nGET / HTTP/1.1\r\n";
        let (got, rest, _) = header_of(ProxyProtocol::Required, "127.0.0.1", v1).await;
        assert_eq!(got, Ok(addr("198.51.100.4:40001")));
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");

        let v2 = v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Proxy,
            v2::Protocol::Stream,
            (addr("[2001:db8::4]:40002"), addr("[2001:db8::1]:443")),
        )
        .build()
        .unwrap();
        let (got, rest, _) = header_of(ProxyProtocol::Optional, "127.0.0.0/8", &[&v2[..], b"\x16\x03\x01"].concat()).await;
        assert_eq!(got, Ok(addr("[2001:db8::4]:40002")));
        assert_eq!(rest, b"\x16\x03\x01");

        // A balancer's own health check (LOCAL) names no client: the peer.
        let local = v2::Builder::new(v2::Version::Two | v2::Command::Local, v2::AddressFamily::Unspecified | v2::Protocol::Unspecified)
            .build()
            .unwrap();
        let (got, _, peer) = header_of(ProxyProtocol::Required, "127.0.0.1", &local).await;
        assert_eq!(got, Ok(peer));
    }

    #[tokio::test]
    async fn without_a_header_optional_takes_the_peer_required_closes_and_strangers_are_never_read() {
        let tls = b"\x16\x03\x01\x02\x00";
        let (got, rest, peer) = header_of(ProxyProtocol::Optional, "127.0.0.1", tls).await;
        assert_eq!((got, rest), (Ok(peer), tls.to_vec()));
        let (got, _, _) = header_of(ProxyProtocol::Required, "127.0.0.1", b"GET / HTTP/1.1\r\n").await;
        assert_eq!(got, Err(HeaderRefusal::Missing));
        // POST begins with P, but not with "PROXY ".
        let (got, _, _) = header_of(ProxyProtocol::Required, "127.0.0.1", b"POST / HTTP/1.1\r\n").await;
        assert_eq!(got, Err(HeaderRefusal::Missing));
        // From a peer that is not trusted a header is not even read: it stays in the stream
        // (and will be refused as neither TLS nor HTTP).
        let spoofed = b"PROXY TCP4 198.51.100.4 192.0.2.1 40001 443\r\n";
        let (got, rest, peer) = header_of(ProxyProtocol::Required, "10.0.0.0/8", spoofed).await;
        assert_eq!((got, rest), (Ok(peer), spoofed.to_vec()));
        // Broken, cut short, or endless.
        let (got, _, _) = header_of(ProxyProtocol::Optional, "127.0.0.1", b"PROXY TCP4 not-an-address 192.0.2.1 1 2\r\n").await;
        assert!(matches!(got, Err(HeaderRefusal::Invalid(_))), "{got:?}");
        let (got, _, _) = header_of(ProxyProtocol::Optional, "127.0.0.1", b"PROXY TCP4 198.51").await;
        assert_eq!(got, Err(HeaderRefusal::Incomplete));
        let endless = [V2_SIGNATURE, &[0x21, 0x11, 0xff, 0xff], &[0u8; 2000][..]].concat();
        let (got, _, _) = header_of(ProxyProtocol::Optional, "127.0.0.1", &endless).await;
        assert!(matches!(got, Err(HeaderRefusal::Invalid(ref why)) if why.contains("longer than")), "{got:?}");
    }
}
