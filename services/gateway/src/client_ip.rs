//! Who the client is, by address: the TCP peer, or, behind proxies the operator trusts
//! (`TRUSTED_PROXIES`), the address those proxies say they received the request from. Rate limits
//! key on it, and it is what upstreams get in `X-Forwarded-For`.
//!
//! `X-Forwarded-For` is read from the right: each trusted proxy appends the address it received
//! the request from, so the rightmost address that is not a trusted proxy is the first one no
//! trusted party vouches for beyond, which is the client. Whatever a client writes itself stands
//! to the left of that and is never believed.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed. Empty: nobody's (the TCP peer is the client).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of CIDRs (`10.0.0.0/8, 2001:db8::/32`) or plain addresses.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => item
                    .parse::<IpAddr>()
                    .map(IpNet::from)
                    .map_err(|_| format!("{item:?} is not a CIDR or an IP address"))?,
            };
            nets.push(net);
        }
        Ok(Self(nets))
    }

    fn trusts(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.0.iter().any(|net| net.contains(&addr))
    }

    /// The client's address for `req`.
    pub fn client(&self, req: &HttpRequest) -> IpAddr {
        let peer = req.peer_addr().map(|a| canonical(a.ip())).unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if !self.trusts(peer) {
            return peer;
        }
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        let mut client = peer;
        for hop in forwarded.iter().rev() {
            // An address that cannot be read ends the chain: nothing left of it is believed.
            let Ok(addr) = hop.parse::<IpAddr>().map(canonical) else { break };
            client = addr;
            if !self.trusts(addr) {
                break;
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) as the IPv4 addresses they are.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, forwarded: &[&str]) -> HttpRequest {
        let mut r = actix_web::test::TestRequest::default().peer_addr(peer.parse().unwrap());
        for f in forwarded {
            r = r.append_header(("x-forwarded-for", *f));
        }
        r.to_http_request()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let none = TrustedProxies::default();
        assert_eq!(none.client(&request("10.0.0.1:5", &["1.2.3.4"])), ip("10.0.0.1"));
    }

    #[test]
    fn the_rightmost_untrusted_forwarded_address_is_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.1").unwrap();
        // Ingress 10.0.0.1 received from 1.2.3.4.
        assert_eq!(proxies.client(&request("10.0.0.1:5", &["1.2.3.4"])), ip("1.2.3.4"));
        // A client writing its own header is not believed: the ingress appended the real one.
        assert_eq!(proxies.client(&request("10.0.0.1:5", &["6.6.6.6, 1.2.3.4"])), ip("1.2.3.4"));
        // Two trusted hops, over two header lines.
        assert_eq!(proxies.client(&request("10.0.0.1:5", &["1.2.3.4", "192.168.1.1"])), ip("1.2.3.4"));
        // Only trusted proxies in the chain: the leftmost of them.
        assert_eq!(proxies.client(&request("10.0.0.1:5", &["10.9.9.9"])), ip("10.9.9.9"));
        // No header: the peer.
        assert_eq!(proxies.client(&request("10.0.0.1:5", &[])), ip("10.0.0.1"));
        // Garbage ends the chain at the last address read.
        assert_eq!(proxies.client(&request("10.0.0.1:5", &["1.2.3.4, nonsense"])), ip("10.0.0.1"));
        // An untrusted peer's header is ignored.
        assert_eq!(proxies.client(&request("8.8.8.8:5", &["1.2.3.4"])), ip("8.8.8.8"));
        // IPv4-mapped IPv6 peers count as their IPv4 address.
        assert_eq!(proxies.client(&request("[::ffff:10.0.0.1]:5", &["1.2.3.4"])), ip("1.2.3.4"));
    }

    #[test]
    fn bad_lists_are_refused_with_the_item_named() {
        assert!(TrustedProxies::parse("10.0.0.0/8, nope").unwrap_err().contains("nope"));
        assert_eq!(TrustedProxies::parse("").unwrap(), TrustedProxies::default());
    }
}
