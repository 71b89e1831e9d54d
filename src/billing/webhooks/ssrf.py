"""The SSRF guard: webhooks go to public addresses only, checked after DNS resolution.

A URL is checked when an endpoint is saved and again before every delivery (the name may
resolve elsewhere by then), and the request goes to the very address that was checked, so a
DNS answer that changes between the check and the connection cannot redirect it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
RESOLVE_TIMEOUT_SECONDS = 5.0


class BlockedAddress(Exception):
    """The URL's host is, or resolves to, an address webhooks may not reach."""


class Unresolvable(Exception):
    """The URL's host does not resolve."""


def is_public(ip: IPAddress) -> bool:
    """Global unicast only: no loopback, private, link-local, shared, reserved or multicast."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return is_public(ip.ipv4_mapped)
    return ip.is_global and not ip.is_multicast


def host_and_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return host, parts.port or (443 if parts.scheme == "https" else 80)


def literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, in the resolver's order (an IP literal is itself)."""
    literal = literal_ip(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError) as exc:
        raise Unresolvable(f"{host} does not resolve ({exc})") from exc
    found: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip not in found:
            found.append(ip)
    if not found:
        raise Unresolvable(f"{host} does not resolve")
    return found


def check(host: str, addresses: list[IPAddress], *, allow_private: bool) -> None:
    """Refuse the host if any of its addresses is not public (unless private ones are allowed)."""
    if allow_private:
        return
    blocked = [ip for ip in addresses if not is_public(ip)]
    if blocked:
        raise BlockedAddress(
            f"{host} resolves to {blocked[0]}, a loopback, private or link-local address "
            "(set WEBHOOKS_ALLOW_PRIVATE=true to allow it)"
        )


async def resolve_checked(url: str, *, allow_private: bool) -> list[IPAddress]:
    host, port = host_and_port(url)
    addresses = await resolve(host, port)
    check(host, addresses, allow_private=allow_private)
    return addresses
