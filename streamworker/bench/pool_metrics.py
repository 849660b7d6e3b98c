"""Pool hits, misses and waits of one e2e phase, from the worker's `/metrics` page. Pure.

A phase's figures are the difference of two scrapes (before and after), for the
phase's language: counters only grow, so the difference is what that phase caused.
It says why a phase was slow: a miss waits for the pool's next container, and a wait
that ends `cold` ran without one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import asdict, dataclass

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

HITS = "streamworker_pool_hits_total"
MISSES = "streamworker_pool_misses_total"
WAITS = "streamworker_pool_wait_duration_seconds_count"
REUSES = "streamworker_pool_reuses_total"
"""Sample names as exposed (counters with `_total`, the histogram's `_count`)."""
READY = "streamworker_pool_ready_containers"


@dataclass(frozen=True)
class PoolCounts:
    """Pool figures of one language: at a scrape, or over a phase (a difference)."""

    hits: int = 0
    misses: int = 0
    waits: int = 0
    """Misses that waited for the pool (the wait histogram's count, any outcome)."""
    cold_waits: int = 0
    """Of those, the ones that gave up and ran a cold container."""
    reuses: int = 0
    """Used containers wiped and put back (each spares the daemon a create and a remove)."""

    def minus(self, earlier: PoolCounts) -> PoolCounts:
        return PoolCounts(
            self.hits - earlier.hits,
            self.misses - earlier.misses,
            self.waits - earlier.waits,
            self.cold_waits - earlier.cold_waits,
            self.reuses - earlier.reuses,
        )

    def cell(self) -> str:
        """The table's `pool h/m/w/r` cell."""
        return f"{self.hits}/{self.misses}/{self.waits}/{self.reuses}"

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def pool_counts(text: str, language: str) -> PoolCounts:
    """The pool figures of `language` in a Prometheus text page (zeros when absent)."""
    totals = {HITS: 0.0, MISSES: 0.0, WAITS: 0.0, REUSES: 0.0}
    cold = 0.0
    for sample in _language_samples(text, totals.keys()):
        if sample.labels["language"] != language:
            continue
        totals[sample.name] += sample.value
        if sample.name == WAITS and sample.labels.get("outcome") == "cold":
            cold += sample.value
    return PoolCounts(
        round(totals[HITS]),
        round(totals[MISSES]),
        round(totals[WAITS]),
        round(cold),
        round(totals[REUSES]),
    )


def phase_counts(before: str | None, after: str | None, language: str) -> PoolCounts | None:
    """What happened between two scrapes; None when either scrape failed."""
    if before is None or after is None:
        return None
    return pool_counts(after, language).minus(pool_counts(before, language))


def pools_short(text: str, minimum: int, languages: Sequence[str]) -> list[str]:
    """The languages whose pool holds fewer than `minimum` ready containers on this page
    (a language without the gauge yet counts as empty)."""
    ready = {s.labels["language"]: s.value for s in _language_samples(text, {READY})}
    return [lang for lang in languages if ready.get(lang, 0.0) < minimum]


def _language_samples(text: str, names: Collection[str]) -> Iterator[Sample]:
    """The samples named `names` that carry a `language` label, in page order."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in names and "language" in sample.labels:
                yield sample
