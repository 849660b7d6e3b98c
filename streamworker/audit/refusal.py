"""Why a write failed: the database refused these records, or it is unreachable/unwell.

The writer retries an outage forever (nothing is lost, the log catches up later) but
must not retry a refusal forever: a record the database will never take would stall
every record behind it. A refusal is isolated and quarantined instead.

PostgreSQL says what went wrong in its SQLSTATE: classes 22 (data exception: NUL, bad
JSON, value too long, out of range), 23 (integrity constraint) and 54 (program limit
exceeded: value or index row too large) are about the data sent; every other class
(connection, resources, operator intervention, serialization failures, and schema
errors that every record would hit alike) is retried. Without a SQLSTATE (SQLite, or
errors raised while binding parameters), connection-like errors are retried and the
rest are refusals.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

_REFUSED_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})
_OUTAGE_TYPES = (
    OSError,  # includes ConnectionError: refused, reset, unreachable
    TimeoutError,
    OperationalError,  # SQLite: locked, disk I/O, no such table; drivers: connection lost
    sqlite3.OperationalError,  # the same, raised unwrapped by the plain SQLite lane
    InterfaceError,
    DisconnectionError,
)


def sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE carried by `exc` (or the driver error it wraps), if any."""
    for candidate in (exc, getattr(exc, "orig", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str) and len(code) == 5:
            return code
    return None


def is_refusal(exc: BaseException) -> bool:
    """True when the database refused the records themselves (retrying cannot help)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return False
    code = sqlstate(exc)
    if code is not None:
        return code[:2] in _REFUSED_SQLSTATE_CLASSES
    orig = getattr(exc, "orig", None)
    return not isinstance(exc, _OUTAGE_TYPES) and not isinstance(orig, _OUTAGE_TYPES)


def describe(exc: BaseException, limit: int = 2000) -> str:
    """A one-line reason for the quarantine table and the log, without SQL or parameters."""
    orig = getattr(exc, "orig", None)
    source = orig if isinstance(orig, BaseException) else exc
    text = " ".join(str(source).split()) or type(source).__name__
    code = sqlstate(exc)
    prefix = f"{type(source).__name__}" + (f" [{code}]" if code else "")
    return f"{prefix}: {text}"[:limit]
