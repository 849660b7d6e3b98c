"""Who is calling the gateway: tenants, their tokens, and Judge0's two auth headers.

Judge0's default is no authentication, which is only safe on loopback, so that is ours:
with no tokens configured a loopback client is the tenant `default` and anyone else is
turned away (401). Once tokens are configured every client needs one, loopback too (a
reverse proxy on the same host makes every request look like loopback). Tokens are
compared as SHA-256 digests with `hmac.compare_digest`, against every configured token
without stopping at a match, so neither timing nor length says which one came close.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from streamworker.errors import ConfigError, StreamworkerError

DEFAULT_TENANT = "default"
MAX_HEADER_CHARS = 1024
MIN_TOKEN_CHARS = 16
TENANTS_KEY = "STREAMWORKER_GATEWAY_TENANTS"
TENANTS_FILE_KEY = "STREAMWORKER_GATEWAY_TENANTS_FILE"
ADMIN_TOKENS_KEY = "STREAMWORKER_GATEWAY_ADMIN_TOKENS"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_TOKEN = re.compile(r"^[A-Za-z0-9._~+/=-]{1,256}$")
"""RFC 6750's b64token: no spaces, commas, colons or anything outside ASCII."""
_TOKEN_HEADERS = ("x-auth-token", "x-rapidapi-key")


class Unauthorized(StreamworkerError):
    """No valid token (401; Judge0 answers with an empty body). The message is for logs."""

    code = "gateway.unauthorized"
    status = 401


class Forbidden(StreamworkerError):
    """Authenticated but not an administrator (403)."""

    code = "gateway.forbidden"
    status = 403


@dataclass(frozen=True)
class Tenant:
    """A caller and its limits. It never holds its token: safe to log and to audit."""

    name: str
    submissions_per_minute: int
    reads_per_minute: int
    max_in_flight: int


@dataclass(frozen=True)
class TenantTable:
    """The configured tenants with their token digests, the admin digests and `default`."""

    default: Tenant
    tokens: tuple[tuple[bytes, Tenant], ...] = ()
    admin_tokens: tuple[bytes, ...] = ()

    @property
    def open(self) -> bool:
        """No tokens configured: loopback clients are `default`, nobody else gets in."""
        return not self.tokens

    @property
    def tenants(self) -> tuple[Tenant, ...]:
        """Every tenant a request can be: the configured ones, or `default` alone."""
        return tuple(t for _, t in self.tokens) if self.tokens else (self.default,)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def _values(pairs: Mapping[str, str], name: str) -> list[str]:
    """Every value of `name`, case-insensitively: duplicates are seen, not merged."""
    multi = getattr(pairs, "multi_items", None)  # Starlette's QueryParams keeps them there
    items: Iterable[tuple[str, str]] = multi() if callable(multi) else pairs.items()
    return [value for key, value in items if key.lower() == name]


def _bearer(value: str) -> str:
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        return ""  # Basic and friends belong to a proxy, not to us
    if not token:
        raise Unauthorized("empty Bearer token")
    return token


