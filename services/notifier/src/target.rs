//! Which callback targets may be called: http(s) only, and — with
//! `NOTIFICATION_BLOCK_PRIVATE_TARGETS` — only public addresses. The address check runs in the
//! HTTP client's own resolver, on the addresses the connection then uses, so a DNS name cannot
//! smuggle in a private address (nor swap one in between a check and the connection).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why a target is refused (a permanent failure: retrying does not help).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetRefused {
    /// Not an absolute http(s) URL.
    #[error("callback URL must be an absolute http or https URL")]
    Scheme,
    /// The URL names a non-public address.
    #[error("callback target {0} is not a public address")]
    NotPublic(IpAddr),
}

/// True for addresses a callback may reach when private targets are blocked.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || v6.segments()[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible ::a.b.c.d
                || (v6.segments()[0] == 0x64 && v6.segments()[1] == 0xff9b)) // NAT64 64:ff9b::/96
        }
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    !(v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
        || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol assignments
        || a >= 240) // reserved
}

/// Checks a URL before it is called: the scheme, and an IP literal host against the policy (a
/// DNS name is checked by [`PublicOnlyResolver`] when it is resolved).
pub fn check_url(url: &url::Url, block_private: bool) -> Result<(), TargetRefused> {
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(TargetRefused::Scheme);
    }
    if !block_private {
        return Ok(());
    }
    let literal = match url.host() {
        Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        _ => None,
    };
    match literal {
        Some(ip) if !is_public(ip) => Err(TargetRefused::NotPublic(ip)),
        _ => Ok(()),
    }
}

/// The host a URL's notifications are grouped by (lower case, with a non-default port).
pub fn host_key(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

/// A resolver that keeps only public addresses and fails when none is left, so that the
/// connection can only go where the policy allows.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublicOnlyResolver;

/// The error a name resolving only to non-public addresses gives.
#[derive(Debug, thiserror::Error)]
#[error("{name} resolves only to non-public addresses ({first})")]
pub struct NoPublicAddress {
    name: String,
    first: IpAddr,
}

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found.iter().copied().filter(|a| is_public(a.ip())).collect();
            match (public.is_empty(), found.first()) {
                (false, _) => Ok(Box::new(public.into_iter()) as Addrs),
                (true, Some(first)) => {
                    Err(Box::new(NoPublicAddress { name: host, first: first.ip() }) as Box<_>)
                }
                (true, None) => Err(format!("{host} has no address").into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_link_local_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_are_checked_for_scheme_and_literal_addresses() {
        let url = |s: &str| url::Url::parse(s).unwrap();
        assert_eq!(check_url(&url("ftp://example.com/x"), false), Err(TargetRefused::Scheme));
        assert!(check_url(&url("http://127.0.0.1:9/x"), false).is_ok());
        assert!(matches!(check_url(&url("http://127.0.0.1:9/x"), true), Err(TargetRefused::NotPublic(_))));
        assert!(matches!(check_url(&url("http://[::1]:9/x"), true), Err(TargetRefused::NotPublic(_))));
        assert!(check_url(&url("https://example.com/x"), true).is_ok());
        assert_eq!(host_key(&url("https://Example.COM/x")), "example.com");
        assert_eq!(host_key(&url("http://127.0.0.1:9/x")), "127.0.0.1:9");
    }

    #[tokio::test]
    async fn a_name_of_a_loopback_address_is_refused_when_resolved() {
        let err = PublicOnlyResolver.resolve("localhost".parse().unwrap()).await;
        assert!(err.is_err());
    }
}
