"""The printed table, the target lines and the JSON document. Pure except `write_json`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streamworker.bench.results import Row, ratio_to_a, ratios, row_dict
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
    "p50/A",
    "RSS MiB",
    "CPU ms/run",
    "pool h/m/w/r",
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


def _label(row: Row, several_loops: bool) -> str:
    """'e2e saturation x4', with '[uvloop]' after it when rows of several loops are shown."""
    conc = f" x{row.concurrency}" if row.concurrency > 1 else ""
    loop = f" [{row.event_loop}]" if several_loops and row.event_loop else ""
    return LABELS.get(row.scenario, row.scenario) + conc + loop


def table_rows(rows: Sequence[Row]) -> list[tuple[str, ...]]:
    """Rows in table order (by scenario as listed in LABELS, then program as given)."""
    order = {name: i for i, name in enumerate(LABELS)}
    several_loops = len({r.event_loop for r in rows if r.event_loop}) > 1
    out = []
    for row in sorted(rows, key=lambda r: order.get(r.scenario, len(order))):
        lat = row.latency
        rat = ratios(row, rows)
        label = _label(row, several_loops)
        if row.status != "ok":
            out.append((label, row.program, row.status, *["-"] * 11, str(row.errors)))
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
                _num(ratio_to_a(row, rows), ".2f"),
                _num(row.peak_rss_mib, ".0f"),
                _cpu(row),
                row.pool.cell() if row.pool else "-",
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


def format_targets(checks: Sequence[TargetCheck], loop: str | None = None) -> str:
    """One line per target; programs other than the judged one are marked 'beside'.
    `loop`: the event loop whose e2e rows were judged, said when several ran."""
    lines = [] if loop is None else [f"targets judged on the {loop} worker's e2e rows"]
    for check in checks:
        verdict = {True: "MET", False: "NOT MET", None: "N/A"}[check.met]
        value = "-" if check.value is None else f"{check.value:.2f}"
        program = check.program if check.judged else f"{check.program}, beside"
        lines.append(
            f"[{verdict:>7}] {check.target} ({program}): {value} "
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
