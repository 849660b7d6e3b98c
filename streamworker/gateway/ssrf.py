"""Where a callback may go: an SSRF guard that checks URLs and pins what DNS answered.

A `callback_url` is written by whoever submits code, so it is hostile until checked:
it must not reach the gateway's own loopback, the cloud metadata service, the cluster's
private network or anything else not globally routable, unless an operator allow-lists
it. The check has a pure half (`check_url`: scheme, userinfo, size, literal addresses,
numeric hosts written in legacy forms) and a DNS half (`resolve_target`: every address
a name resolves to must pass). The connection then goes to exactly those addresses:
`PinnedResolver` answers aiohttp only from pins set by the caller, so a second, rebound
DNS answer is never asked for (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from aiohttp import TCPConnector
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from streamworker.errors import ConfigError, StreamworkerError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
GetAddrInfo = Callable[[str, int], Awaitable[Sequence[tuple[Any, ...]]]]
"""`(host, port) -> getaddrinfo rows`; the loop's resolver unless a test injects one."""

MAX_URL_BYTES = 2048
SCHEMES = frozenset({"http", "https"})
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_NUMBER = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


class CallbackRefused(StreamworkerError):
    """The callback target is not allowed (or not a URL at all); never retried."""

    code = "callback.refused"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AllowList(Protocol):
    """What the guard reads of a policy (`CallbackPolicy` fits)."""

    @property
    def allow_cidrs(self) -> tuple[IPNetwork, ...]: ...

    @property
    def allow_hosts(self) -> frozenset[str]: ...


@dataclass(frozen=True)
class CheckedTarget:
    """A URL that passed the pure checks; `address` is set when the host is a literal."""

    url: URL
    """What is requested: the parsed URL without its fragment (aiohttp sends this)."""
    host: str
    """The host exactly as aiohttp will hand it to the resolver (IDNA, lower case)."""
    port: int
    address: IPAddress | None
    host_allowed: bool
    """The host is on the allow-list by name: whatever it resolves to is admitted."""

    @property
    def display(self) -> str:
        """scheme://host:port/path, for logs and the audit log: no query, no userinfo."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.url.scheme}://{host}:{self.port}{self.url.raw_path}"


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why `ip` may not be called back (None: it is a global unicast address).

    Embedded IPv4 addresses (mapped, NAT64, 6to4) are judged as the IPv4 they carry.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped
        if embedded is None and (ip in _NAT64):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is None and ip in _SIX_TO_FOUR:
            embedded = ip.sixtofour
        if embedded is not None:
            inner = forbidden_reason(embedded)
            return f"{inner} (embedded {embedded})" if inner else None
        if ip.scope_id:
            return "an IPv6 zone id"
        if ip.is_site_local:
            return "a site-local address"
    checks = (
        (ip.is_unspecified, "the unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address (cloud metadata lives here)"),
        (ip.is_multicast, "a multicast address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "shared address space"),
        (ip.is_reserved, "a reserved address"),
        (ip.is_private, "a private address"),
        (not ip.is_global, "an address that is not globally routable"),
    )
    return next((reason for hit, reason in checks if hit), None)


def _label_value(label: str) -> int:
    """One label of a numeric host: 0x-hex, 0-octal or decimal (inet_aton's rules)."""
    if label.startswith("0x"):
        return int(label[2:] or "0", 16)
    return int(label, 8) if len(label) > 1 and label[0] == "0" else int(label)


def _numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """`host` read the way inet_aton (and browsers) read numbers: 0x7f000001, 2130706433,
    0177.0.0.1 and 127.1 are all 127.0.0.1. None when the last label is not a number
    (a name); CallbackRefused when it is numeric but does not make an address."""
    labels = host.removesuffix(".").split(".")
    if not _NUMBER.match(labels[-1]):
        return None
    if len(labels) > 4 or not all(_NUMBER.match(label) for label in labels):
        raise CallbackRefused(f"host {host!r} is a malformed numeric address")
    try:
        parts = [_label_value(label) for label in labels]
    except ValueError as exc:
        raise CallbackRefused(f"host {host!r} is a malformed numeric address") from exc
    *head, last = parts
    if any(p > 255 for p in head) or last >= 256 ** (5 - len(parts)):
        raise CallbackRefused(f"host {host!r} is a malformed numeric address")
    value = last
    for i, part in enumerate(head):
        value += part << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def _literal(host: str) -> IPAddress | None:
    """The address a host names literally, refusing any non-canonical spelling."""
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise CallbackRefused(f"host {host!r} is not a valid IPv6 address") from exc
    ip = _numeric_ipv4(host)
    if ip is not None and str(ip) != host:
        reason = forbidden_reason(ip)
        why = f": {ip} is {reason}" if reason else f" (write {ip})"
        raise CallbackRefused(f"host {host!r} is a non-canonical IPv4 address{why}")
    return ip


def _allowed_ip(ip: IPAddress, policy: AllowList) -> bool:
    return any(ip.version == net.version and ip in net for net in policy.allow_cidrs)


def _check_name(host: str) -> None:
    name = host.removesuffix(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise CallbackRefused(f"host {host!r} is not a valid DNS name")
    if name == "localhost" or name.endswith(".localhost"):
        raise CallbackRefused(f"host {host!r} is loopback by definition (RFC 6761)")


def parse_allow_list(key: str, raw: str) -> tuple[tuple[IPNetwork, ...], frozenset[str]]:
    """`"127.0.0.1/32, 10.1.0.0/16, hooks.internal"`: CIDRs (a bare address is a /32 or
    /128) and exact host names."""
    cidrs: list[IPNetwork] = []
    hosts: set[str] = set()
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            cidrs.append(ipaddress.ip_network(item, strict=True))
            continue
        except ValueError:
            if "/" in item or item.replace(".", "").isdigit() or ":" in item:
                raise ConfigError(key, f"{item!r} is not a valid CIDR") from None
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,253}", item):
            raise ConfigError(key, f"{item!r} is neither a CIDR nor a host name")
        hosts.add(item.lower().removesuffix("."))
    return tuple(cidrs), frozenset(hosts)


def check_url(url: str, policy: AllowList) -> CheckedTarget:
    """The pure half of the guard: a parsed target, or CallbackRefused saying why not."""
    if len(url.encode("utf-8", "surrogatepass")) > MAX_URL_BYTES:
        raise CallbackRefused(f"URL longer than {MAX_URL_BYTES} bytes")
    if any(ch <= " " or ch == "\x7f" for ch in url):
        raise CallbackRefused("URL contains whitespace or control characters")
    try:
        parsed = URL(url)
        port = parsed.port
    except (ValueError, TypeError, UnicodeError) as exc:
        raise CallbackRefused(f"not a valid URL: {exc}") from exc
    if parsed.scheme not in SCHEMES:
        raise CallbackRefused(f"scheme {parsed.scheme!r} is not http or https")
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise CallbackRefused("userinfo (user:password@) is not allowed in a callback URL")
    host = parsed.raw_host
    if not host or not parsed.is_absolute():
        raise CallbackRefused("URL has no host")
    if port is None or not 0 < port < 65536:
        raise CallbackRefused(f"port {port} is not usable")
    host = host.lower()
    address = _literal(host)
    host_allowed = host.removesuffix(".") in policy.allow_hosts
    if address is None:
        if not host_allowed:
            _check_name(host)
    elif not (host_allowed or _allowed_ip(address, policy)):
        reason = forbidden_reason(address)
        if reason:
            raise CallbackRefused(f"{address} is {reason}")
    return CheckedTarget(parsed.with_fragment(None), host, port, address, host_allowed)


async def resolve_target(
    target: CheckedTarget, policy: AllowList, getaddrinfo: GetAddrInfo | None = None
) -> tuple[IPAddress, ...]:
    """The DNS half: the addresses to connect to, every one of them checked.

    One forbidden address refuses the whole name (an attacker would only need one).
    DNS failures raise OSError (socket.gaierror), which callers treat as transient.
    """
    if target.address is not None:
        return (target.address,)
    if getaddrinfo is None:
        loop = asyncio.get_running_loop()

        async def getaddrinfo(host: str, port: int) -> Sequence[tuple[Any, ...]]:
            return await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)

    rows = await getaddrinfo(target.host, target.port)
    found: list[IPAddress] = []
    for row in rows:
        ip = ipaddress.ip_address(str(row[4][0]))
        if not (target.host_allowed or _allowed_ip(ip, policy)):
            reason = forbidden_reason(ip)
            if reason:
                raise CallbackRefused(f"{target.host} resolves to {ip}, {reason}")
        if ip not in found:
            found.append(ip)
    if not found:
        raise socket.gaierror(socket.EAI_NONAME, f"{target.host} has no addresses")
    return tuple(found)


