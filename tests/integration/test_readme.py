"""The newcomer's path, literally: `make demo`, then every command of the README's
"Your first submissions" in order, as subprocesses with no `STREAMWORKER_*` settings,
against the local stack. A README edit that breaks a command breaks this test."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import pytest

from tests.conftest import REPO, need

SECTION = "## Your first submissions"
DEMO_TIMEOUT_S = 900
COMMAND_TIMEOUT_S = 180
RESULT_WAIT_S = 90


def readme_blocks(text: str) -> list[tuple[str, list[str]]]:
    """The fenced blocks of the section, as (language, non-comment lines)."""
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)
    return [
        (lang, [line for line in body.splitlines() if line.strip() and not line.startswith("#")])
        for lang, body in blocks
    ]


def clean_env() -> dict[str, str]:
    """A newcomer's environment: no streamworker settings at all."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("STREAMWORKER_", "MAKE"))}


def sh(command: str, timeout_s: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def assert_quiet(done: subprocess.CompletedProcess[str], command: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{command}\n{output[-4000:]}"
    assert "Traceback" not in output, f"{command}\n{output[-4000:]}"
    assert " INFO " not in output, f"{command}\n{output[-4000:]}"


@pytest.fixture
def demo_stack() -> object:
    """`make demo` on the stack; its worker (group `streamworker`) is stopped afterwards
    so it does not share the daemon with later tests' workers."""
    need("kcat (dev/packaging/install-tools.sh kcat)", shutil.which("kcat") is not None)
    need("psql", shutil.which("psql") is not None)
    try:
        demo = sh("make demo", timeout_s=DEMO_TIMEOUT_S)
        assert demo.returncode == 0, (demo.stdout + demo.stderr)[-6000:]
        yield demo
    finally:
        sh("bash dev/stack.sh down-gateway")
        sh("bash dev/stack.sh down-worker")


def test_readme_blocks_are_what_this_test_runs() -> None:
    blocks = readme_blocks((REPO / "README.md").read_text())
    assert [lang for lang, _ in blocks] == ["sh", "sh", "sql"]
    commands = [line for _, lines in blocks[:2] for line in lines]
    for verb in ("submit", "history", "languages", "doctor", "replay"):
        assert any(f"streamworker {verb}" in c for c in commands), verb
    assert not any("STREAMWORKER_" in c or "--url" in c for c in commands)


def test_make_demo_then_every_readme_command(demo_stack: subprocess.CompletedProcess[str]) -> None:
    assert demo_stack.stdout.count("accepted") >= 9, demo_stack.stdout[-4000:]
    assert "SQL: SELECT" in demo_stack.stdout
    blocks = readme_blocks((REPO / "README.md").read_text())
    cli, kafka, sql = (lines for _, lines in blocks)
    outputs = {}
    for command in cli:
        done = sh(command)
        assert_quiet(done, command)
        outputs[command.split()[1] if "streamworker" in command else command] = done.stdout
    submitted = next(out for cmd, out in outputs.items() if cmd == "submit")
    assert ": accepted" in submitted and "hello, world" in submitted
    history = next(out for cmd, out in outputs.items() if cmd == "history")
    assert history.startswith("submission_id | language")
    assert "python" in next(out for cmd, out in outputs.items() if cmd == "languages")
    assert "rebuilt projections" in next(out for cmd, out in outputs.items() if cmd == "replay")

    produce, consume = kafka
    assert_quiet(sh(produce), produce)
    deadline = time.monotonic() + RESULT_WAIT_S
    while True:  # the README says: run the consumer again until the result is there
        done = sh(consume)
        if done.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert_quiet(done, consume)
    assert '"status":"accepted"' in done.stdout.replace(" ", "")
    assert "hello" in done.stdout  # "olleh" reversed

    query = " ".join(sql)
    url = "postgresql://streamworker:streamworker@127.0.0.1:5432/streamworker"
    rows = subprocess.run(
        ["psql", url, "-v", "ON_ERROR_STOP=1", "-A", "-t", "-c", query],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rows.returncode == 0, rows.stderr
    assert "readme-kcat-1|python|accepted" in rows.stdout or "|python|accepted|" in rows.stdout


def test_the_readme_is_a_screen_or_two() -> None:
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 110
    for link in re.findall(r"\]\(([^)#]+)\)", text):
        assert (REPO / link).exists(), link
        assert not link.startswith(("..", "/")), link


def test_no_document_points_outside_the_repository() -> None:
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = path.read_text()
        for relative in re.findall(r"(?:\.\./)+[\w./-]*\w", text):  # links or plain text
            target = (path.parent / relative).resolve()
            assert target.is_relative_to(REPO.resolve()) and target.exists(), (path, relative)
        for link in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            target = (path.parent / link).resolve()
            assert target.is_relative_to(REPO.resolve()), (path, link)
            assert target.exists(), (path, link)
