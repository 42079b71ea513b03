"""Which URLs we may fetch: the guard against server-side request forgery.

A source listing or a user hands us URLs; fetching one must never reach the
machine we run on, the private network behind it, or a cloud metadata
service (which hands out credentials). ``UrlPolicy.check`` refuses:

- any scheme but ``http`` and ``https`` (``file://``, ``ftp://``, ``data:`` ...);
- a URL without a host;
- a host any of whose resolved addresses (IPv4 and IPv6, all of them) is
  loopback, private, link-local, multicast, reserved, unspecified, shared
  (100.64/10), otherwise not globally routable, or a cloud metadata address
  (169.254.169.254, fd00:ec2::254, 100.100.100.200, 169.254.170.2);
  IPv4-mapped/compatible, 6to4 and Teredo IPv6 forms are judged by the IPv4
  address inside;

unless the host name, or the address (exact or in a CIDR range), is in
``settings.allow_hosts``. ``workers.download.ytdl`` applies the policy to
every request yt-dlp makes and to every redirect; see there for what that
covers.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from workers.errors import DownloadError, TransientDownloadError, UnsafeURL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str], list[str]]

ALLOWED_SCHEMES = ("http", "https")
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean ...
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
    )
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")


def resolve_host(host: str) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({info[4][0].split("%", 1)[0] for info in infos})


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    packed = ip.packed
    if packed[:12] == bytes(12) and int.from_bytes(packed[12:], "big") > 0xFFFF:  # deprecated ::a.b.c.d (not ::1)
        return ipaddress.IPv4Address(packed[12:])
    return None


def address_problem(ip: IPAddress) -> str | None:
    """Why connecting to ``ip`` is unsafe (``"loopback"``, ``"private"`` ...), or None when it is public."""
    inner = _embedded_ipv4(ip)
    if inner is not None:
        problem = address_problem(inner)
        return f"{problem} (inside {ip})" if problem else None
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for attribute, name in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(ip, attribute):
            return name
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return "shared (carrier-grade NAT)"
    if not ip.is_global:
        return "not globally routable"
    return None


@dataclass(frozen=True)
class UrlPolicy:
    """The safety check, with its allow-list: ``UrlPolicy.from_settings(s).check(url)``."""

    allow_names: frozenset[str] = frozenset()
    allow_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = resolve_host

    @classmethod
    def from_allow_list(cls, entries: Iterable[str], resolver: Resolver = resolve_host) -> UrlPolicy:
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().strip("[]").lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=True))
            except ValueError:
                names.add(entry.rstrip("."))
        return cls(frozenset(names), tuple(networks), resolver)

    @classmethod
    def from_settings(cls, settings) -> UrlPolicy:
        return cls.from_allow_list(settings.allow_hosts)

    def allows_address(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.allow_networks)

    def check(self, url: str) -> str:
        """Return ``url`` when it may be fetched; raise ``UnsafeURL`` saying why not.

        A host that does not resolve raises ``DownloadError`` (or
        ``TransientDownloadError`` when the resolver says "try again").
        """
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError as err:
            raise UnsafeURL(f"refused URL {url!r}: malformed ({err})") from None
        scheme = parts.scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            shown = f"{scheme}://" if scheme else "no scheme"
            raise UnsafeURL(f"refused URL {url!r}: only http and https may be fetched, not {shown}")
        if not host:
            raise UnsafeURL(f"refused URL {url!r}: no host")
        host = host.rstrip(".").lower()
        if host in self.allow_names:
            return url
        try:
            literal: IPAddress | None = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = [ipaddress.ip_address(a) for a in self.resolver(host)]
            except socket.gaierror as err:
                # Retried like any network error: a resolver that is down or cut off answers "no such
                # name" as readily as "try again"; a name that does not exist fails after the retries.
                raise TransientDownloadError(f"cannot resolve host {host!r} of {url!r}: {err.strerror}") from None
            except (UnicodeError, ValueError) as err:
                raise UnsafeURL(f"refused URL {url!r}: bad host name ({err})") from None
            if not addresses:
                raise DownloadError(f"cannot resolve host {host!r} of {url!r}")
        for ip in addresses:
            if self.allows_address(ip):
                continue
            problem = address_problem(ip)
            if problem:
                via = "" if literal is not None else f" resolves to {ip}, which"
                raise UnsafeURL(
                    f"refused URL {url!r}: host {host!r}{via} is {problem}; add it to allow_hosts (TT_ALLOW_HOSTS) to fetch it anyway"
                )
        return url


def check_url(url: str, allow_hosts: Iterable[str] = ()) -> str:
    """One-off check with an allow-list (see ``UrlPolicy.check``)."""
    return UrlPolicy.from_allow_list(allow_hosts).check(url)
