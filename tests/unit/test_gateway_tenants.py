"""Tenants and auth: configuration parsing, Judge0's token headers, hostile headers."""

from __future__ import annotations

import hmac
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from streamworker.errors import ConfigError
from streamworker.gateway import tenants as tenants_module
from streamworker.gateway.tenants import (
    Forbidden,
    Tenant,
    TenantTable,
    Unauthorized,
    authenticate,
    authorize_admin,
    is_loopback,
    load_tenants,
    presented_token,
)

ALICE = "alice-token-0123456789"
BOB = "bob-token-abcdefghijklm"
ADMIN = "admin-token-9876543210"


class Pairs(Mapping[str, str]):
    """A header list with duplicates, like Starlette's `Headers` (items() keeps them)."""

    def __init__(self, *pairs: tuple[str, str]) -> None:
        self._pairs = list(pairs)

    def __getitem__(self, key: str) -> str:
        for name, value in self._pairs:
            if name.lower() == key.lower():
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(name for name, _ in self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return list(self._pairs)


class MultiQuery(dict[str, str]):
    """Like Starlette's QueryParams: a dict of last values, all of them in multi_items()."""

    def __init__(self, *pairs: tuple[str, str]) -> None:
        super().__init__(pairs)
        self._pairs = list(pairs)

    def multi_items(self) -> list[tuple[str, str]]:
        return list(self._pairs)


@pytest.fixture
def table() -> TenantTable:
    return load_tenants(
        {
            "STREAMWORKER_GATEWAY_TENANTS": f"alice:{ALICE}:30:5, bob:{BOB}",
            "STREAMWORKER_GATEWAY_ADMIN_TOKENS": ADMIN,
        }
    )


OPEN = load_tenants({})


def test_open_gateway_admits_loopback_clients_as_default() -> None:
    assert OPEN.open and [t.name for t in OPEN.tenants] == ["default"]
    for host in ("127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"):
        assert authenticate({}, {}, host, OPEN).name == "default"
    # a token is not needed, nor checked, on an open gateway
    for junk in ("whatever", "", "é" * 9, "a b", "x" * 100_000):
        assert authenticate({"X-Auth-Token": junk}, {}, "127.0.0.1", OPEN).name == "default"


@pytest.mark.parametrize("host", ["10.0.0.5", "192.168.1.2", "8.8.8.8", "::2", "", None, "x"])
def test_open_gateway_refuses_everyone_else(host: str | None) -> None:
    with pytest.raises(Unauthorized):
        authenticate({}, {}, host, OPEN)


def test_each_token_source_finds_the_tenant(table: TenantTable) -> None:
    cases: list[tuple[Mapping[str, str], Mapping[str, str]]] = [
        ({"X-Auth-Token": ALICE}, {}),
        ({"x-auth-token": ALICE}, {}),
        ({}, {"X-Auth-Token": ALICE}),
        ({"Authorization": f"Bearer {ALICE}"}, {}),
        ({"authorization": f"bearer {ALICE}"}, {}),
        ({"X-RapidAPI-Key": ALICE}, {}),
        ({"X-Auth-Token": ALICE, "X-RapidAPI-Key": ALICE}, {}),  # the same token twice
        ({"Authorization": "Basic dXNlcjpwdw==", "X-Auth-Token": ALICE}, {}),
    ]
    for headers, query in cases:
        assert authenticate(headers, query, "203.0.113.9", table).name == "alice"
    assert authenticate({"X-Auth-Token": BOB}, {}, "127.0.0.1", table).name == "bob"


def test_configured_tokens_are_needed_on_loopback_too(table: TenantTable) -> None:
    with pytest.raises(Unauthorized, match="no token"):
        authenticate({}, {}, "127.0.0.1", table)


HOSTILE: list[tuple[Mapping[str, str], Mapping[str, str]]] = [
    ({"X-Auth-Token": "wrong-token-0123456789"}, {}),
    ({"X-Auth-Token": ""}, {}),
    ({"X-Auth-Token": ALICE[:-1]}, {}),
    ({"X-Auth-Token": ALICE + "0"}, {}),
    ({"X-Auth-Token": ALICE.upper()}, {}),
    ({"X-Auth-Token": f" {ALICE}"}, {}),
    ({"X-Auth-Token": f"{ALICE} x"}, {}),
    ({"X-Auth-Token": "ålice-tøken-0123456789"}, {}),
    ({"X-Auth-Token": "\udcff" * 20}, {}),
    ({"X-Auth-Token": ALICE + "\r\nX-Admin: 1"}, {}),
    ({"X-Auth-Token": "A" * 100_000}, {}),
    ({"X-Auth-Token": ALICE * 60}, {}),
    ({"Authorization": "Bearer"}, {}),
    ({"Authorization": "Bearer "}, {}),
    ({"Authorization": f"Bearer  {ALICE}"}, {}),
    ({"Authorization": f"Bearer {ALICE} {ALICE}"}, {}),
    ({"Authorization": ALICE}, {}),
    ({"X-Auth-Token": ALICE, "X-RapidAPI-Key": BOB}, {}),
    ({"X-Auth-Token": ALICE}, {"X-Auth-Token": BOB}),
    (Pairs(("X-Auth-Token", ALICE), ("x-auth-token", BOB)), {}),
    (Pairs(("X-Auth-Token", "wrong-token-0123456789"), ("X-Auth-Token", ALICE)), {}),
    ({}, MultiQuery(("X-Auth-Token", BOB), ("X-Auth-Token", ALICE))),
    ({"X-Auth-Token": f"{ALICE},{BOB}"}, {}),
    ({"X-Auth-User": ADMIN}, {}),  # an admin token is not a tenant token
]


@pytest.mark.parametrize(("headers", "query"), HOSTILE)
def test_hostile_or_wrong_tokens_are_unauthorized(
    table: TenantTable, headers: Mapping[str, str], query: Mapping[str, str]
) -> None:
    with pytest.raises(Unauthorized):
        authenticate(headers, query, "127.0.0.1", table)


def test_a_duplicate_of_the_same_token_is_fine(table: TenantTable) -> None:
    headers = Pairs(("X-Auth-Token", ALICE), ("X-Auth-Token", ALICE))
    assert authenticate(headers, {}, "127.0.0.1", table).name == "alice"


def test_every_token_is_compared_in_constant_time(
    table: TenantTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tenants_module.hmac, "compare_digest", spy)
    assert authenticate({"X-Auth-Token": ALICE}, {}, "127.0.0.1", table).name == "alice"
    assert len(calls) == 2, "alice matched first, bob was still compared"
    assert all(len(a) == len(b) == 32 for a, b in calls), "digests: lengths say nothing"
    calls.clear()
    with pytest.raises(Unauthorized):
        authenticate({"X-Auth-Token": "x" * 17}, {}, "127.0.0.1", table)
    assert len(calls) == 2


def test_presented_token_is_none_without_any() -> None:
    assert presented_token({"Accept": "*/*", "Authorization": "Basic eA=="}, {}) is None


def test_admin_needs_an_admin_token(table: TenantTable) -> None:
    authorize_admin({"X-Auth-User": ADMIN}, {}, "203.0.113.9", table)
    authorize_admin({}, {"X-Auth-User": ADMIN}, "203.0.113.9", table)
    for headers in (
        {},
        {"X-Auth-User": ALICE},
        {"X-Auth-User": ADMIN + "x"},
        {"X-Auth-User": "é" * 30},
        {"X-Auth-Token": ADMIN},
    ):
        with pytest.raises(Forbidden):
            authorize_admin(headers, {}, "127.0.0.1", table)
    with pytest.raises(Forbidden):
        authorize_admin(Pairs(("X-Auth-User", ADMIN), ("X-Auth-User", "other")), {}, "::1", table)


def test_admin_without_admin_tokens() -> None:
    authorize_admin({}, {}, "127.0.0.1", OPEN)
    with pytest.raises(Forbidden):
        authorize_admin({}, {}, "10.0.0.1", OPEN)
    closed = load_tenants({"STREAMWORKER_GATEWAY_TENANTS": f"alice:{ALICE}"})
    with pytest.raises(Forbidden, match="no admin tokens"):
        authorize_admin({}, {}, "127.0.0.1", closed)


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("::ffff:127.0.0.9")
    assert not any(map(is_loopback, ["0.0.0.0", "::", "testclient", "", None, "127.0.0.1:80"]))


def test_load_tenants_from_env_and_file(tmp_path: Path) -> None:
    path = tmp_path / "tenants"
    path.write_text(
        f"# name token [per minute] [in flight]\n\ncarol {'c' * 16} 10 2\ndan {'d' * 20}\n"
    )
    table = load_tenants(
        {
            "STREAMWORKER_GATEWAY_TENANTS": f"alice:{ALICE}:30:5",
            "STREAMWORKER_GATEWAY_TENANTS_FILE": str(path),
            "STREAMWORKER_GATEWAY_READS_PER_MINUTE": "900",
            "STREAMWORKER_GATEWAY_SUBMISSIONS_PER_MINUTE": "40",
        }
    )
    assert table.tenants == (
        Tenant("alice", 30, 900, 5),
        Tenant("carol", 10, 900, 2),
        Tenant("dan", 40, 900, 100),
    )
    assert authenticate({"X-Auth-Token": "c" * 16}, {}, "8.8.8.8", table).name == "carol"
    assert table.default == Tenant("default", 40, 900, 100)
    assert ALICE not in repr(table), "tokens are kept as digests only"


@pytest.mark.parametrize(
    ("env", "key", "message"),
    [
        ({"STREAMWORKER_GATEWAY_TENANTS": "alice"}, "TENANTS", "entry 1: expected name, token"),
        ({"STREAMWORKER_GATEWAY_TENANTS": "alice:short"}, "TENANTS", "needs 16-256"),
        ({"STREAMWORKER_GATEWAY_TENANTS": f"Alice:{ALICE}"}, "TENANTS", "tenant name"),
        ({"STREAMWORKER_GATEWAY_TENANTS": f"default:{ALICE}"}, "TENANTS", "tokenless"),
        ({"STREAMWORKER_GATEWAY_TENANTS": f"a:{ALICE}:0"}, "TENANTS", "integer from 1"),
        ({"STREAMWORKER_GATEWAY_TENANTS": f"a:{ALICE}:1:x"}, "TENANTS", "integer from 1"),
        ({"STREAMWORKER_GATEWAY_TENANTS": f"a:{ALICE}:1:2:3"}, "TENANTS", "expected name"),
        ({"STREAMWORKER_GATEWAY_TENANTS": f"a:{ALICE},a:{BOB}"}, "TENANTS", "twice"),
        ({"STREAMWORKER_GATEWAY_TENANTS": f"a:{ALICE},b:{ALICE}"}, "TENANTS", "share a token"),
        ({"STREAMWORKER_GATEWAY_TENANTS": f"a:{'é' * 20}"}, "TENANTS", "needs 16-256"),
        ({"STREAMWORKER_GATEWAY_ADMIN_TOKENS": "short"}, "ADMIN_TOKENS", "16-256"),
        ({"STREAMWORKER_GATEWAY_READS_PER_MINUTE": "0"}, "READS_PER_MINUTE", "integer"),
        ({"STREAMWORKER_GATEWAY_MAX_IN_FLIGHT": "-1"}, "MAX_IN_FLIGHT", "integer"),
        ({"STREAMWORKER_GATEWAY_TENANTS_FILE": "/nonexistent/t"}, "TENANTS_FILE", "cannot read"),
    ],
)
def test_bad_configuration_names_its_key(env: dict[str, str], key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_tenants(env)
    assert caught.value.key == f"STREAMWORKER_GATEWAY_{key}"


def test_a_bad_file_line_is_named_by_number() -> None:
    env = {"STREAMWORKER_GATEWAY_TENANTS_FILE": "t"}
    with pytest.raises(ConfigError, match="line 3: "):
        load_tenants(env, read_text=lambda _: f"# c\nalice {ALICE}\nbob\n")
