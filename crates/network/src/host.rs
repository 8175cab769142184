//! The node's primary address, reported as `status.hostIP` of pods.
//!
//! The address is the one the kernel would use as source towards the default gateway, i.e. the
//! address of the interface holding the default route. It is found by reading the routing tables
//! in `/proc/net` and asking the kernel for a route with a connected UDP socket, which sends no
//! packet. IPv4 is preferred; an IPv6 default route is used when there is no IPv4 one.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

/// The address of the interface holding the default route, if there is a default route.
pub(crate) fn default_route_address() -> Option<IpAddr> {
    let v4 = fs::read_to_string("/proc/net/route")
        .ok()
        .and_then(|t| ipv4_default_gateway(&t));
    if let Some(gateway) = v4 {
        if let Some(addr) = source_address_towards(IpAddr::V4(gateway)) {
            return Some(addr);
        }
    }
    let v6 = fs::read_to_string("/proc/net/ipv6_route")
        .ok()
        .and_then(|t| ipv6_default_gateway(&t));
    v6.and_then(|gateway| source_address_towards(IpAddr::V6(gateway)))
}

/// The source address the kernel picks for `destination`. A connected UDP socket only selects a
/// route; nothing is sent.
fn source_address_towards(destination: IpAddr) -> Option<IpAddr> {
    let bind: SocketAddr = match destination {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(bind).ok()?;
    socket.connect((destination, 9)).ok()?;
    let addr = socket.local_addr().ok()?.ip();
    (!addr.is_unspecified() && !addr.is_loopback()).then_some(addr)
}

/// A destination that is routed by an on-link default route (one without a gateway).
const ONLINK_PROBE_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

/// The gateway of the lowest-metric IPv4 default route in `/proc/net/route` text. For an on-link
/// default route, a documentation address that only the default route can reach.
fn ipv4_default_gateway(table: &str) -> Option<Ipv4Addr> {
    const RTF_UP: u32 = 0x1;
    let mut best: Option<(u32, Ipv4Addr)> = None;
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_iface, dst, gw, flags, _refcnt, _use, metric, mask, ..] = fields[..] else {
            continue;
        };
        let hex = |s: &str| u32::from_str_radix(s, 16).ok();
        let (Some(dst), Some(gw), Some(flags), Some(mask)) =
            (hex(dst), hex(gw), hex(flags), hex(mask))
        else {
            continue;
        };
        let metric: u32 = metric.parse().unwrap_or(u32::MAX);
        if dst != 0 || mask != 0 || flags & RTF_UP == 0 {
            continue;
        }
        // The kernel prints the address as a native-endian number of the network-order bytes.
        let gateway = match Ipv4Addr::from(gw.to_ne_bytes()) {
            g if g.is_unspecified() => ONLINK_PROBE_V4,
            g => g,
        };
        if best.is_none_or(|(m, _)| metric < m) {
            best = Some((metric, gateway));
        }
    }
    best.map(|(_, gateway)| gateway)
}

/// The gateway of an IPv6 default route in `/proc/net/ipv6_route` text (fields: destination,
/// prefix length, source, source prefix length, next hop, metric, refcount, use, flags, device).
fn ipv6_default_gateway(table: &str) -> Option<Ipv6Addr> {
    const RTF_UP: u32 = 0x1;
    const RTF_REJECT: u32 = 0x200;
    table.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [dst, plen, _src, _splen, next_hop, _metric, _refcnt, _use, flags, dev] = fields[..]
        else {
            return None;
        };
        let flags = u32::from_str_radix(flags, 16).ok()?;
        let is_default = dst.bytes().all(|b| b == b'0') && plen == "00";
        if !is_default || dev == "lo" || flags & RTF_UP == 0 || flags & RTF_REJECT != 0 {
            return None;
        }
        let gateway = Ipv6Addr::from(u128::from_str_radix(next_hop, 16).ok()?);
        // An on-link default route: any global address is reached through it.
        Some(if gateway.is_unspecified() {
            "2001:db8::1".parse().ok()?
        } else {
            gateway
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth1\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
";

    // The table above was printed by a little-endian kernel.
    #[cfg(target_endian = "little")]
    #[test]
    fn the_lowest_metric_default_route_wins() {
        assert_eq!(
            ipv4_default_gateway(ROUTE),
            Some(Ipv4Addr::new(192, 0, 2, 1))
        );
    }

    #[test]
    fn no_default_route_means_no_gateway() {
        let table: String = ROUTE
            .lines()
            .filter(|l| !l.contains("\t00000000\t0"))
            .collect();

        assert_eq!(ipv4_default_gateway(&table), None);
    }

    #[test]
    fn ipv6_default_route_gateway_is_parsed_and_lo_reject_routes_are_skipped() {
        let table = "\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000001 00000000 00000003     eth0
";

        assert_eq!(
            ipv6_default_gateway(table),
            Some("fd00::1".parse().unwrap())
        );
    }
}
