"""The audit log's part in `/health` and `/ready`: is anything stuck, or set aside?"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_LAG_DEGRADED_S = 30.0


@dataclass(frozen=True)
class AuditHealth:
    lag_s: float
    """Age of the oldest record accepted but not yet durable (0 when none waits)."""
    quarantined: int
    """Unresolved quarantined records: the table's count, or this process's since start
    when the database cannot say."""
    lag_degraded_s: float = DEFAULT_LAG_DEGRADED_S

    @property
    def problems(self) -> list[str]:
        found = []
        if self.lag_s > self.lag_degraded_s:
            found.append(f"lag {self.lag_s:.0f}s > {self.lag_degraded_s:g}s")
        if self.quarantined > 0:
            found.append(f"{self.quarantined} record(s) quarantined")
        return found

    @property
    def degraded(self) -> bool:
        return bool(self.problems)

    def text(self) -> str:
        """ "ok", or "degraded: " and the reasons, for the health bodies."""
        problems = self.problems
        return "degraded: " + "; ".join(problems) if problems else "ok"
