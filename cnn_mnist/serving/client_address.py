"""Who sent a request, for the rate limit: the peer, or what a trusted proxy says in X-Forwarded-For.

Anyone can write X-Forwarded-For, so it is believed only from `trusted` peers (the module's own nginx),
and read from the right: each trusted hop appended the address it was connected from, so the right-most
entry that is not itself a trusted proxy is the client (nginx's `real_ip_recursive on` reads it so).
Entries left of it are the client's to invent and are never read. An IPv6 client counts as its /64,
which is what one host or home is given (RFC 6177): else one machine could take 2^64 addresses.
"""

import ipaddress

IPV6_CLIENT_PREFIX = 64


def trusted_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """`--trusted-proxy`'s value: an address (10.0.0.1, ::1) or a network (10.0.0.0/8); ValueError otherwise."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"not an IP address or network: {text!r}") from None


def client_address(peer: str, forwarded_for: str | None, trusted) -> str:
    """The client's rate-limit key: `peer` (REMOTE_ADDR), or the X-Forwarded-For hop `trusted` vouch for."""
    address = _parse(peer)
    if address is None:  # not an IP (a Unix socket): every such peer is one client
        return peer
    hops = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
    while _is_trusted(address, trusted) and hops:
        hop = _parse(hops.pop())
        if hop is None:  # a trusted proxy writes addresses: what is not one ends the walk at that proxy
            break
        address = hop
    return _key(address)


def _parse(text: str):
    """An address, IPv4-mapped IPv6 (::ffff:10.0.0.1, a dual-stack listener's peers) as the IPv4 it is."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return address.ipv4_mapped or address if address.version == 6 else address


def _is_trusted(address, trusted) -> bool:
    return any(address.version == network.version and address in network for network in trusted)


def _key(address) -> str:
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(address)
