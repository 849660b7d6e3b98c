"""Refusal or outage: what the audit writer bisects and quarantines, and what it retries."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    StatementError,
)

from streamworker.audit.refusal import describe, is_refusal, sqlstate


class PgError(Exception):
    """Stands in for asyncpg's adapted error, which carries the SQLSTATE."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.sqlstate = code


def wrapped(cls: type[DBAPIError], orig: Exception) -> DBAPIError:
    return cls("INSERT INTO audit_events ...", {"payload": "x"}, orig)


@pytest.mark.parametrize(
    ("code", "refused"),
    [
        ("22021", True),  # NUL in text
        ("22P05", True),  # \u0000 in jsonb
        ("22P02", True),  # NaN in jsonb
        ("22001", True),  # value too long
        ("23505", True),  # unique violation
        ("54000", True),  # index row too large
        ("08006", False),  # connection failure
        ("57P01", False),  # admin shutdown
        ("53300", False),  # too many connections
        ("40001", False),  # serialization failure
        ("42P01", False),  # table missing: every record would fail alike
        ("XX000", False),
    ],
)
def test_postgresql_sqlstate_decides(code: str, refused: bool) -> None:
    exc = wrapped(DBAPIError, PgError("boom", code))
    assert sqlstate(exc) == code
    assert is_refusal(exc) is refused


@pytest.mark.parametrize(
    "exc",
    [
        wrapped(IntegrityError, sqlite3.IntegrityError("UNIQUE constraint failed")),
        wrapped(DataError, Exception("bad data")),
        wrapped(ProgrammingError, sqlite3.ProgrammingError("Error binding parameter 1")),
        StatementError(
            "bind failed", "INSERT", {}, UnicodeEncodeError("utf-8", "\ud800", 0, 1, "")
        ),
        StatementError("bind failed", "INSERT", {}, OverflowError("int too large")),
        TypeError("Object of type set is not JSON serializable"),
        ValueError("naive datetime"),
    ],
)
def test_data_problems_without_sqlstate_are_refusals(exc: Exception) -> None:
    assert is_refusal(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError("refused"),
        ConnectionResetError("reset"),
        TimeoutError(),
        OSError("network unreachable"),
        wrapped(OperationalError, sqlite3.OperationalError("database is locked")),
        wrapped(OperationalError, sqlite3.OperationalError("no such table: audit_events")),
        wrapped(InterfaceError, Exception("connection is closed")),
        wrapped(DBAPIError, ConnectionResetError("reset")),
    ],
)
def test_outages_are_retried(exc: Exception) -> None:
    assert not is_refusal(exc)


def test_an_invalidated_connection_is_an_outage_whatever_the_code() -> None:
    exc = DBAPIError("INSERT", {}, PgError("lost", "22000"), connection_invalidated=True)
    assert not is_refusal(exc)


def test_describe_names_the_driver_error_and_code_without_sql() -> None:
    exc = wrapped(DBAPIError, PgError('invalid byte sequence for encoding "UTF8": 0x00', "22021"))
    text = describe(exc)
    assert text == 'PgError [22021]: invalid byte sequence for encoding "UTF8": 0x00'
    assert "INSERT" not in text
    assert describe(ValueError("x" * 5000), limit=50) == ("ValueError: " + "x" * 5000)[:50]
    assert describe(RuntimeError()) == "RuntimeError: RuntimeError"
