"""How big, how many and how deep an incoming submission event may be: the decode budgets.

Every number lives here, once, as domain data: the contract decodes against a
`DecodeBudgets`, `docs/contract.md` states the same values, and settings only override
the two that operators have always been able to configure (`max_source_bytes`,
`max_test_cases`). A budget turns "the worker chokes on a hostile event" into "that
event alone is answered `invalid_submission` naming the field", so each one is set
well above any legitimate event and well below what would hurt the worker.
"""

from __future__ import annotations

from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class DecodeBudgets:
    """The limits `decode_submission` enforces; replace fields to tighten or loosen one."""

    max_event_bytes: int = 16 * MiB
    """The whole event, checked before anything is parsed: room for a full 8 MiB stdin
    even as base64 (about 10.7 MiB) next to the source, small enough that parsing it
    (with `max_json_tokens`) costs a bounded, modest amount of memory."""

    max_depth: int = 32
    """Nesting of the whole event, checked by a linear scan before `json.loads`, so a
    deep value fails with a message instead of a `RecursionError` in the parser."""

    max_json_tokens: int = 65536
    """Strings, brackets and commas in the whole event: bounds the objects the parser
    builds (a 16 MiB `[{},{},…]` would otherwise be millions of dicts) and the scan."""

    max_number_chars: int = 1000
    """One JSON number literal: int parsing is quadratic in its digits, and anything
    longer could not be written back out under Python's default 4300-digit limit."""

    max_echo_chars: int = 64
    """How much of a user value an error message quotes, so a message cannot grow with
    the event it rejects."""

    max_language_chars: int = 64
    """`language`: ids in the registry are short words."""

    max_path_bytes: int = 255
    """`files[].path` and `entrypoint`, in UTF-8 bytes: what the in-container helper
    accepts (it counts bytes, as the kernel does)."""

    max_files: int = 64
    """Entries in `files`."""

    max_source_bytes: int = 1 * MiB
    """`source`, or all `files[].content` together, in bytes after base64 decoding.
    `STREAMWORKER_MAX_SOURCE_BYTES` overrides it."""

    max_args: int = 128
    """Entries in `args`."""

    max_arg_bytes: int = 4 * KiB
    """One entry of `args`, in UTF-8 bytes."""

    max_args_total_bytes: int = 16 * KiB
    """All of `args` together, in UTF-8 bytes: well under the kernel's argv limit."""

    max_stdin_bytes: int = 8 * MiB
    """One `stdin` (top level or per test case), in bytes after UTF-8 encoding or
    base64 decoding."""

    max_expected_output_bytes: int = 8 * MiB
    """One `expected_output` (top level or per test case), in UTF-8 bytes."""

    max_test_cases: int = 64
    """Entries in `test_cases`. `STREAMWORKER_MAX_TEST_CASES` overrides it."""

    max_test_case_id_chars: int = 128
    """One `test_cases[].id`, which is echoed in every run object and audit row."""

    max_metadata_bytes: int = 4 * KiB
    """`metadata` as `json.dumps` writes it by default (ASCII escapes, `", "` and
    `": "` separators): it is echoed in every result event and audit row."""

    max_metadata_depth: int = 8
    """Nesting of `metadata` itself (`{}` is 1), so echoing it stays cheap downstream."""


BUDGETS = DecodeBudgets()
"""The budgets the contract documents; decoding uses them unless told otherwise."""
