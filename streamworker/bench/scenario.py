"""What every in-process scenario looks like, and the names the report and JSON use."""

from __future__ import annotations

from typing import Protocol

from streamworker.bench.programs import Program

BASELINE_A = "baseline_a_docker_run"
BASELINE_B = "baseline_b_aiodocker"
BASELINE_C = "baseline_c_host"
EXECUTOR_COLD = "executor_cold"
EXECUTOR_WARM = "executor_warm"
EXEC_FLOOR = "floor_exec_running"
BASELINE_B_PARALLEL = "baseline_b_parallel"
E2E_SEQUENTIAL = "e2e_sequential"
E2E_SATURATION = "e2e_saturation"
E2E_HALF_LOAD = "e2e_half_saturation"
KAFKA_FLOOR_PLAIN = "kafka_floor_acks_all"
KAFKA_FLOOR_TXN = "kafka_floor_transaction"
GATEWAY_HTTP = "gateway_http_burst"
KAFKA_DIRECT = "kafka_direct_burst"

LABELS = {
    BASELINE_A: "A docker run --rm",
    BASELINE_B: "B aiodocker raw",
    BASELINE_C: "C host (floor)",
    EXECUTOR_COLD: "executor cold",
    EXECUTOR_WARM: "executor warm",
    EXEC_FLOOR: "D exec into running",
    BASELINE_B_PARALLEL: "B aiodocker parallel",
    KAFKA_FLOOR_PLAIN: "K Kafka acks=all",
    KAFKA_FLOOR_TXN: "K Kafka transaction",
    E2E_SEQUENTIAL: "e2e sequential x1",
    E2E_SATURATION: "e2e saturation",
    E2E_HALF_LOAD: "e2e half saturation",
    GATEWAY_HTTP: "gateway HTTP wait=true",
    KAFKA_DIRECT: "Kafka direct (paired)",
}
"""Table labels, in table order."""


class RunFailed(Exception):
    """One run failed or printed the wrong thing: its sample is dropped and counted."""


class Unavailable(Exception):
    """A scenario cannot run on this build or machine (e.g. no warm pool yet)."""


class Scenario(Protocol):
    """Runs one program once, synchronously from the caller's view; the runner times it."""

    name: str

    async def run_once(self, program: Program, run_id: str) -> None: ...

    async def settle(self) -> None:
        """Wait out background work this scenario left behind (so it is not billed to the next)."""
        ...


def check_output(program: Program, stdout: str, where: str) -> None:
    """Raise `RunFailed` unless the run printed exactly the program's known answer."""
    if stdout != program.expected_stdout:
        raise RunFailed(f"{where}: {program.key} printed {stdout[:200]!r}")
