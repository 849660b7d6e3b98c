"""The `streamworker` command: worker, submit, images, languages, db, history."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaConnectionError
from sqlalchemy.exc import InterfaceError, OperationalError

from streamworker.audit.refusal import sqlstate
from streamworker.errors import (
    DockerUnavailable,
    ImageMissing,
    KafkaAuthFailed,
    KafkaRefused,
    StreamworkerError,
)
from streamworker.kafka_security import AUTH_ERRORS
from streamworker.settings import Settings
from streamworker.settings_file import load_layered_settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
OWN_INFO_COMMANDS = frozenset({"bench"})
"""Commands whose own output includes `streamworker` INFO logs (bench's round progress);
every other command prints what it has to say, so by default only warnings are logged."""
DATABASE_COMMANDS = frozenset({"history", "replay", "db"})


def _print_result(result: dict[str, Any]) -> None:
    print(
        f"{result['submission_id']}: {result['status']} "
        f"(judge0 {result['judge0_status_id']}, attempt {result['attempt']})"
    )
    if result.get("message"):
        print(f"  message: {result['message']}")
    if result.get("compile"):
        comp = result["compile"]
        print(f"  compile: {comp['status']} in {comp['wall_time_s']}s")
        if comp["status"] != "accepted" and comp["stderr"]:
            print("  " + comp["stderr"].strip().replace("\n", "\n  "))
    for run in result.get("runs", []):
        case = f"[{run['test_case_id']}] " if run["test_case_id"] else ""
        print(
            f"  run {case}{run['status']}: exit={run['exit_code']} signal={run['signal']} "
            f"cpu={run['cpu_time_s']}s wall={run['wall_time_s']}s mem={run['memory_kb']}KiB"
        )
        if run["stdout"]:
            print("  stdout: " + run["stdout"].rstrip("\n").replace("\n", "\n          "))
        if run["stderr"]:
            print("  stderr: " + run["stderr"].rstrip("\n").replace("\n", "\n          "))


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from streamworker.worker.lifecycle import run_worker

    run_worker(settings, loglevel=args.loglevel)
    return 0


def cmd_gateway(settings: Settings, args: argparse.Namespace) -> int:
    from streamworker.gateway.serve import run_gateway
    from streamworker.settings_file import process_environment

    run_gateway(settings, process_environment(args.config)[0], log_level=args.loglevel)
    return 0


def cmd_submit(settings: Settings, args: argparse.Namespace) -> int:
    from streamworker.client import submission_from_file, submit_and_wait

    stdin = Path(args.stdin).read_text() if args.stdin else None
    event = submission_from_file(Path(args.file), args.language, stdin)
    result = asyncio.run(submit_and_wait(settings, event, timeout_s=args.timeout))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_result(result)
    return 0 if result["status"] == "accepted" else 1


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def cmd_images_build(settings: Settings, args: argparse.Namespace) -> int:
    from streamworker.images.builder import BUILD_CONCURRENCY, build_images

    jobs = args.jobs or BUILD_CONCURRENCY
    outcomes = asyncio.run(
        build_images(args.languages or None, settings=settings, force=args.force, jobs=jobs)
    )
    failed = [o for o in outcomes if not o.ok]
    return 1 if failed else 0


def cmd_languages(settings: Settings, args: argparse.Namespace) -> int:
    from streamworker.images.builder import list_languages

    rows = asyncio.run(list_languages(settings))
    if args.json:
        print(json.dumps([row.as_dict() for row in rows], indent=2))
        return 0
    print(f"{'id':<12} {'present':<8} {'version':<40} image")
    for row in rows:
        present = "yes" if row.present else "no"
        print(f"{row.id:<12} {present:<8} {(row.version or '-')[:40]:<40} {row.image}")
    return 0


def cmd_doctor(settings: Settings, args: argparse.Namespace) -> int:
    from streamworker.doctor import render_json, render_text, run_doctor

    checks = asyncio.run(run_doctor(settings))
    print(render_json(checks) if args.json else render_text(checks))
    return 0 if all(c.ok for c in checks) else 1


def cmd_db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    from streamworker.audit.migrate import upgrade

    url = args.url or settings.resolved_database_url()
    asyncio.run(upgrade(url))
    print(f"database migrated: {url.split('@')[-1]}")
    return 0


def cmd_history(settings: Settings, args: argparse.Namespace) -> int:
    from streamworker.audit.store import AuditStore

    async def rows() -> list[dict[str, Any]]:
        store = await AuditStore.open(args.url or settings.resolved_database_url())
        try:
            return await store.list_executions(limit=args.limit)
        finally:
            await store.close()

    found = asyncio.run(rows())
    if args.json:
        print(json.dumps(found, indent=2, default=str))
        return 0
    cols = (
        "submission_id",
        "language",
        "status",
        "judge0_status_id",
        "cpu_time_s",
        "wall_time_s",
        "memory_kb",
        "attempts",
        "finished_at",
    )
    print(" | ".join(cols))
    for row in found:
        print(" | ".join(str(row.get(c)) for c in cols))
    return 0


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from streamworker.audit.store import AuditStore
    from streamworker.replay import replay_event_log, replay_results_topic, requeue_quarantined

    async def run() -> int:
        store = await AuditStore.open(args.url or settings.resolved_database_url())
        try:
            if args.quarantined:
                requeued = await requeue_quarantined(store)
                print(f"requeued {requeued.landed} quarantined record(s) into the event log")
                for row_id, reason in requeued.refused.items():
                    print(f"audit_quarantine.id={row_id} refused again: {reason}")
                return 1 if requeued.refused else 0
            if args.from_results_topic:
                added = await replay_results_topic(settings, store)
                print(f"appended {added} result event(s) from {settings.topics.results}")
            rebuilt = await replay_event_log(store)
            print(f"rebuilt projections of {rebuilt} submission(s) from the event log")
            return 0
        finally:
            await store.close()

    return asyncio.run(run())


def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    from streamworker.bench.cli_args import exit_code, options_from_args
    from streamworker.bench.runner import run_bench

    options = options_from_args(args, sys.argv[1:])
    return exit_code(asyncio.run(run_bench(settings, options)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamworker", description=__doc__)
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log library INFO lines and tracebacks (-vv: DEBUG)",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="settings file (KEY=VALUE lines; default: .state/stack.env when present, "
        "written by `make up`; `none`: no file). Flags > environment > file > defaults",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser("worker", help="run the Faust worker (HTTP on 127.0.0.1:6066)")
    worker.add_argument("--loglevel", default="info")
    worker.set_defaults(func=cmd_worker)

    gateway = sub.add_parser(
        "gateway",
        help="run the Judge0/Piston-compatible HTTP gateway (127.0.0.1:2358, docs/gateway.md)",
    )
    gateway.add_argument("--loglevel", default="warning")
    gateway.set_defaults(func=cmd_gateway)

    submit = sub.add_parser("submit", help="send one submission and print its result")
    submit.add_argument("file", help="a submission event (.json) or a source file")
    submit.add_argument("--language", "-l")
    submit.add_argument("--stdin", help="file whose content is the program's stdin")
    submit.add_argument("--timeout", type=float, default=60.0)
    submit.add_argument("--json", action="store_true", help="print the result event as JSON")
    submit.set_defaults(func=cmd_submit)

    images = sub.add_parser("images", help="runtime images")
    images_sub = images.add_subparsers(dest="images_command", required=True)
    build = images_sub.add_parser("build", help="build missing or changed runtime images")
    build.add_argument("languages", nargs="*")
    build.add_argument("--force", action="store_true")
    build.add_argument(
        "--jobs", type=_positive_int, default=None, help="images bootstrapped at once (default 2)"
    )
    build.set_defaults(func=cmd_images_build)

    languages = sub.add_parser("languages", help="list languages, versions and image status")
    languages.add_argument("--json", action="store_true")
    languages.set_defaults(func=cmd_languages)

    doctor = sub.add_parser(
        "doctor", help="check Docker, the runtime images, the sandbox, Kafka and the database"
    )
    doctor.add_argument("--json", action="store_true", help="print the checks as a JSON list")
    doctor.set_defaults(func=cmd_doctor)

    db = sub.add_parser("db", help="the audit database")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply migrations")
    upgrade.add_argument("--url")
    upgrade.set_defaults(func=cmd_db_upgrade)

    history = sub.add_parser("history", help="recent executions from the audit log")
    history.add_argument("--limit", type=int, default=20)
    history.add_argument("--url")
    history.add_argument("--json", action="store_true")
    history.set_defaults(func=cmd_history)
    from streamworker.bench.cli_args import add_bench_arguments

    bench = sub.add_parser("bench", help="benchmark against plain Docker (docs/benchmarks.md)")
    add_bench_arguments(bench)
    bench.set_defaults(func=cmd_bench)

    replay = sub.add_parser("replay", help="rebuild projections from the event log")
    replay.add_argument("--url")
    replay.add_argument(
        "--from-results-topic",
        action="store_true",
        help="first append every committed result from the results topic (lost database)",
    )
    replay.add_argument(
        "--quarantined",
        action="store_true",
        help="instead, append the records in audit_quarantine again (docs/audit.md)",
    )
    replay.set_defaults(func=cmd_replay)
    return parser


def configure_logging(command: str, verbose: int) -> None:
    """Warnings only by default (`streamworker` INFO too where a command's output is
    made of it); `-v` brings back every library's INFO, `-vv` DEBUG. The worker keeps
    its INFO log. Alembic leaves this alone (`migrate.alembic_config`)."""
    if command == "worker" or verbose == 1:
        level = logging.INFO
    elif verbose >= 2:
        level = logging.DEBUG
    else:
        level = logging.WARNING
    logging.basicConfig(level=level, format=LOG_FORMAT)
    if level == logging.WARNING:
        if command in OWN_INFO_COMMANDS:
            logging.getLogger("streamworker").setLevel(logging.INFO)
        # aiokafka logs each failed connection at ERROR before raising the error that
        # `explain` turns into the one line; `-v` shows them again.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def _why(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    source = orig if isinstance(orig, BaseException) else exc
    return " ".join(str(source).split()) or type(source).__name__


def _not_migrated(exc: BaseException, command: str) -> bool:
    if sqlstate(exc) == "42P01":  # PostgreSQL: undefined_table
        return True
    return isinstance(exc, OperationalError) and "no such table" in str(exc.orig)


def _database_down(exc: BaseException, command: str) -> bool:
    if isinstance(exc, OperationalError | InterfaceError):
        return True  # PostgreSQL connection lost, SQLite file unopenable
    # asyncpg raises the socket's own error when it cannot connect at all
    return command in DATABASE_COMMANDS and isinstance(exc, ConnectionError | TimeoutError)


EXPECTED: tuple[tuple[Callable[[BaseException, str], bool], str], ...] = (
    (_not_migrated, "the audit database is not migrated ({why}): run `streamworker db upgrade`"),
    (
        # Kafka's TLS failures arrive as KafkaTlsFailed (kafka_security.start); a bare
        # one comes from asyncpg verifying the database's certificate.
        lambda exc, _: isinstance(exc, ssl.SSLError),
        "TLS to the audit database failed ({why}): check sslmode and sslrootcert in "
        "STREAMWORKER_DATABASE_URL (docs/configuration-security.md)",
    ),
    (
        _database_down,
        "cannot reach the audit database ({why}): check STREAMWORKER_DATABASE_URL, "
        "or run `make up`",
    ),
    (lambda exc, _: isinstance(exc, KafkaRefused), "Kafka refused us ({why}): {fix}"),
    (
        lambda exc, _: isinstance(exc, AUTH_ERRORS),
        "Kafka refused the login ({why}): " + KafkaAuthFailed.fix,
    ),
    (
        lambda exc, _: isinstance(exc, KafkaConnectionError),
        "cannot reach Kafka ({why}): run `make up`, or set STREAMWORKER_KAFKA_BOOTSTRAP",
    ),
    (
        lambda exc, _: isinstance(exc, DockerUnavailable),
        "cannot reach Docker ({why}): run `make up`, or set DOCKER_HOST",
    ),
    (
        lambda exc, _: isinstance(exc, ImageMissing),
        "{why} (`streamworker images build <lang>` builds one)",
    ),
    (lambda exc, _: isinstance(exc, StreamworkerError), "{code}: {why}"),
    (
        lambda exc, _: isinstance(exc, TimeoutError | OSError | ValueError),
        "{kind}: {why}",
    ),
)
"""Expected conditions, first match wins: what is wrong and the command that fixes it.
Anything not here is a bug and keeps its traceback."""


def explain(exc: BaseException, command: str) -> str | None:
    """The one-line message for an expected condition; None for a bug."""
    for matches, template in EXPECTED:
        if matches(exc, command):
            code = exc.code if isinstance(exc, StreamworkerError) else ""
            fix = exc.fix if isinstance(exc, KafkaRefused) else ""
            return template.format(why=_why(exc), code=code, kind=type(exc).__name__, fix=fix)
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.command, args.verbose)
    try:
        settings, source = load_layered_settings(args.config)
        logging.getLogger(__name__).info("settings file: %s", source or "none")
        code: int = args.func(settings, args)
    except Exception as exc:
        message = explain(exc, args.command)
        if message is None or args.verbose:
            raise
        print(f"streamworker: {message}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
