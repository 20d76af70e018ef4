//! The target allow-list (`WSPROXY_TARGET_ALLOW`): which hosts a signed ticket may send the
//! relay to.
//!
//! Why: tickets are trusted because the engine signed them, so a leaked engine key would turn
//! the relay into an open TCP pivot into the hypervisor network. An allow-list of the
//! hypervisors' CIDRs and names bounds what such a key can reach. Empty means allow all, as
//! oVirt's proxy does.

use std::net::IpAddr;

use ipnet::IpNet;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    Net(IpNet),
    /// Exact host name, lower case.
    Host(String),
    /// `*.example.com`: any name ending in `.example.com`.
    Suffix(String),
}

/// A parsed allow-list. The empty list allows every target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetAllowList {
    rules: Vec<Rule>,
}

impl TargetAllowList {
    /// Parse a comma- or space-separated list of CIDRs, IP addresses, host names and
    /// `*.suffix` patterns.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        for item in text.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()) {
            let rule = if let Ok(net) = item.parse::<IpNet>() {
                Rule::Net(net)
            } else if let Ok(ip) = item.parse::<IpAddr>() {
                Rule::Net(IpNet::from(ip))
            } else if let Some(suffix) = item.strip_prefix("*.") {
                if !is_host_name(suffix) {
                    return Err(format!("{item:?} is not a CIDR, an IP address or a host pattern"));
                }
                Rule::Suffix(format!(".{}", suffix.to_ascii_lowercase()))
            } else if is_host_name(item) {
                Rule::Host(item.to_ascii_lowercase())
            } else {
                return Err(format!("{item:?} is not a CIDR, an IP address or a host pattern"));
            };
            rules.push(rule);
        }
        Ok(Self { rules })
    }

    /// Whether the list is empty (everything allowed).
    pub fn is_open(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether a ticket's host (a name or an address literal) is allowed, before resolving.
    /// Names matched by a name rule are allowed; names that only CIDR rules could match must
    /// be checked again on the resolved address with [`Self::allows_addr`].
    pub fn allows_name(&self, host: &str) -> bool {
        if self.is_open() {
            return true;
        }
        if let Some(ip) = address(host) {
            return self.allows_addr(ip);
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.rules.iter().any(|rule| match rule {
            Rule::Host(h) => *h == host,
            Rule::Suffix(s) => host.ends_with(s.as_str()),
            Rule::Net(_) => false,
        })
    }

    /// Whether a resolved address is inside one of the CIDR rules.
    pub fn allows_addr(&self, ip: IpAddr) -> bool {
        if self.is_open() {
            return true;
        }
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.rules.iter().any(|rule| matches!(rule, Rule::Net(net) if net.contains(&ip)))
    }

    /// Whether any rule is a CIDR (so names may be allowed by their resolved address).
    pub fn has_networks(&self) -> bool {
        self.rules.iter().any(|r| matches!(r, Rule::Net(_)))
    }
}

/// `host` as an IP address (an IPv6 literal's brackets and a trailing dot aside), if it is one.
pub fn address(host: &str) -> Option<IpAddr> {
    host.trim_end_matches('.').trim_start_matches('[').trim_end_matches(']').parse().ok()
}

fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_allows_everything() {
        let a = TargetAllowList::parse("").unwrap();
        assert!(a.allows_name("anything.example"));
        assert!(a.allows_addr("10.1.2.3".parse().unwrap()));
    }

    #[test]
    fn cidrs_names_and_patterns() {
        let a = TargetAllowList::parse("192.168.10.0/24, hv1.lab.example, *.hosts.example 127.0.0.1").unwrap();
        assert!(a.allows_name("192.168.10.7"));
        assert!(!a.allows_name("192.168.11.7"));
        assert!(a.allows_name("HV1.lab.example"));
        assert!(!a.allows_name("hv2.lab.example"));
        assert!(a.allows_name("node3.hosts.example"));
        assert!(!a.allows_name("hosts.example.evil"));
        assert!(a.allows_addr("127.0.0.1".parse().unwrap()));
        assert!(a.allows_addr("::ffff:192.168.10.9".parse().unwrap()));
        assert!(!a.allows_addr("169.254.169.254".parse().unwrap()));
        assert!(a.has_networks());
    }

    #[test]
    fn rejects_garbage() {
        assert!(TargetAllowList::parse("10.0.0.0/33").is_err());
        assert!(TargetAllowList::parse("not a/host").is_err());
        assert!(TargetAllowList::parse("*.").is_err());
    }
}
