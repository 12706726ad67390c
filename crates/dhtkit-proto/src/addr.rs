//! Which addresses a node may talk to: the one definition of local, reserved and invalid
//! addresses, used by the core, the drivers and the crawler alike.
//!
//! - **Invalid** addresses are never a destination: unspecified, multicast, broadcast, and
//!   port 0.
//! - **Local** addresses belong to this host or its site: loopback, RFC 1918 private ranges,
//!   shared address space (100.64.0.0/10, carrier-grade NAT), link-local (169.254.0.0/16,
//!   fe80::/10), "this network" (0.0.0.0/8), unique local IPv6 (fc00::/7). A node talks to
//!   them only when it is itself on such a network or was pointed at one.
//! - **Reserved** addresses never appear on the public internet: documentation and
//!   benchmarking ranges, 240.0.0.0/4, 192.0.0.0/24, IPv6 documentation (2001:db8::/32) and
//!   discard (100::/64) prefixes. Treated like local ones: a public node never sends to them,
//!   whoever advertises them.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are judged by the IPv4 address inside.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What kind of address an IP is, as far as sending to it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddrClass {
    /// Never a destination: unspecified, multicast, broadcast.
    Invalid,
    /// This host or its site (loopback, private, link-local, CGNAT, unique local).
    Local,
    /// Not routed on the public internet (documentation, benchmarking, future use).
    Reserved,
    /// A public unicast address.
    Global,
}

/// Classifies an IP address.
pub fn classify(ip: IpAddr) -> AddrClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddrClass {
    let o = ip.octets();
    if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
        AddrClass::Invalid
    } else if ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
    {
        AddrClass::Local
    } else if o[0] >= 240
        || (o[0] == 192 && o[1] == 0 && (o[2] == 0 || o[2] == 2))
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
        || (o[0] == 198 && o[1] == 51 && o[2] == 100)
        || (o[0] == 203 && o[1] == 0 && o[2] == 113)
    {
        AddrClass::Reserved
    } else {
        AddrClass::Global
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddrClass {
    let s = ip.segments();
    if ip.is_unspecified() || ip.is_multicast() {
        AddrClass::Invalid
    } else if ip.is_loopback() || (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80 {
        AddrClass::Local
    } else if (s[0] == 0x2001 && s[1] == 0x0db8) || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) {
        AddrClass::Reserved
    } else {
        AddrClass::Global
    }
}

/// True for local addresses (see the module docs): the ones a node only talks to when it is on
/// such a network itself.
pub fn is_local(ip: IpAddr) -> bool {
    classify(ip) == AddrClass::Local
}

/// True if a node may send to `addr`: never to an invalid address or port 0, and to local or
/// reserved addresses only when `allow_local` is set.
pub fn may_send(addr: &SocketAddr, allow_local: bool) -> bool {
    if addr.port() == 0 {
        return false;
    }
    match classify(addr.ip()) {
        AddrClass::Invalid => false,
        AddrClass::Local | AddrClass::Reserved => allow_local,
        AddrClass::Global => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> AddrClass {
        classify(s.parse().unwrap())
    }

    #[test]
    fn classes() {
        for s in ["0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "ff02::1"] {
            assert_eq!(c(s), AddrClass::Invalid, "{s}");
        }
        for s in [
            "127.0.0.1",
            "127.9.8.7",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.1.1",
            "0.1.2.3",
            "::1",
            "fc00::1",
            "fdff::1",
            "fe80::1",
            "febf::1",
            "::ffff:10.0.0.1",
        ] {
            assert_eq!(c(s), AddrClass::Local, "{s}");
        }
        for s in [
            "240.0.0.1",
            "192.0.2.1",
            "192.0.0.8",
            "198.18.0.1",
            "198.19.255.1",
            "198.51.100.7",
            "203.0.113.9",
            "2001:db8::1",
            "100::1",
        ] {
            assert_eq!(c(s), AddrClass::Reserved, "{s}");
        }
        for s in [
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "198.20.0.1",
            "2001:4860::8888",
            "fec0::1",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(c(s), AddrClass::Global, "{s}");
        }
    }

    #[test]
    fn sending() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(may_send(&a("1.2.3.4:6881"), false));
        assert!(!may_send(&a("1.2.3.4:0"), true));
        assert!(!may_send(&a("127.0.0.1:6881"), false));
        assert!(may_send(&a("127.0.0.1:6881"), true));
        assert!(!may_send(&a("192.0.2.1:6881"), false));
        assert!(!may_send(&a("0.0.0.0:6881"), true));
        assert!(!may_send(&a("[ff02::1]:6881"), true));
    }
}
