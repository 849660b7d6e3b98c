"""The printed table, the target lines and the JSON document. Pure except `write_json`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streamworker.bench.results import Row, ratios, row_dict
from streamworker.bench.scenario import LABELS
from streamworker.bench.targets import TargetCheck

_HEADER = (
    "scenario",
    "program",
    "n",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "thr/s",
    "p50/B",
    "p99/B",
    "thr/B",
    "RSS MiB",
    "CPU ms/run",
    "errors",
)


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _cpu(row: Row) -> str:
    """'driver+dockerd' CPU ms per run, where measured (concurrent phases)."""
    if row.driver_cpu_ms_per_run is None:
        return "-"
    dockerd = _num(row.dockerd_cpu_ms_per_run, ".0f")
    return f"{row.driver_cpu_ms_per_run:.0f}+{dockerd}"


def table_rows(rows: Sequence[Row]) -> list[tuple[str, ...]]:
    """Rows in table order (by scenario as listed in LABELS, then program as given)."""
    order = {name: i for i, name in enumerate(LABELS)}
    out = []
    for row in sorted(rows, key=lambda r: order.get(r.scenario, len(order))):
        lat = row.latency
        rat = ratios(row, rows)
        conc = f" x{row.concurrency}" if row.concurrency > 1 else ""
        label = LABELS.get(row.scenario, row.scenario) + conc
        if row.status != "ok":
            out.append((label, row.program, row.status, *["-"] * 9, str(row.errors)))
            continue
        out.append(
            (
                label,
                row.program,
                str(lat.n if lat else 0),
                _num(lat.p50 * 1000 if lat else None, ".0f"),
                _num(lat.p95 * 1000 if lat else None, ".0f"),
                _num(lat.p99 * 1000 if lat else None, ".0f"),
                _num(row.throughput_per_s, ".2f"),
                _num(rat["p50"], ".2f"),
                _num(rat["p99"], ".2f"),
                _num(rat["throughput"], ".2f"),
                _num(row.peak_rss_mib, ".0f"),
                _cpu(row),
                str(row.errors),
            )
        )
    return out


def format_table(rows: Sequence[Row]) -> str:
    """A fixed-width text table for the terminal."""
    body = [_HEADER, *table_rows(rows)]
    widths = [max(len(line[i]) for line in body) for i in range(len(_HEADER))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in body
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown(rows: Sequence[Row]) -> str:
    """The same table as Markdown, for docs/benchmarks.md."""
    body = table_rows(rows)
    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    lines += ["| " + " | ".join(line) + " |" for line in body]
    return "\n".join(lines)


def format_targets(checks: Sequence[TargetCheck]) -> str:
    lines = []
    for check in checks:
        verdict = {True: "MET", False: "NOT MET", None: "N/A"}[check.met]
        value = "-" if check.value is None else f"{check.value:.2f}"
        lines.append(
            f"[{verdict:>7}] {check.target} ({check.program}): {value} "
            f"(limit {check.limit:g}) - {check.detail}"
        )
    return "\n".join(lines)


def document(
    meta: dict[str, Any], rows: Sequence[Row], checks: Sequence[TargetCheck]
) -> dict[str, Any]:
    """The JSON document: how it was run, every row with ratios, every target."""
    return {
        "meta": meta,
        "results": [row_dict(row, rows) for row in rows],
        "targets": [check.as_dict() for check in checks],
    }


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
