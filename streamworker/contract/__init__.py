"""The v1 event contract: frozen, typed data with `decode`/`encode` and no I/O.

A package by side of the wire: `submission` decodes what comes in (with `fields` and
`salvage` for the checks and for refused events), `result` and `health` are what goes
out, `status` and `times` are what both sides name. Importers use this face only, so
the split stays an inside matter. The contract is documented in `docs/contract.md`.
"""

from streamworker.contract.fields import SUBMISSION_ID_RE
from streamworker.contract.health import DockerHealthEvent, DockerStatus
from streamworker.contract.result import ResultEvent, RunResult, Runtime, overall_status
from streamworker.contract.salvage import salvage_metadata, salvage_submission_id
from streamworker.contract.status import SCHEMA_VERSION, Compare, Status, judge0_status_id
from streamworker.contract.submission import (
    INTEGER_LIMITS,
    MAX_METADATA_BYTES,
    SourceFile,
    Submission,
    TestCase,
    decode_submission,
    resolve_limits,
)
from streamworker.contract.times import iso, now_utc, parse_iso

__all__ = [
    "INTEGER_LIMITS",
    "MAX_METADATA_BYTES",
    "SCHEMA_VERSION",
    "SUBMISSION_ID_RE",
    "Compare",
    "DockerHealthEvent",
    "DockerStatus",
    "ResultEvent",
    "RunResult",
    "Runtime",
    "SourceFile",
    "Status",
    "Submission",
    "TestCase",
    "decode_submission",
    "iso",
    "judge0_status_id",
    "now_utc",
    "overall_status",
    "parse_iso",
    "resolve_limits",
    "salvage_metadata",
    "salvage_submission_id",
]