class UnpinnedHost(OSError):
    """aiohttp asked for a name nobody checked: refused rather than resolved."""


_PINS: contextvars.ContextVar[Mapping[str, tuple[IPAddress, ...]]] = contextvars.ContextVar(
    "streamworker_callback_pins", default=MappingProxyType({})
)


@contextmanager
def pinned(host: str, addresses: tuple[IPAddress, ...]) -> Iterator[None]:
    """Within this block (and this task), `host` resolves to `addresses` only."""
    token = _PINS.set({**_PINS.get(), host: addresses})
    try:
        yield
    finally:
        _PINS.reset(token)


class PinnedResolver(AbstractResolver):
    """Answers only from the pins of the current task: never asks DNS itself."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = _PINS.get().get(host)
        if not addresses:
            raise UnpinnedHost(f"{host} was not checked before connecting")
        return [
            ResolveResult(
                hostname=host,
                host=str(ip),
                port=port,
                family=socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for ip in addresses
            if family in (socket.AF_UNSPEC, socket.AF_INET6 if ip.version == 6 else socket.AF_INET)
        ]

    async def close(self) -> None:
        """Nothing to release: the pins belong to the tasks that set them."""
        return None


class PinnedConnector(TCPConnector):
    """A TCP connector that connects only to pinned addresses; no DNS cache (each
    connection asks the pins of its own task)."""

    def __init__(self, limit: int = 100) -> None:
        super().__init__(
            resolver=PinnedResolver(), use_dns_cache=False, limit=limit, family=socket.AF_UNSPEC
        )