def presented_token(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The one token a request presents, from X-Auth-Token (header or query),
    `Authorization: Bearer` or X-RapidAPI-Key. Several different ones, an oversized or
    malformed one: Unauthorized."""
    found = [value for name in _TOKEN_HEADERS for value in _values(headers, name)]
    found += _values(query, "x-auth-token")
    found += [t for t in map(_bearer, _values(headers, "authorization")) if t]
    if not found:
        return None
    if len(set(found)) > 1:
        raise Unauthorized("more than one different token presented")
    token = found[0]
    if len(token) > MAX_HEADER_CHARS or not _TOKEN.match(token):
        raise Unauthorized("malformed token")
    return token


def _match(candidate: bytes, digests: Sequence[bytes]) -> int | None:
    """The index of the matching digest, comparing every one in constant time."""
    hit: int | None = None
    for i, known in enumerate(digests):
        if hmac.compare_digest(candidate, known):
            hit = i
    return hit


def is_loopback(client_host: str | None) -> bool:
    """127.0.0.0/8, ::1 and ::ffff:127.x. Unknown (a unix socket, a test client's name)
    is not loopback: the safe answer when nothing says where the request came from."""
    try:
        ip = ipaddress.ip_address(client_host or "")
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def authenticate(
    headers: Mapping[str, str],
    query: Mapping[str, str],
    client_host: str | None,
    tenants: TenantTable,
) -> Tenant:
    """The tenant a request belongs to, or Unauthorized.

    `headers` may be any mapping (a Starlette `Headers` is read with all its duplicates);
    names are matched case-insensitively here.
    """
    if tenants.open:  # tokens are then neither needed nor read, as in Judge0
        if is_loopback(client_host):
            return tenants.default
        raise Unauthorized("no tokens are configured and the client is not on loopback")
    token = presented_token(headers, query)
    if token is None:
        raise Unauthorized("no token presented")
    hit = _match(digest(token), [d for d, _ in tenants.tokens])
    if hit is None:
        raise Unauthorized("unknown token")
    return tenants.tokens[hit][1]


def authorize_admin(
    headers: Mapping[str, str],
    query: Mapping[str, str],
    client_host: str | None,
    tenants: TenantTable,
) -> None:
    """Judge0's authorization for administrative calls: X-Auth-User (header or query)
    must be an admin token, else Forbidden. With no admin tokens configured only an
    open (tokenless) gateway's loopback clients are administrators."""
    if not tenants.admin_tokens:
        if tenants.open and is_loopback(client_host):
            return
        raise Forbidden(f"no admin tokens configured ({ADMIN_TOKENS_KEY})")
    values = {*_values(headers, "x-auth-user"), *_values(query, "x-auth-user")}
    if len(values) != 1:
        raise Forbidden("exactly one X-Auth-User is needed")
    (user,) = values
    if len(user) > MAX_HEADER_CHARS or not _TOKEN.match(user):
        raise Forbidden("malformed X-Auth-User")
    if _match(digest(user), tenants.admin_tokens) is None:
        raise Forbidden("X-Auth-User is not an admin token")


# --- configuration ---------------------------------------------------------------------


def _int(key: str, where: str, raw: str, low: int, high: int) -> int:
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ConfigError(key, f"{where}expected an integer from {low} to {high}, got {raw!r}")
    return int(raw)


def _entry(key: str, where: str, fields: Sequence[str], defaults: Tenant) -> tuple[str, Tenant]:
    """One `name token [submissions_per_minute] [max_in_flight]` entry."""
    if not 2 <= len(fields) <= 4:
        raise ConfigError(
            key, f"{where}expected name, token[, submissions_per_minute[, max_in_flight]]"
        )
    name, token = fields[0], fields[1]
    if not _NAME.match(name):
        raise ConfigError(key, f"{where}tenant name {name!r} must match {_NAME.pattern}")
    if name == DEFAULT_TENANT:
        raise ConfigError(key, f"{where}{DEFAULT_TENANT!r} is the tokenless tenant's name")
    if not _TOKEN.match(token) or len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(
            key,
            f"{where}the token of {name!r} needs {MIN_TOKEN_CHARS}-256 characters "
            "of A-Z a-z 0-9 . _ ~ + / = -",
        )
    per_minute = defaults.submissions_per_minute
    if len(fields) > 2:
        per_minute = _int(key, where, fields[2], 1, 1_000_000)
    in_flight = (
        _int(key, where, fields[3], 1, 1_000_000) if len(fields) > 3 else defaults.max_in_flight
    )
    tenant = Tenant(name, per_minute, defaults.reads_per_minute, in_flight)
    return token, tenant


def parse_tenants_env(text: str, defaults: Tenant) -> list[tuple[str, Tenant]]:
    """`alice:TOKEN[:per_minute[:in_flight]],bob:TOKEN`: comma-separated entries."""
    entries = [part.strip() for part in text.split(",") if part.strip()]
    return [
        _entry(TENANTS_KEY, f"entry {i}: ", entry.split(":"), defaults)
        for i, entry in enumerate(entries, 1)
    ]


def parse_tenants_file(text: str, defaults: Tenant) -> list[tuple[str, Tenant]]:
    """One `name token [submissions_per_minute] [max_in_flight]` per line; blank lines
    and lines starting with # are skipped."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            found.append(_entry(TENANTS_FILE_KEY, f"line {number}: ", line.split(), defaults))
    return found


def _env_int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key, "").strip()
    return _int(key, "", raw, 1, 1_000_000) if raw else default


def load_tenants(
    env: Mapping[str, str], read_text: Callable[[str], str] = lambda p: Path(p).read_text()
) -> TenantTable:
    """The table from STREAMWORKER_GATEWAY_* (see docs/gateway-security.md)."""
    defaults = Tenant(
        DEFAULT_TENANT,
        _env_int(env, "STREAMWORKER_GATEWAY_SUBMISSIONS_PER_MINUTE", 120),
        _env_int(env, "STREAMWORKER_GATEWAY_READS_PER_MINUTE", 6000),
        _env_int(env, "STREAMWORKER_GATEWAY_MAX_IN_FLIGHT", 100),
    )
    entries = parse_tenants_env(env.get(TENANTS_KEY, ""), defaults)
    path = env.get(TENANTS_FILE_KEY, "").strip()
    if path:
        try:
            text = read_text(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(TENANTS_FILE_KEY, f"cannot read {path}: {exc}") from exc
        entries += parse_tenants_file(text, defaults)
    names = [tenant.name for _, tenant in entries]
    if len(set(names)) != len(names):
        raise ConfigError(TENANTS_KEY, "a tenant is configured twice")
    if len({token for token, _ in entries}) != len(entries):
        raise ConfigError(TENANTS_KEY, "two tenants share a token")
    admins = [t.strip() for t in env.get(ADMIN_TOKENS_KEY, "").split(",") if t.strip()]
    for admin in admins:
        if not _TOKEN.match(admin) or len(admin) < MIN_TOKEN_CHARS:
            raise ConfigError(ADMIN_TOKENS_KEY, f"tokens need {MIN_TOKEN_CHARS}-256 b64 characters")
    return TenantTable(
        default=defaults,
        tokens=tuple((digest(token), tenant) for token, tenant in entries),
        admin_tokens=tuple(digest(admin) for admin in admins),
    )
