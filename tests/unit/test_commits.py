"""Commit-after-ack coalescing."""

from __future__ import annotations

import asyncio

import pytest

from streamworker.worker.commits import CommitSoon


class _Committer:
    def __init__(self, fail_first: bool = False) -> None:
        self.calls = 0
        self.fail_first = fail_first
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> bool:
        self.calls += 1
        await self.release.wait()
        if self.fail_first and self.calls == 1:
            raise RuntimeError("broker busy")
        return True


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_burst_of_requests_is_one_commit() -> None:
    commit = _Committer()
    soon = CommitSoon(commit, delay_s=0.05)
    for _ in range(10):
        soon.request()
    await asyncio.sleep(0.15)
    assert commit.calls == 1 and soon.commits == 1
    await soon.stop()


async def test_requests_during_a_commit_make_exactly_one_more() -> None:
    commit = _Committer()
    commit.release.clear()
    soon = CommitSoon(commit, delay_s=0)
    soon.request()
    await _settle()
    assert commit.calls == 1  # running, blocked
    soon.request()
    soon.request()
    commit.release.set()
    await _settle()
    assert commit.calls == 2
    await asyncio.sleep(0.02)
    assert commit.calls == 2, "nothing was requested after the second commit started"
    await soon.stop()


async def test_a_failed_commit_does_not_stop_later_ones() -> None:
    commit = _Committer(fail_first=True)
    soon = CommitSoon(commit, delay_s=0)
    soon.request()
    await _settle()
    soon.request()
    await _settle()
    assert commit.calls == 2 and soon.commits == 1
    await soon.stop()


async def test_negative_delay_disables() -> None:
    commit = _Committer()
    soon = CommitSoon(commit, delay_s=-1)
    soon.request()
    await asyncio.sleep(0.01)
    assert commit.calls == 0 and not soon.enabled
    await soon.stop()


async def test_stop_lets_a_running_commit_finish() -> None:
    commit = _Committer()
    commit.release.clear()
    soon = CommitSoon(commit, delay_s=0)
    soon.request()
    await _settle()
    stopping = asyncio.create_task(soon.stop())
    await _settle()
    assert not stopping.done(), "stop must wait for the commit in flight"
    commit.release.set()
    await asyncio.wait_for(stopping, 1.0)
    assert commit.calls == 1


async def test_a_slow_commit_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    commit = _Committer()
    commit.release.clear()
    soon = CommitSoon(commit, delay_s=0, slow_s=0.05)
    soon.request()
    await asyncio.sleep(0.15)
    assert "a commit has been running" in caplog.text
    commit.release.set()
    await _settle()
    assert soon.commits == 1, "a slow commit is still awaited to its end"
    await soon.stop()


async def test_a_failed_commit_is_reported_to_on_failure() -> None:
    failures: list[Exception] = []
    soon = CommitSoon(_Committer(fail_first=True), delay_s=0, on_failure=failures.append)
    soon.request()
    await _settle()
    soon.request()
    await _settle()
    assert [str(f) for f in failures] == ["broker busy"], "only the failed one"
    await soon.stop()
