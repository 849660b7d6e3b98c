"""Judging with a fake sandbox: compile once, run each case in order, decide the verdict."""

from __future__ import annotations

import dataclasses
import inspect
import json
from typing import Any

import pytest

from streamworker.contract import Status, Submission, decode_submission
from streamworker.errors import HelperProtocolError, InvalidEvent
from streamworker.judge import (
    RunSession,
    Sandbox,
    helper_limits,
    judge,
    program_files,
    run_limits_for,
)
from streamworker.languages.registry import Language, load_registry
from streamworker.limits import COMPILE_LIMITS, DEFAULT_LIMITS, RunLimits
from streamworker.sandbox.failure import FailureKind
from streamworker.sandbox.protocol import RawRun
from streamworker.settings import Settings


def submission(**fields: Any) -> Submission:
    obj: dict[str, Any] = {"submission_id": "sub-1", "language": "fake", "source": "code"}
    obj.update({k: v for k, v in fields.items() if v is not None})
    if "files" in fields:
        obj.pop("source")
    return decode_submission(json.dumps(obj).encode())


def cases(*pairs: tuple[str, str | None]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, (stdin, expected) in enumerate(pairs):
        case: dict[str, Any] = {"id": f"c{i + 1}", "stdin": stdin}
        if expected is not None:
            case["expected_output"] = expected
        out.append(case)
    return out


# ------------------------------------------------------------------------ interpreted


class TestInterpreted:
    async def test_single_run(self, settings: Settings, sandbox: Any, fakes: Any) -> None:
        sub = submission(source="print(input())", stdin="héllo\n", args=["-x", "y"])
        verdict = await judge(sub, fakes.interpreted, settings, sandbox)
        assert len(sandbox.sessions) == 1
        (call,) = sandbox.calls
        assert call.argv == ["fakepy", "main.fp", "-x", "y"]
        assert call.files == [("main.fp", b"print(input())")]
        assert call.stdin == "héllo\n".encode()
        assert call.limits == dataclasses.replace(helper_limits(DEFAULT_LIMITS), snapshot=1)
        assert verdict.status is Status.ACCEPTED
        assert verdict.message is None
        assert verdict.compile is None
        assert len(verdict.runs) == 1
        assert verdict.runs[0].test_case_id is None
        assert verdict.runs[0].stdout == "héllo\n"
        assert verdict.image == "fake-runtime-fakepy"
        assert verdict.image_id == "sha256:fake"
        assert verdict.started_at is not None and verdict.started_at.tzinfo is not None
        assert sandbox.sessions[0].restrictions == []
        assert sandbox.closed == 1

    async def test_session_arguments_and_policy(
        self, settings: Settings, sandbox: Any, fakes: Any
    ) -> None:
        await judge(submission(), fakes.interpreted, settings, sandbox, attempt=3)
        (opened,) = sandbox.opened
        assert opened.submission_id == "sub-1"
        assert opened.attempt == 3
        assert opened.language is fakes.interpreted
        policy = opened.policy
        assert policy.memory_mb == DEFAULT_LIMITS.memory_mb
        assert policy.processes == DEFAULT_LIMITS.processes
        assert policy.workspace_mb == settings.workspace_mb
        assert policy.file_size_kb >= DEFAULT_LIMITS.file_size_kb

    async def test_expected_output_match_and_mismatch(
        self, settings: Settings, sandbox: Any, fakes: Any
    ) -> None:
        ok = await judge(
            submission(stdin="3\n", expected_output="3"), fakes.interpreted, settings, sandbox
        )
        assert ok.status is Status.ACCEPTED
        wrong = await judge(
            submission(stdin="4\n", expected_output="3"), fakes.interpreted, settings, sandbox
        )
        assert wrong.status is Status.WRONG_ANSWER
        assert wrong.runs[0].status is Status.WRONG_ANSWER
        assert wrong.message is None

    async def test_exact_compare_is_passed_through(
        self, settings: Settings, sandbox: Any, fakes: Any
    ) -> None:
        verdict = await judge(
            submission(stdin="3\n", expected_output="3", compare="exact"),
            fakes.interpreted,
            settings,
            sandbox,
        )
        assert verdict.status is Status.WRONG_ANSWER

    async def test_test_cases_run_in_order_with_files_delivered_once(
        self, settings: Settings, sandbox: Any, fakes: Any
    ) -> None:
        sub = submission(test_cases=cases(("a", "a"), ("b", "b"), ("c", "c")), stdin="ignored")
        verdict = await judge(sub, fakes.interpreted, settings, sandbox)
        calls = sandbox.calls
        assert [c.stdin for c in calls] == [b"a", b"b", b"c"]
        assert [len(c.files) for c in calls] == [1, 0, 0]
        assert all(c.argv == ["fakepy", "main.fp"] for c in calls)
        # The delivered files are saved; every later case starts from them alone.
        assert [(c.limits.snapshot, c.limits.reset) for c in calls] == [
            (1, False),
            (0, True),
            (0, True),
        ]
        assert [r.test_case_id for r in verdict.runs] == ["c1", "c2", "c3"]
        assert verdict.status is Status.ACCEPTED
        assert len(sandbox.sessions) == 1

    async def test_every_case_runs_and_the_first_failure_decides(
        self, settings: Settings, fakes: Any
    ) -> None:
        def responder(call: Any, index: int) -> Any:
            if index == 1:
                return fakes.make_raw(stdout=b"", exit_code=None, signal=11)
            if index == 2:
                return fakes.make_raw(stdout=b"", timed_out=True)
            return fakes.make_raw(stdout=call.stdin)

        sandbox = fakes.FakeSandbox(responder=responder)
        sub = submission(test_cases=cases(("a", "a"), ("b", "b"), ("c", "c"), ("d", "x")))
        verdict = await judge(sub, fakes.interpreted, settings, sandbox)
        assert [r.status for r in verdict.runs] == [
            Status.ACCEPTED,
            Status.RUNTIME_ERROR,
            Status.TIME_LIMIT_EXCEEDED,
            Status.WRONG_ANSWER,
        ]
        assert verdict.runs[1].signal == "SIGSEGV"
        assert verdict.status is Status.RUNTIME_ERROR

    @pytest.mark.parametrize(
        ("kind", "status"),
        [
            (FailureKind.OOM_KILLED, Status.MEMORY_LIMIT_EXCEEDED),
            (FailureKind.WORKER_TIMEOUT, Status.TIME_LIMIT_EXCEEDED),
            (FailureKind.OUTPUT_FLOOD, Status.OUTPUT_LIMIT_EXCEEDED),
        ],
    )
    async def test_a_run_that_ends_its_container_is_the_last(
        self, settings: Settings, fakes: Any, kind: FailureKind, status: Status
    ) -> None:
        def responder(call: Any, index: int) -> Any:
            if index == 1:
                return RawRun(b"", b"", None, "the container is gone", kind)
            return fakes.make_raw(stdout=call.stdin)

        sandbox = fakes.FakeSandbox(responder=responder)
        sub = submission(test_cases=cases(("a", "a"), ("b", "b"), ("c", "c"), ("d", "d")))
        verdict = await judge(sub, fakes.interpreted, settings, sandbox)
        assert len(sandbox.calls) == 2, "no case may run in a container that is gone"
        assert [r.status for r in verdict.runs] == [Status.ACCEPTED, status]
        assert verdict.status is status
        assert verdict.message is not None and "2 later case(s) were not run" in verdict.message

    async def test_a_refused_request_is_internal_error_and_the_cases_go_on(
        self, settings: Settings, fakes: Any
    ) -> None:
        def responder(call: Any, index: int) -> Any:
            if index == 0:
                why = "the sandbox helper refused the request: 'x: File exists'"
                return RawRun(b"", b"x: File exists", None, why, FailureKind.HELPER_ERROR)
            return fakes.make_raw(stdout=call.stdin)

        sandbox = fakes.FakeSandbox(responder=responder)
        sub = submission(test_cases=cases(("a", "a"), ("b", "b")))
        verdict = await judge(sub, fakes.interpreted, settings, sandbox)
        assert [r.status for r in verdict.runs] == [Status.INTERNAL_ERROR, Status.ACCEPTED]
        assert verdict.status is Status.INTERNAL_ERROR
        assert "File exists" in verdict.runs[0].stderr

    async def test_expected_outputs_never_reach_the_sandbox(
        self, settings: Settings, sandbox: Any, fakes: Any
    ) -> None:
        secret = "the-secret-answer-42"
        sub = submission(
            test_cases=[{"id": "1", "stdin": "x", "expected_output": secret}],
        )
        await judge(sub, fakes.interpreted, settings, sandbox)
        for call in sandbox.calls:
            blob = b"".join(c for _, c in call.files) + call.stdin + " ".join(call.argv).encode()
            assert secret.encode() not in blob

    async def test_run_that_cannot_start_is_internal_error(
        self, settings: Settings, fakes: Any
    ) -> None:
        sandbox = fakes.FakeSandbox(
            responder=lambda call, i: fakes.make_raw(exec_errno=2, exit_code=127)
        )
        verdict = await judge(submission(), fakes.interpreted, settings, sandbox)
        assert verdict.status is Status.INTERNAL_ERROR
        assert verdict.message == "the program could not be started in the sandbox"

    async def test_output_is_kept_up_to_the_result_limit(self, fakes: Any) -> None:
        settings = Settings(worker_id="w", result_output_kb=1)
        sandbox = fakes.FakeSandbox(responder=lambda call, i: fakes.make_raw(stdout=b"x" * 5000))
        verdict = await judge(submission(), fakes.interpreted, settings, sandbox)
        run = verdict.runs[0]
        assert len(run.stdout) == 1024
        assert run.stdout_truncated is True

    async def test_sandbox_errors_propagate_and_close_the_session(
        self, settings: Settings, fakes: Any
    ) -> None:
        def responder(call: Any, index: int) -> Any:
            raise HelperProtocolError("no report")

        sandbox = fakes.FakeSandbox(responder=responder)
        with pytest.raises(HelperProtocolError):
            await judge(submission(), fakes.interpreted, settings, sandbox)
        assert sandbox.closed == 1


# --------------------------------------------------------------------------- compiled


class TestCompiled:
    async def test_compile_once_then_one_exec_per_case(
        self, settings: Settings, sandbox: Any, fakes: Any
    ) -> None:
        sub = submission(
            source="int main(){}", args=["7"], test_cases=cases(("1", None), ("2", None))
        )
        verdict = await judge(sub, fakes.compiled, settings, sandbox)
        compile_call, *runs = sandbox.calls
        assert compile_call.argv == ["fakecc", "-o", "main", "main.fc"]
        assert compile_call.files == [("main.fc", b"int main(){}")]
        assert compile_call.stdin == b""
        # The compile's workdir is saved; each case starts from it alone.
        assert compile_call.limits == dataclasses.replace(helper_limits(COMPILE_LIMITS), snapshot=2)
        assert [c.argv for c in runs] == [["./main", "7"], ["./main", "7"]]
        assert [c.files for c in runs] == [[], []]
        assert [c.stdin for c in runs] == [b"1", b"2"]
        assert [c.limits for c in runs] == [
            helper_limits(DEFAULT_LIMITS),
            dataclasses.replace(helper_limits(DEFAULT_LIMITS), reset=True),
        ]
        assert verdict.status is Status.ACCEPTED
        assert verdict.compile is not None
        assert verdict.compile.status is Status.ACCEPTED
        assert verdict.compile.test_case_id is None
        assert [r.test_case_id for r in verdict.runs] == ["c1", "c2"]
        # The container was sized for the compiler; the runs get their own limits back,
        # once, after the compile and before the first run.
        session = sandbox.sessions[0]
        assert session.restrictions == [(DEFAULT_LIMITS.memory_mb, DEFAULT_LIMITS.processes)]
        assert session.restricted_after == [1]

    async def test_container_is_sized_for_the_larger_of_compile_and_run(
        self, settings: Settings, sandbox: Any, fakes: Any
    ) -> None:
        sub = submission(limits={"memory_mb": 200, "processes": 200})
        await judge(sub, fakes.compiled, settings, sandbox)
        policy = sandbox.opened[0].policy
        assert policy.memory_mb == max(200, COMPILE_LIMITS.memory_mb)
        assert policy.processes == max(200, COMPILE_LIMITS.processes)

    async def test_memory_is_lowered_after_compile(
        self, settings: Settings, sandbox: Any, fakes: Any
    ) -> None:
        await judge(submission(limits={"memory_mb": 200}), fakes.compiled, settings, sandbox)
        policy = sandbox.opened[0].policy
        assert policy.memory_mb == COMPILE_LIMITS.memory_mb
        assert sandbox.sessions[0].restrictions == [(200, DEFAULT_LIMITS.processes)]
        assert sandbox.sessions[0].restricted_after == [1]

    async def test_processes_are_lowered_even_when_memory_is_not(
        self, settings: Settings, sandbox: Any, fakes: Any
    ) -> None:
        await judge(submission(limits={"memory_mb": 2048}), fakes.compiled, settings, sandbox)
        policy = sandbox.opened[0].policy
        assert (policy.memory_mb, policy.processes) == (2048, COMPILE_LIMITS.processes)
        assert sandbox.sessions[0].restrictions == [(2048, DEFAULT_LIMITS.processes)]

    async def test_memory_is_kept_when_only_processes_are_lowered_from_compile(
        self, settings: Settings, sandbox: Any, fakes: Any
    ) -> None:
        await judge(submission(limits={"processes": 200}), fakes.compiled, settings, sandbox)
        policy = sandbox.opened[0].policy
        assert (policy.memory_mb, policy.processes) == (COMPILE_LIMITS.memory_mb, 200)
        assert sandbox.sessions[0].restrictions == [(DEFAULT_LIMITS.memory_mb, 200)]

    async def test_not_restricted_when_the_run_needs_as_much_as_the_compile(
        self, settings: Settings, sandbox: Any, fakes: Any
    ) -> None:
        sub = submission(limits={"memory_mb": 2048, "processes": COMPILE_LIMITS.processes})
        await judge(sub, fakes.compiled, settings, sandbox)
        policy = sandbox.opened[0].policy
        assert (policy.memory_mb, policy.processes) == (2048, COMPILE_LIMITS.processes)
        assert sandbox.sessions[0].restrictions == []
        assert len(sandbox.calls) == 2

    async def test_interpreted_container_is_never_restricted(
        self, settings: Settings, sandbox: Any, fakes: Any
    ) -> None:
        sub = submission(limits={"memory_mb": 64, "processes": 4})
        await judge(sub, fakes.interpreted, settings, sandbox)
        policy = sandbox.opened[0].policy
        assert (policy.memory_mb, policy.processes) == (64, 4)
        assert sandbox.sessions[0].restrictions == []

    async def test_compile_failure_is_compilation_error_without_runs(
        self, settings: Settings, fakes: Any
    ) -> None:
        sandbox = fakes.FakeSandbox(
            responder=lambda call, i: fakes.make_raw(stderr=b"main.fc:1: error", exit_code=1)
        )
        verdict = await judge(
            submission(test_cases=cases(("1", "1"))), fakes.compiled, settings, sandbox
        )
        assert verdict.status is Status.COMPILATION_ERROR
        assert verdict.runs == ()
        assert verdict.compile is not None
        assert verdict.compile.status is Status.COMPILATION_ERROR
        assert verdict.compile.stderr == "main.fc:1: error"
        assert verdict.compile.exit_code == 1
        assert verdict.message is not None and "compilation failed" in verdict.message
        assert len(sandbox.calls) == 1
        assert sandbox.sessions[0].restrictions == []
        assert verdict.image_id == "sha256:fake"

    @pytest.mark.parametrize(
        "overrides",
        [{"timed_out": True}, {"signal": 9, "exit_code": None}, {"output_exceeded": True}],
    )
    async def test_any_failed_compile_is_compilation_error(
        self, settings: Settings, fakes: Any, overrides: dict[str, Any]
    ) -> None:
        sandbox = fakes.FakeSandbox(responder=lambda call, i: fakes.make_raw(**overrides))
        verdict = await judge(submission(), fakes.compiled, settings, sandbox)
        assert verdict.status is Status.COMPILATION_ERROR
        assert verdict.runs == ()

    async def test_compiler_that_cannot_start_is_internal_error(
        self, settings: Settings, fakes: Any
    ) -> None:
        sandbox = fakes.FakeSandbox(
            responder=lambda call, i: fakes.make_raw(exec_errno=2, exit_code=127)
        )
        verdict = await judge(submission(), fakes.compiled, settings, sandbox)
        assert verdict.status is Status.INTERNAL_ERROR
        assert verdict.compile is not None
        assert verdict.compile.status is Status.INTERNAL_ERROR
        assert verdict.runs == ()
        assert verdict.message == "the compiler could not be started"
        assert len(sandbox.calls) == 1

    async def test_files_and_entrypoint(self, settings: Settings, sandbox: Any, fakes: Any) -> None:
        sub = submission(
            files=[
                {"path": "lib/util.fc", "content": "u"},
                {"path": "app.fc", "content": "a"},
            ],
            entrypoint="app.fc",
        )
        await judge(sub, fakes.compiled, settings, sandbox)
        compile_call = sandbox.calls[0]
        assert compile_call.argv == ["fakecc", "-o", "main", "app.fc"]
        assert compile_call.files == [("lib/util.fc", b"u"), ("app.fc", b"a")]

    async def test_java_uses_the_stem_and_its_floor(self, settings: Settings, sandbox: Any) -> None:
        java = load_registry()["java"]
        await judge(submission(language="java"), java, settings, sandbox)
        compile_call, run_call = sandbox.calls
        assert compile_call.argv[-1] == "Main.java"
        assert run_call.argv[-1] == "Main"
        floor = int(java.limits_floor["memory_mb"])
        floor_processes = int(java.limits_floor["processes"])
        assert sandbox.sessions[0].restrictions == [(floor, floor_processes)]
        assert sandbox.sessions[0].restricted_after == [1]
        assert run_call.limits == helper_limits(
            dataclasses.replace(DEFAULT_LIMITS, memory_mb=floor, processes=floor_processes)
        )


# ------------------------------------------------------------------- program_files / limits


class TestProgramFiles:
    def test_source_is_written_to_the_languages_file(self, fakes: Any) -> None:
        files, entry = program_files(submission(source="x"), fakes.interpreted)
        assert (files, entry) == ([("main.fp", b"x")], "main.fp")

    def test_main_file_is_the_default_entrypoint_among_files(self, fakes: Any) -> None:
        sub = submission(
            files=[{"path": "a.fp", "content": ""}, {"path": "main.fp", "content": ""}]
        )
        assert program_files(sub, fakes.interpreted)[1] == "main.fp"

    def test_first_file_is_the_default_entrypoint_otherwise(self, fakes: Any) -> None:
        sub = submission(files=[{"path": "b.fp", "content": ""}, {"path": "a.fp", "content": ""}])
        assert program_files(sub, fakes.interpreted)[1] == "b.fp"

    def test_source_with_entrypoint_runs_a_delivered_file(self, fakes: Any) -> None:
        files, entry = program_files(
            submission(source="x", entrypoint="prog.fp"), fakes.interpreted
        )
        assert (files, entry) == ([("prog.fp", b"x")], "prog.fp")

    def test_source_with_nested_entrypoint(self, fakes: Any) -> None:
        files, entry = program_files(
            submission(source="x", entrypoint="src/./prog.fp"), fakes.interpreted
        )
        assert (files, entry) == ([("src/prog.fp", b"x")], "src/prog.fp")

    async def test_source_with_entrypoint_is_delivered_and_run(
        self, settings: Settings, sandbox: Any, fakes: Any
    ) -> None:
        sub = submission(source="print(1)", entrypoint="prog.py")
        await judge(sub, fakes.interpreted, settings, sandbox)
        (call,) = sandbox.calls
        assert call.files == [("prog.py", b"print(1)")]
        assert call.argv == ["fakepy", "prog.py"]

    async def test_compiled_source_with_entrypoint_compiles_that_file(
        self, settings: Settings, sandbox: Any, fakes: Any
    ) -> None:
        sub = submission(source="int main(){}", entrypoint="prog.fc")
        await judge(sub, fakes.compiled, settings, sandbox)
        compile_call = sandbox.calls[0]
        assert compile_call.files == [("prog.fc", b"int main(){}")]
        assert compile_call.argv == ["fakecc", "-o", "main", "prog.fc"]

    @pytest.mark.parametrize("entrypoint", ["/prog.fp", "../prog.fp", ""])
    def test_source_with_unsafe_entrypoint_is_invalid(self, entrypoint: str) -> None:
        with pytest.raises(InvalidEvent) as info:
            submission(source="x", entrypoint=entrypoint)
        assert info.value.field == "entrypoint"


class TestLimits:
    async def test_submission_limits_within_maxima(
        self, settings: Settings, sandbox: Any, fakes: Any
    ) -> None:
        sub = submission(
            limits={"cpu_time_s": 1, "wall_time_s": 3, "memory_mb": 128, "output_kb": 4}
        )
        await judge(sub, fakes.interpreted, settings, sandbox)
        (call,) = sandbox.calls
        assert call.limits.cpu_time_s == 1.0
        assert call.limits.wall_time_s == 3.0
        assert call.limits.output_bytes == 4 * 1024
        assert call.limits.file_size_bytes == DEFAULT_LIMITS.file_size_kb * 1024
        assert sandbox.opened[0].policy.memory_mb == 128

    def test_run_limits_for_defaults(self, settings: Settings, fakes: Any) -> None:
        assert run_limits_for(submission(), fakes.interpreted, settings) == DEFAULT_LIMITS

    async def test_above_maximum_is_invalid_with_the_field_in_the_message(
        self, settings: Settings, sandbox: Any, fakes: Any
    ) -> None:
        sub = submission(limits={"cpu_time_s": settings.max_limits.cpu_time_s + 1})
        with pytest.raises(InvalidEvent) as info:
            await judge(sub, fakes.interpreted, settings, sandbox)
        assert "limits.cpu_time_s" in str(info.value)
        assert info.value.submission_id == "sub-1"
        assert sandbox.opened == []

    def test_above_maximum_names_the_field(self, settings: Settings, fakes: Any) -> None:
        sub = submission(limits={"memory_mb": settings.max_limits.memory_mb + 1})
        with pytest.raises(InvalidEvent) as info:
            run_limits_for(sub, fakes.interpreted, settings)
        assert info.value.field == "limits.memory_mb"
        assert info.value.submission_id == "sub-1"
        assert str(info.value).count("limits.memory_mb") == 1
        assert str(settings.max_limits.memory_mb) in info.value.detail

    def test_helper_limits(self) -> None:
        limits = RunLimits(1.5, 4.0, 64, 8, 2, 3)
        hl = helper_limits(limits)
        assert (hl.cpu_time_s, hl.wall_time_s, hl.output_bytes, hl.file_size_bytes) == (
            1.5,
            4.0,
            2048,
            3072,
        )


class TestSizeChecks:
    async def test_source_too_large(self, sandbox: Any, fakes: Any) -> None:
        settings = Settings(worker_id="w", max_source_bytes=10)
        with pytest.raises(InvalidEvent) as info:
            await judge(submission(source="x" * 11), fakes.interpreted, settings, sandbox)
        assert info.value.field == "source"
        assert info.value.submission_id == "sub-1"
        assert sandbox.opened == []

    async def test_source_at_the_maximum_is_fine(self, sandbox: Any, fakes: Any) -> None:
        settings = Settings(worker_id="w", max_source_bytes=10)
        verdict = await judge(submission(source="x" * 10), fakes.interpreted, settings, sandbox)
        assert verdict.status is Status.ACCEPTED

    async def test_files_too_large_in_total(self, sandbox: Any, fakes: Any) -> None:
        settings = Settings(worker_id="w", max_source_bytes=10)
        sub = submission(
            files=[{"path": "a", "content": "x" * 6}, {"path": "b", "content": "y" * 6}]
        )
        with pytest.raises(InvalidEvent) as info:
            await judge(sub, fakes.interpreted, settings, sandbox)
        assert info.value.field == "files"

    async def test_size_counts_bytes_not_characters(self, sandbox: Any, fakes: Any) -> None:
        settings = Settings(worker_id="w", max_source_bytes=10)
        with pytest.raises(InvalidEvent):
            await judge(submission(source="é" * 6), fakes.interpreted, settings, sandbox)

    async def test_too_many_test_cases(self, sandbox: Any, fakes: Any) -> None:
        settings = Settings(worker_id="w", max_test_cases=2)
        sub = submission(test_cases=cases(("1", None), ("2", None), ("3", None)))
        with pytest.raises(InvalidEvent) as info:
            await judge(sub, fakes.interpreted, settings, sandbox)
        assert info.value.field == "test_cases"
        assert sandbox.opened == []

    async def test_test_cases_at_the_maximum_are_fine(self, sandbox: Any, fakes: Any) -> None:
        settings = Settings(worker_id="w", max_test_cases=2)
        sub = submission(test_cases=cases(("1", None), ("2", None)))
        verdict = await judge(sub, fakes.interpreted, settings, sandbox)
        assert len(verdict.runs) == 2


# ------------------------------------------------------------------- managed heaps


class TestManagedHeap:
    """A language's heap follows each run's memory limit; its OOM error is MLE."""

    MANAGED = Language(
        id="fakevm",
        name="Fake VM",
        packages=(),
        source_file="main.fv",
        run=("fakevm", "-Xmx{heap_mb}m", "{entrypoint}"),
        oom_stderr=("FakeHeapError: heap space",),
        heap_reserve_mb=100,
    )

    async def test_the_heap_follows_the_submissions_memory_limit(
        self, settings: Settings, sandbox: Any
    ) -> None:
        await judge(submission(limits={"memory_mb": 600}), self.MANAGED, settings, sandbox)
        assert sandbox.calls[0].argv == ["fakevm", "-Xmx500m", "main.fv"]
        await judge(submission(), self.MANAGED, settings, sandbox)
        default = DEFAULT_LIMITS.memory_mb - 100
        assert sandbox.calls[1].argv == ["fakevm", f"-Xmx{default}m", "main.fv"]

    async def test_the_runtimes_oom_error_is_mle(self, settings: Settings, fakes: Any) -> None:
        def responder(call: Any, index: int) -> Any:
            return fakes.make_raw(stderr=b"FakeHeapError: heap space\n", exit_code=1)

        sandbox = fakes.FakeSandbox(responder=responder)
        verdict = await judge(submission(), self.MANAGED, settings, sandbox)
        assert verdict.status is Status.MEMORY_LIMIT_EXCEEDED
        assert verdict.runs[0].exit_code == 1
        plain = dataclasses.replace(self.MANAGED, oom_stderr=())
        verdict = await judge(submission(), plain, settings, sandbox)
        assert verdict.status is Status.RUNTIME_ERROR


@pytest.mark.parametrize(
    ("proto", "fake_name"), [(Sandbox, "FakeSandbox"), (RunSession, "FakeSession")]
)
def test_fakes_match_the_protocols(proto: type, fake_name: str, fakes: Any) -> None:
    """Guard against the fakes drifting from the real protocols."""
    fake = getattr(fakes, fake_name)
    for name, member in vars(proto).items():
        if name.startswith("_") or not callable(member):
            continue
        assert list(inspect.signature(member).parameters) == list(
            inspect.signature(getattr(fake, name)).parameters
        ), name
