"""psql's TLS parameters in the audit URL mean what they mean to psql, for asyncpg."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from streamworker.audit.engine import postgres_tls

REPO = Path(__file__).resolve().parents[2]
BASE = "postgresql+asyncpg://u:p@127.0.0.1:5432/db"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pgtls")
    subprocess.run(["bash", str(REPO / "dev/tls.sh"), str(out)], check=True, capture_output=True)
    return out / "ca.pem"


def tls(query: str) -> ssl.SSLContext | str | None:
    return postgres_tls(make_url(f"{BASE}?{query}" if query else BASE))


def test_verify_full_checks_chain_and_name(ca: Path) -> None:
    context = tls(f"sslmode=verify-full&sslrootcert={ca}")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert len(context.get_ca_certs()) == 1


@pytest.mark.parametrize(
    "query", ["sslmode=verify-ca&sslrootcert={ca}", "sslmode=require&sslrootcert={ca}"]
)
def test_verify_ca_and_require_with_a_root_check_the_chain_only(ca: Path, query: str) -> None:
    context = tls(query.format(ca=ca))
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert not context.check_hostname


def test_require_without_a_root_only_encrypts() -> None:
    context = tls("sslmode=require")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_NONE


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer"])
def test_weaker_modes_go_to_asyncpg_as_they_are(mode: str) -> None:
    assert tls(f"sslmode={mode}") == mode


def test_no_parameters_no_tls_argument() -> None:
    assert tls("") is None


def test_asyncpg_spelling_is_accepted(ca: Path) -> None:
    context = tls(f"ssl=verify-full&sslrootcert={ca}")
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname


@pytest.mark.parametrize(
    ("query", "words"),
    [("sslrootcert=/x/ca.pem", "need sslmode"), ("sslmode=very-full", "must be one of")],
)
def test_a_root_that_would_verify_nothing_is_refused(query: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        tls(query)
