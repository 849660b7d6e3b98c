"""The benchmark's pure parts: statistics, target checks, the baselines' Docker flags,
the worker environment and the process-tree RSS reader."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from streamworker.bench.baseline_spec import baseline_config, docker_run_argv, shell_script
from streamworker.bench.cli_args import add_bench_arguments, exit_code, options_from_args
from streamworker.bench.cpu import CpuMeter, find_pid, process_cpu_s, tree_cpu_s
from streamworker.bench.options import BenchOptions
from streamworker.bench.policy import judged_policy
from streamworker.bench.programs import PROGRAMS, select_programs
from streamworker.bench.results import FAILED, OK, Row, parallel_row, ratios, sequential_row
from streamworker.bench.rss import status_kb, tree_pids, tree_rss_kb
from streamworker.bench.scenario import (
    BASELINE_B,
    BASELINE_B_PARALLEL,
    E2E_HALF_LOAD,
    E2E_SATURATION,
)
from streamworker.bench.stats import percentile, ratio, summarize, throughput_per_s
from streamworker.bench.worker import isolated_settings, settings_env, worker_env
from streamworker.languages.registry import get_language
from streamworker.sandbox.spec import OOM_SCORE_ADJ, ContainerPolicy, container_config
from streamworker.settings import Settings, load_settings

# --- statistics -------------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    samples = [15.0, 20.0, 35.0, 40.0, 50.0]  # the textbook nearest-rank example
    assert percentile(samples, 5) == 15.0
    assert percentile(samples, 30) == 20.0
    assert percentile(samples, 40) == 20.0
    assert percentile(samples, 50) == 35.0
    assert percentile(samples, 100) == 50.0
    assert percentile(samples, 0) == 15.0


def test_percentile_ignores_order_and_returns_a_measured_value() -> None:
    samples = [float(x) for x in range(100, 0, -1)]
    assert percentile(samples, 95) == 95.0
    assert percentile(samples, 99) == 99.0
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0  # no interpolation between 2 and 3


def test_p99_of_thirty_samples_is_the_maximum() -> None:
    samples = [float(x) for x in range(1, 31)]
    assert percentile(samples, 99) == 30.0
    assert percentile(samples, 95) == 29.0


@pytest.mark.parametrize("bad", [-1.0, 100.5])
def test_percentile_rejects_out_of_range(bad: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0], bad)


def test_percentile_and_summary_of_nothing_raise() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        summarize([])


def test_summary() -> None:
    summary = summarize([0.1, 0.2, 0.3, 0.4])
    assert (summary.n, summary.p50, summary.p95, summary.p99) == (4, 0.2, 0.4, 0.4)
    assert (summary.min, summary.max) == (0.1, 0.4)
    assert summary.mean == pytest.approx(0.25)
    assert summary.as_ms()["p50"] == 200.0


def test_ratio_and_throughput() -> None:
    assert ratio(1.0, 4.0) == 0.25
    assert ratio(None, 1.0) is None
    assert ratio(1.0, None) is None
    assert ratio(1.0, 0.0) is None
    assert throughput_per_s(10, 2.0) == 5.0
    assert throughput_per_s(0, 2.0) == 0.0
    assert throughput_per_s(3, 0.0) == 0.0


# --- rows, ratios and targets ----------------------------------------------------------


def _row(scenario: str, program: str, p50_s: float, **kw: object) -> Row:
    latencies = [p50_s] * 10
    return parallel_row(scenario, program, latencies, [], kw.pop("elapsed_s", 1.0), 4, **kw)  # type: ignore[arg-type]


def test_sequential_row_throughput_is_back_to_back_rate() -> None:
    row = sequential_row(BASELINE_B, "python-hello", [0.2, 0.2, 0.2, 0.4], [])
    assert row.status == OK
    assert row.throughput_per_s == pytest.approx(4 / 1.0)
    failed = sequential_row(BASELINE_B, "python-hello", [], ["RunFailed: boom"])
    assert (
        failed.status == FAILED and failed.errors == 1 and failed.first_error == "RunFailed: boom"
    )


def test_ratios_use_b_for_latency_and_parallel_b_for_saturation_throughput() -> None:
    b = sequential_row(BASELINE_B, "p", [0.2] * 10, [])
    b_par = _row(BASELINE_B_PARALLEL, "p", 0.4, elapsed_s=2.0)  # 10 in 2 s = 5/s
    sat = _row(E2E_SATURATION, "p", 0.8, elapsed_s=1.0)  # 10/s
    half = _row(E2E_HALF_LOAD, "p", 0.1, offered_rate_per_s=2.5)
    rows = [b, b_par, sat, half]
    assert ratios(sat, rows)["p50"] == pytest.approx(4.0)
    assert ratios(sat, rows)["throughput"] == pytest.approx(2.0)
    assert ratios(half, rows)["p50"] == pytest.approx(0.5)
    assert ratios(half, rows)["throughput"] is None  # a fixed load is not a capacity
    assert ratios(b, rows)["throughput"] == pytest.approx(1.0)


# --- programs, policy and the baselines' container flags --------------------------------


def test_programs_cover_hello_and_cpu_for_each_language() -> None:
    assert {p.key for p in PROGRAMS} == {
        f"{lang}-{kind}" for lang in ("python", "c", "java") for kind in ("hello", "cpu")
    }
    assert [p.key for p in select_programs(("python",), ("hello",))] == ["python-hello"]
    with pytest.raises(ValueError):
        select_programs(("cobol",), ("hello",))


def test_policy_is_the_one_judge_asks_for() -> None:
    settings = Settings(worker_id="w")
    java = next(p for p in PROGRAMS if p.key == "java-hello")
    python = next(p for p in PROGRAMS if p.key == "python-hello")
    java_policy = judged_policy(java, get_language("java"), settings)
    python_policy = judged_policy(python, get_language("python"), settings)
    assert java_policy.memory_mb == settings.compile_limits.memory_mb  # the compiler's
    assert python_policy.memory_mb == settings.default_limits.memory_mb
    assert python_policy.processes == settings.default_limits.processes


def test_shell_script_writes_compiles_and_execs() -> None:
    assert shell_script(get_language("python"), 256) == (
        'printf %s "$SRC" > main.py && exec python3 main.py'
    )
    java = shell_script(get_language("java"), 512)
    assert java.startswith('printf %s "$SRC" > Main.java && javac ')
    assert java.endswith("&& exec java -Xmx384m -XX:+UseSerialGC -XX:-UsePerfData -cp . Main")
    assert " && gcc -O2 " in shell_script(get_language("c"), 256)


def _config(readable_logs: bool) -> dict[str, object]:
    program = next(p for p in PROGRAMS if p.key == "python-hello")
    policy = ContainerPolicy(memory_mb=256, processes=64, workspace_mb=128)
    return baseline_config(
        "img:tag", policy, {"l": "v"}, get_language("python"), program, readable_logs
    )


def test_baseline_config_differs_from_the_executor_only_in_command_env_and_logs() -> None:
    policy = ContainerPolicy(memory_mb=256, processes=64, workspace_mb=128)
    executor = container_config("img:tag", policy, {"l": "v"}, {})
    a, b = _config(readable_logs=False), _config(readable_logs=True)
    for key in executor:
        if key not in ("Cmd", "Env", "HostConfig"):
            assert a[key] == executor[key] == b[key]
    assert a["HostConfig"] == executor["HostConfig"]
    b_host = dict(b["HostConfig"])  # type: ignore[call-overload]
    assert b_host.pop("LogConfig") == {"Type": "json-file", "Config": {}}
    exec_host = dict(executor["HostConfig"])
    exec_host.pop("LogConfig")
    assert b_host == exec_host
    assert a["Cmd"][:2] == ["sh", "-c"]  # type: ignore[index]
    assert 'SRC=print("Hello, World!")\n' in a["Env"]  # type: ignore[operator]


def test_docker_run_argv_carries_every_hardening_flag() -> None:
    argv = docker_run_argv("docker", _config(readable_logs=False))
    joined = " ".join(argv)
    assert argv[:3] == ["docker", "run", "--rm"]
    for flag in (
        "--network none",
        "--cap-drop ALL",
        "--security-opt no-new-privileges",
        "--read-only",
        "--user 65534:65534",
        "--workdir /workspace",
        f"--memory {(256 + 16) * 1024 * 1024}",
        f"--memory-swap {(256 + 16) * 1024 * 1024}",
        "--pids-limit 68",
        "--cpus 1",
        "--ulimit core=0:0",
        "--ulimit nofile=256:256",
        "--init",
        "--ipc private",
        f"--shm-size {8 * 1024 * 1024}",
        "--log-driver none",
        "--restart no",
        "--stop-signal SIGKILL",
        "--label l=v",
        f"--oom-score-adj {OOM_SCORE_ADJ}",
    ):
        assert flag in joined, flag
    assert any(a.startswith("/workspace:rw,exec,nosuid,nodev,size=128m") for a in argv)
    assert any(a.startswith("/tmp:rw,exec,nosuid,nodev") for a in argv)
    assert argv[argv.index("--entrypoint") + 1] == ""
    image = argv.index("img:tag")
    assert argv[image + 1 : image + 3] == ["sh", "-c"]


def test_docker_run_argv_refuses_unknown_settings() -> None:
    config = _config(readable_logs=False)
    config["HostConfig"]["DeviceRequests"] = []  # type: ignore[index]
    with pytest.raises(ValueError, match="DeviceRequests"):
        docker_run_argv("docker", config)
    config = _config(readable_logs=False)
    config["Healthcheck"] = {}
    with pytest.raises(ValueError, match="Healthcheck"):
        docker_run_argv("docker", config)


# --- the bench worker's environment ------------------------------------------------------


def test_worker_env_reproduces_the_settings(tmp_path: Path) -> None:
    base = load_settings(
        {
            "STREAMWORKER_CONCURRENCY": "3",
            "STREAMWORKER_COMMIT_INTERVAL_S": "0.1",
            "STREAMWORKER_DEFAULT_MEMORY_MB": "300",
            "STREAMWORKER_WORKER_ID": "w",
        }
    )
    isolated = isolated_settings(base, tmp_path, 16066)
    env = worker_env(isolated)
    assert env["STREAMWORKER_CONCURRENCY"] == "3"
    assert env["STREAMWORKER_COMMIT_INTERVAL_S"] == "0.1"
    assert env["STREAMWORKER_DEFAULT_MEMORY_MB"] == "300"
    assert env["STREAMWORKER_HTTP_PORT"] == "16066"
    assert env["STREAMWORKER_TOPIC_SUBMISSIONS"].endswith(".submissions")
    assert env["STREAMWORKER_APP_ID"] != base.app_id
    assert env["STREAMWORKER_DATABASE_URL"].startswith("sqlite+aiosqlite:///")
    assert "PATH" in env
    assert load_settings(settings_env(isolated)) == isolated


# --- RSS of a process tree from a fake /proc ----------------------------------------------


def _proc(root: Path, pid: int, ppid: int, rss_kb: int, name: str = "x") -> None:
    d = root / str(pid)
    d.mkdir()
    (d / "stat").write_text(f"{pid} ({name}) S {ppid} 1 1 0")
    (d / "status").write_text(f"Name:\t{name}\nVmHWM:\t{rss_kb * 2} kB\nVmRSS:\t{rss_kb} kB\n")


def test_tree_rss_sums_descendants_only(tmp_path: Path) -> None:
    _proc(tmp_path, 10, 1, 1000, "worker")
    _proc(tmp_path, 11, 10, 200, "child (with) parens")
    _proc(tmp_path, 12, 11, 30)
    _proc(tmp_path, 20, 1, 5000, "unrelated")
    (tmp_path / "self").mkdir()
    assert sorted(tree_pids(10, tmp_path)) == [10, 11, 12]
    assert tree_rss_kb(10, tmp_path) == 1230
    assert status_kb(10, "VmHWM", tmp_path) == 2000
    assert status_kb(99, "VmRSS", tmp_path) is None


# --- command-line arguments ---------------------------------------------------------------


def _parse(*argv: str) -> BenchOptions:
    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    return options_from_args(parser.parse_args(argv), ["bench", *argv])


def test_cli_defaults_are_the_full_benchmark() -> None:
    options = _parse()
    assert options == BenchOptions(command="streamworker bench")


def test_cli_overrides_and_quick() -> None:
    options = _parse("--quick", "--languages", "python,c", "--no-e2e", "--json", "out.json")
    assert options.iterations == BenchOptions.quick().iterations
    assert options.languages == ("python", "c")
    assert options.e2e is False
    assert options.json_path == Path("out.json")
    assert (
        options.command
        == "streamworker bench --quick --languages python,c --no-e2e --json out.json"
    )
    assert _parse("--iterations", "5", "--offered-rate", "2").offered_rate_per_s == 2.0
    with pytest.raises(ValueError):
        _parse("--iterations", "0")


def test_exit_code_fails_only_on_broken_scenarios() -> None:
    assert exit_code({"results": [{"status": "ok"}, {"status": "not available"}]}) == 0
    assert exit_code({"results": [{"status": "ok"}, {"status": "failed"}]}) == 1


def test_cpu_of_a_process_and_dockerd_lookup(tmp_path: Path) -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    for pid, ppid, comm, utime, stime in (
        (5, 1, "dockerd", 3 * ticks, ticks),
        (6, 5, "x y)", ticks, 0),
    ):
        d = tmp_path / str(pid)
        d.mkdir()
        rest = " ".join(["0"] * 9)
        (d / "stat").write_text(f"{pid} ({comm}) S {ppid} {rest} {utime} {stime} 0 0")
        (d / "comm").write_text(comm + "\n")
    assert process_cpu_s(5, tmp_path) == 4.0
    assert tree_cpu_s(5, tmp_path) == 5.0
    assert find_pid("dockerd", tmp_path) == 5
    assert find_pid("nothing", tmp_path) is None
    meter = CpuMeter(6, with_children=False, proc=tmp_path)
    meter.start()
    assert meter.per_run_ms(2) == {"driver_cpu_ms_per_run": 0.0, "dockerd_cpu_ms_per_run": 0.0}
    assert meter.per_run_ms(0)["driver_cpu_ms_per_run"] is None
