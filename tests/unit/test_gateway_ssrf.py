"""The SSRF guard: hostile callback URLs are refused before any DNS or connection."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from streamworker.gateway.ssrf import (
    CallbackRefused,
    IPNetwork,
    PinnedResolver,
    UnpinnedHost,
    check_url,
    forbidden_reason,
    pinned,
    resolve_target,
)


@dataclass(frozen=True)
class Allow:
    allow_cidrs: tuple[IPNetwork, ...] = ()
    allow_hosts: frozenset[str] = field(default_factory=frozenset)


NOTHING = Allow()
LOOPBACK_ALLOWED = Allow(allow_cidrs=(ipaddress.ip_network("127.0.0.1/32"),))

HOSTILE = [
    ("http://127.0.0.1/", "loopback"),
    ("http://127.8.9.10:8080/x", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[::ffff:7f00:1]/", "loopback"),
    ("http://[::ffff:10.0.0.1]/", "private"),
    ("http://[::ffff:169.254.169.254]/", "link-local"),
    ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),
    ("http://[2002:7f00:1::]/", "loopback"),
    ("http://[::127.0.0.1]/", "reserved"),
    ("http://0x7f000001/", "non-canonical"),
    ("http://0X7F000001/", "non-canonical"),
    ("http://2130706433/", "non-canonical"),
    ("http://017700000001/", "non-canonical"),
    ("http://0177.0.0.1/", "non-canonical"),
    ("http://0x7f.0.0.1/", "non-canonical"),
    ("http://127.1/", "non-canonical"),
    ("http://127.0.1/", "non-canonical"),
    ("http://127.0.0.1./", "non-canonical"),
    ("http://3232235521/", "private"),
    ("http://1.2.3.4.5/", "malformed"),
    ("http://1.2.3.256/", "malformed"),
    ("http://08.1.1.1/", "malformed"),
    ("http://localhost/", "RFC 6761"),
    ("http://localhost./", "RFC 6761"),
    ("http://LOCALHOST/", "RFC 6761"),
    ("http://api.localhost/", "RFC 6761"),
    ("http://10.0.0.1/", "private"),
    ("http://172.16.5.4/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://[fc00::1]/", "private"),
    ("http://[fd12:3456::1]/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fe80::1%25eth0]/", "zone id"),
    ("http://[fec0::1]/", "site-local"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "reserved"),
    ("http://100.64.0.1/", "shared address space"),
    ("http://100.127.255.254/", "shared address space"),
    ("http://192.0.2.1/", "private"),
    ("file:///etc/passwd", "scheme"),
    ("gopher://example.com:70/_x", "scheme"),
    ("ftp://example.com/", "scheme"),
    ("javascript:alert(1)", "scheme"),
    ("//example.com/x", "scheme"),
    ("http://user:pass@example.com/", "userinfo"),
    ("http://user@example.com/", "userinfo"),
    ("http://example.com@127.0.0.1/", "userinfo"),
    ("http://a@b@example.com/", "userinfo"),
    ("http://:@example.com/", "userinfo"),
    ("http://example.com:0/", "port"),
    ("http://example.com:99999/", "valid URL"),
    ("http://exa\\mple.com/", "valid URL"),
    ("http://example.com/a b", "whitespace"),
    ("http://example.com/\r\nX-Injected: 1", "whitespace"),
    ("http:///path", "no host"),
    ("http:example.com", "no host"),
    ("http://exa_mple..com/", "DNS name"),
    ("http://-bad.example.com/", "DNS name"),
    ("http://" + "a" * 64 + ".com/", "DNS name"),
    ("http://example.com/" + "a" * 2048, "2048 bytes"),
]


@pytest.mark.parametrize(("url", "why"), HOSTILE, ids=[u[:60] for u, _ in HOSTILE])
def test_hostile_url_is_refused_with_its_reason(url: str, why: str) -> None:
    with pytest.raises(CallbackRefused) as caught:
        check_url(url, NOTHING)
    assert why in caught.value.reason, caught.value.reason


@pytest.mark.parametrize(
    ("url", "display"),
    [
        ("https://example.com/hook?token=s3cret#frag", "https://example.com:443/hook"),
        ("http://EXAMPLE.com:8080", "http://example.com:8080/"),
        ("https://8.8.8.8/x", "https://8.8.8.8:443/x"),
        ("http://[2606:4700::1111]/y", "http://[2606:4700::1111]:80/y"),
        ("http://hooks.example.com./z", "http://hooks.example.com.:80/z"),
        ("https://例え.jp/", "https://xn--r8jz45g.jp:443/"),
    ],
)
def test_public_targets_pass_and_display_without_query(url: str, display: str) -> None:
    target = check_url(url, NOTHING)
    assert target.display == display
    assert target.url.fragment == ""


def test_a_literal_public_address_needs_no_dns() -> None:
    target = check_url("http://8.8.8.8/", NOTHING)
    assert target.address == ipaddress.ip_address("8.8.8.8")
    assert asyncio.run(resolve_target(target, NOTHING)) == (target.address,)


def test_allow_list_by_cidr_and_by_exact_host() -> None:
    assert check_url("http://127.0.0.1:9/", LOOPBACK_ALLOWED).address is not None
    with pytest.raises(CallbackRefused):
        check_url("http://127.0.0.2/", LOOPBACK_ALLOWED)
    with pytest.raises(CallbackRefused, match="non-canonical"):
        check_url("http://2130706433/", LOOPBACK_ALLOWED)  # spelled oddly: never
    by_host = Allow(allow_hosts=frozenset({"127.0.0.1", "hooks.internal"}))
    assert check_url("http://127.0.0.1/", by_host).host_allowed
    assert check_url("http://HOOKS.internal./", by_host).host_allowed
    assert not check_url("http://other.internal/", by_host).host_allowed


def test_forbidden_reason_is_none_only_for_global_unicast() -> None:
    assert forbidden_reason(ipaddress.ip_address("93.184.216.34")) is None
    assert forbidden_reason(ipaddress.ip_address("2606:4700::1111")) is None
    assert forbidden_reason(ipaddress.ip_address("::ffff:93.184.216.34")) is None


def rows(*addresses: str) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        out.append((family, socket.SOCK_STREAM, 6, "", (address, 80)))
    return out


def fake_dns(table: dict[str, list[tuple[Any, ...]]]) -> Any:
    async def getaddrinfo(host: str, port: int) -> Sequence[tuple[Any, ...]]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return table[host]

    return getaddrinfo


def test_a_name_resolving_to_any_forbidden_address_is_refused() -> None:
    dns = fake_dns(
        {
            "evil.example": rows("93.184.216.34", "127.0.0.1"),
            "meta.example": rows("::ffff:169.254.169.254"),
            "good.example": rows("93.184.216.34", "93.184.216.34", "2606:4700::1111"),
        }
    )
    with pytest.raises(CallbackRefused, match=r"resolves to 127\.0\.0\.1"):
        asyncio.run(resolve_target(check_url("http://evil.example/", NOTHING), NOTHING, dns))
    with pytest.raises(CallbackRefused, match="link-local"):
        asyncio.run(resolve_target(check_url("http://meta.example/", NOTHING), NOTHING, dns))
    good = asyncio.run(resolve_target(check_url("http://good.example/", NOTHING), NOTHING, dns))
    assert [str(ip) for ip in good] == ["93.184.216.34", "2606:4700::1111"]
    with pytest.raises(OSError):
        asyncio.run(resolve_target(check_url("http://nowhere.example/", NOTHING), NOTHING, dns))


def test_an_allow_listed_name_may_resolve_to_a_private_address() -> None:
    policy = Allow(allow_hosts=frozenset({"hooks.internal"}))
    dns = fake_dns({"hooks.internal": rows("10.1.2.3")})
    target = check_url("http://hooks.internal/", policy)
    assert asyncio.run(resolve_target(target, policy, dns)) == (ipaddress.ip_address("10.1.2.3"),)


def test_the_resolver_answers_only_from_pins() -> None:
    resolver = PinnedResolver()

    async def scenario() -> None:
        with pytest.raises(UnpinnedHost):
            await resolver.resolve("example.com", 80, socket.AF_UNSPEC)
        addresses = (ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("2606::1"))
        with pinned("example.com", addresses):
            both = await resolver.resolve("example.com", 80, socket.AF_UNSPEC)
            v4 = await resolver.resolve("example.com", 80, socket.AF_INET)
            with pytest.raises(UnpinnedHost):
                await resolver.resolve("other.com", 80, socket.AF_UNSPEC)
        assert [r["host"] for r in both] == ["93.184.216.34", "2606::1"]
        assert [r["host"] for r in v4] == ["93.184.216.34"]
        with pytest.raises(UnpinnedHost):
            await resolver.resolve("example.com", 80, socket.AF_UNSPEC)

    asyncio.run(scenario())
