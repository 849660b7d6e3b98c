"""Baselines A (`docker run --rm`), B (raw aiodocker) and C (the program on the host).

A and B run under the executor's exact container payload (see `baseline_spec`); C is
the floor: no container at all, the same compiler/interpreter commands as the registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import aiodocker

from streamworker.bench.baseline_spec import baseline_config, docker_run_argv
from streamworker.bench.context import RUN_TIMEOUT_S, BenchContext
from streamworker.bench.programs import Program
from streamworker.bench.scenario import (
    BASELINE_A,
    BASELINE_B,
    BASELINE_C,
    RunFailed,
    Unavailable,
    check_output,
)
from streamworker.languages.registry import expand
from streamworker.sandbox.spec import SANDBOX_PATH


async def _communicate(argv: list[str], env: dict[str, str], cwd: str | None) -> tuple[int, str]:
    """Run argv to completion; (exit code, stdout). Killed and failed past the timeout."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=env,
        cwd=cwd,
    )
    try:
        async with asyncio.timeout(RUN_TIMEOUT_S):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RunFailed(f"{argv[0]} did not finish in {RUN_TIMEOUT_S}s") from None
    if proc.returncode != 0:
        tail = err.decode(errors="replace")[-300:]
        raise RunFailed(f"{Path(argv[0]).name} exited {proc.returncode}: {tail}")
    return proc.returncode, out.decode(errors="replace")


class BaselineA:
    """`docker run --rm` from the CLI: what a shell script around Docker would pay."""

    name = BASELINE_A

    def __init__(self, ctx: BenchContext) -> None:
        self.ctx = ctx
        cli = shutil.which("docker")
        if cli is None:
            raise Unavailable("the docker CLI is not installed")
        self.cli = cli

    async def run_once(self, program: Program, run_id: str) -> None:
        config = baseline_config(
            self.ctx.image(program),
            self.ctx.policies[program.key],
            self.ctx.labels(run_id, program),
            self.ctx.language(program),
            program,
            readable_logs=False,
        )
        argv = docker_run_argv(self.cli, config)
        argv[2:2] = ["--name", run_id]
        try:
            _, out = await _communicate(argv, self.ctx.docker_cli_env(), None)
        except RunFailed:
            with contextlib.suppress(aiodocker.DockerError):
                await self.ctx.docker.containers.container(run_id).delete(force=True)
            raise
        check_output(program, out, self.name)

    async def settle(self) -> None:
        return None


class BaselineB:
    """aiodocker create → start → wait → logs → delete: the cheapest plain-API run."""

    name = BASELINE_B

    def __init__(self, ctx: BenchContext) -> None:
        self.ctx = ctx

    async def run_once(self, program: Program, run_id: str) -> None:
        config = baseline_config(
            self.ctx.image(program),
            self.ctx.policies[program.key],
            self.ctx.labels(run_id, program),
            self.ctx.language(program),
            program,
            readable_logs=True,
        )
        docker = self.ctx.docker
        container = await docker.containers.create(config, name=run_id)
        try:
            await container.start()
            status = await container.wait(timeout=RUN_TIMEOUT_S)
            lines = await container.log(stdout=True, stderr=False)
        except (aiodocker.DockerError, TimeoutError) as exc:
            raise RunFailed(f"{self.name}: {exc}") from exc
        finally:
            await asyncio.shield(container.delete(force=True, v=True))
        if status.get("StatusCode") != 0:
            raise RunFailed(f"{self.name}: {program.key} exited {status.get('StatusCode')}")
        check_output(program, "".join(lines), self.name)

    async def settle(self) -> None:
        return None


def real_executable(tool: str) -> str:
    """The host binary for `tool`: the system one (on the sandbox's PATH) when there is one.

    A user PATH may put a shim first (pyenv), or a differently built interpreter: on our
    machines pyenv's python3 starts ~4x slower than Debian's, the one the runtime image
    has. Otherwise fall back to PATH, resolving an interpreter shim via `sys.executable`.
    """
    found = shutil.which(tool, path=SANDBOX_PATH)
    if found is not None:
        return found
    found = shutil.which(tool)
    if found is None:
        raise Unavailable(f"{tool} is not installed on the host")
    if tool.startswith("python"):
        probe = subprocess.run(
            [found, "-c", "import sys; print(sys.executable)"],
            capture_output=True,
            text=True,
            check=True,
        )
        return probe.stdout.strip() or found
    return found


def _write(path: Path, text: str) -> None:
    """A synchronous write: a few hundred bytes on the host, cheaper than a thread hop."""
    path.write_text(text)


class BaselineC:
    """The program compiled and run directly on the host: the floor no sandbox can beat."""

    name = BASELINE_C

    def __init__(self, ctx: BenchContext) -> None:
        self.ctx = ctx
        self._tools: dict[str, str] = {}

    def _argv(self, template: tuple[str, ...], entry: str, heap_mb: int | None = None) -> list[str]:
        argv = expand(template, entry, heap_mb)
        if argv[0] not in self._tools:
            self._tools[argv[0]] = real_executable(argv[0])
        return [self._tools[argv[0]], *argv[1:]]

    @property
    def tools(self) -> dict[str, str]:
        """The host binaries used, by command name (recorded in the JSON)."""
        return dict(self._tools)

    def prepare(self, program: Program) -> None:
        """Resolve host tools up front, so a missing one is reported before timing starts."""
        language = self.ctx.language(program)
        if language.compile is not None:
            self._argv(language.compile, language.source_file)
        if not language.run[0].startswith("./"):
            self._argv(language.run, language.source_file)

    async def run_once(self, program: Program, run_id: str) -> None:
        language = self.ctx.language(program)
        entry = language.source_file
        with tempfile.TemporaryDirectory(prefix="sw-bench-") as work:
            env = {"PATH": SANDBOX_PATH, "HOME": work, "LANG": "C.UTF-8", "TMPDIR": work}
            env.update(language.env)
            _write(Path(work, entry), program.source)
            if language.compile is not None:
                await _communicate(self._argv(language.compile, entry), env, work)
            heap_mb = language.heap_mb(self.ctx.policies[program.key].memory_mb)
            run = expand(language.run, entry, heap_mb)
            argv = run if run[0].startswith("./") else self._argv(language.run, entry, heap_mb)
            _, out = await _communicate(argv, env, work)
        check_output(program, out, self.name)

    async def settle(self) -> None:
        return None
