//! Who is calling the Tracking API: the source's write key and the client's address.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine;

use crate::config::IpRange;

/// The write key from `Authorization: Basic base64(<writeKey>:)`; the trailing colon (empty
/// password) is optional.
pub fn basic_write_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let key = decoded
        .split_once(':')
        .map_or(decoded.as_str(), |(user, _)| user);
    (!key.is_empty()).then(|| key.to_owned())
}

/// The client address: the peer, or — when the peer is a trusted proxy — the nearest untrusted
/// address in `X-Forwarded-For`.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpRange]) -> IpAddr {
    let peer_ip = peer.ip().to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|r| r.contains(ip));
    if !is_trusted(&peer_ip) {
        return peer_ip;
    }
    let chain: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect();
    // Walk from the proxy nearest to us outwards; the first hop we do not trust is the client.
    chain
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or_else(|| chain.first())
        .copied()
        .unwrap_or(peer_ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn write_keys() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let cases = [
            (format!("Basic {}", b64("wk_1:")), Some("wk_1")),
            (format!("Basic {}", b64("wk_1")), Some("wk_1")),
            (format!("basic {}", b64("wk_1:ignored")), Some("wk_1")),
            (format!("Basic {}", b64(":")), None),
            ("Bearer wk_1".to_owned(), None),
            ("Basic !!!".to_owned(), None),
        ];
        for (value, expected) in cases {
            assert_eq!(
                basic_write_key(&headers(&[("authorization", &value)])).as_deref(),
                expected,
                "{value}"
            );
        }
        assert_eq!(basic_write_key(&HeaderMap::new()), None);
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted = vec![IpRange::parse("10.0.0.0/8").unwrap()];
        let peer_proxy: SocketAddr = "10.0.0.5:1234".parse().unwrap();
        let peer_other: SocketAddr = "198.51.100.9:1234".parse().unwrap();
        let xff = headers(&[("x-forwarded-for", "203.0.113.7, 10.0.0.9")]);
        assert_eq!(
            client_ip(peer_proxy, &xff, &trusted).to_string(),
            "203.0.113.7"
        );
        assert_eq!(
            client_ip(peer_other, &xff, &trusted).to_string(),
            "198.51.100.9"
        );
        assert_eq!(
            client_ip(peer_proxy, &HeaderMap::new(), &trusted).to_string(),
            "10.0.0.5"
        );
        let spoof = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.7")]);
        assert_eq!(
            client_ip(peer_proxy, &spoof, &trusted).to_string(),
            "203.0.113.7"
        );
        let mapped: SocketAddr = "[::ffff:203.0.113.7]:1".parse().unwrap();
        assert_eq!(
            client_ip(mapped, &HeaderMap::new(), &[]).to_string(),
            "203.0.113.7"
        );
    }
}
