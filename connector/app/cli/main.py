"""Operations from a shell: `python -m connector <command>`, with the app's own settings.

    status <commit>        per environment, cluster and object (a unique prefix will do)
    gates [--env E] [--open]   waiting and completed gates
    dlq peek [--max N]     dead-lettered messages, without moving them
    dlq replay [--max N] [--preview]   dead letters back to the queue
    doctor                 check settings, storage, Service Bus, Azure DevOps and Spektate
    send-sample [--url U] [--phase P] [--gate]  a signed sample rollout to a running app
    serve                  run function_app.py locally, no Core Tools (connector.app.local.serve)
    cleanup [--preview]    delete state older than STATE_RETENTION_DAYS (connector.app.cli.cleanup)
    clusters --env E [--forget C]   an environment's clusters, their last reports

Settings come from the environment, as in the app; `--settings local.settings.json` loads its
`Values` on top (the file wins). Tables by default, `--json` for machines.
Exit codes: 0 ok, 1 not found, 2 usage or configuration error (the message names the setting),
3 a service (storage, Service Bus) failed, no credential worked (the message says `az login`),
a replay stopped early, a sample event was refused, a `doctor` check failed, or an unexpected
error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError, ClientAuthenticationError

from connector import console_logs
from connector.app.cli import cleanup, clusters, sample
from connector.app.cli import wait as cli_wait
from connector.app.cli.arguments import add_preview, positive
from connector.app.local import serve as local_serve
from connector.app.local.values import read_values
from connector.app.root.bootstrap import Container
from connector.app.views import commits, deployments_model
from connector.core.gates import OPEN
from connector.gates.store import GateStore
from connector.settings import Settings, SettingsError

OK, NOT_FOUND, USAGE, FAILED = 0, 1, 2, 3
SUMMARY_WIDTH = 60
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
LOGIN_HINT = (
    "run `az login` (an account with Storage Table Data Reader, and Service Bus data roles for "
    "dlq), or use --settings with connection strings"
)
EPILOG = """settings:
  As the app reads them: environment variables (app setting names, e.g. AzureWebJobsStorage,
  STATE_STORAGE__accountUrl, ServiceBusConnection__fullyQualifiedNamespace); --settings FILE
  loads the Values of a local.settings.json on top (the file wins). Identity-based settings use
  DefaultAzureCredential: `az login` on a workstation.

exit codes:
  0 ok   1 not found   2 usage or configuration error (names the setting)
  3 a service failed (storage, Service Bus, HTTP), no credential worked, or an unexpected error
"""

Command = Callable[[Container, argparse.Namespace], int]


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    make_container: Callable[[Settings], Container] = Container,
) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _AS_JSON.set("--json" in argv)  # errors as JSON too, even before the arguments parse
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed help (0) or a usage error (2)
        code = exc.code if isinstance(exc.code, int) else USAGE
        return _fail(code, "invalid arguments (see the usage above)") if code else code
    if args.command == "doctor":  # settings that do not load are a failing check, not exit 2
        return doctor_command(args, environ, make_container)
    if args.command == "serve":  # runs the app's own container, built from the environment
        return local_serve.command(args)
    return _run(args, environ, make_container)


def _run(
    args: argparse.Namespace,
    environ: Mapping[str, str] | None,
    make_container: Callable[[Settings], Container],
) -> int:
    try:
        args.environ = dict(os.environ if environ is None else environ)
        console_logs.install_for_cli(args.environ)
        container = make_container(load_settings(args.settings, args.environ))
        command: Command = args.run
        with cli_wait.announced(args.command, container.settings):
            return command(container, args)
    except SettingsError as exc:
        return _fail(USAGE, f"configuration: {exc}")
    except ClientAuthenticationError:
        # DefaultAzureCredential's message lists every credential it tried (26 lines): too much.
        return _fail(FAILED, "no Azure credential worked for storage or Service Bus", LOGIN_HINT)
    except AzureError as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        return _fail(FAILED, f"service unavailable: {type(exc).__name__}: {first}")
    except Exception as exc:  # a bug: show it, but keep exit code 1 meaning "not found"
        if _AS_JSON.get():
            return _fail(FAILED, f"unexpected error: {type(exc).__name__}: {exc}")
        traceback.print_exc()
        return FAILED


_AS_JSON: ContextVar[bool] = ContextVar("as_json", default=False)


def _fail(code: int, message: str, hint: str = "") -> int:
    """The error on stderr; with --json also as JSON on stdout (a machine reads only that)."""
    print(f"error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
    if _AS_JSON.get():
        print(json.dumps({"error": message, "hint": hint, "exit": code}))
    return code


# --- settings ------------------------------------------------------------------------------------


def load_settings(path: str | None, environ: Mapping[str, str] | None = None) -> Settings:
    values = dict(os.environ if environ is None else environ)
    if path:
        values.update(read_values(path))
        values.update(local_serve.host_settings(path))  # a running `serve` of these settings
    return Settings.from_env(values)


# --- arguments -----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    # --json and --settings are accepted before or after the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    common.add_argument("--settings", metavar="FILE", default=argparse.SUPPRESS)
    parser = argparse.ArgumentParser(
        prog="python -m connector",
        description="Operate the Flux to Azure DevOps connector.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--settings", metavar="FILE", help="load Values from local.settings.json")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    status = commands.add_parser(
        "status",
        parents=[common],
        help="a commit's deployment",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument("commit", help="commit id, or a unique prefix of 4+ hex characters")
    status.set_defaults(run=status_command)
    gates = commands.add_parser("gates", parents=[common], help="waiting and completed gates")
    gates.add_argument("--env", help="only this environment")
    gates.add_argument("--open", action="store_true", help="only waiting gates")
    gates.set_defaults(run=gates_command)
    _dlq_parser(commands, common)
    commands.add_parser("doctor", parents=[common], help="check a deployment")  # see main()
    sample.add_parser(commands, common)
    cleanup.add_parser(commands, common)
    clusters.add_parser(commands, common)
    local_serve.add_parser(commands, common)
    return parser


def _dlq_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    dlq = commands.add_parser("dlq", help="the Service Bus dead-letter queue")
    actions = dlq.add_subparsers(dest="action", required=True, metavar="action")
    peek = actions.add_parser("peek", parents=[common], help="show dead letters, move nothing")
    peek.add_argument("--max", type=positive, default=20, help="at most N messages (20)")
    peek.set_defaults(run=peek_command)
    replay = actions.add_parser("replay", parents=[common], help="send dead letters back")
    replay.add_argument("--max", type=positive, default=100, help="at most N messages (100)")
    add_preview(replay, "count only, move nothing")
    replay.set_defaults(run=replay_command)


# --- status --------------------------------------------------------------------------------------


def status_command(container: Container, args: argparse.Namespace) -> int:
    try:
        commits.parse(args.commit)
    except ValueError as exc:
        return _fail(USAGE, f"commit: {exc}")
    store = container.store
    try:
        commit = commits.resolve(store, args.commit)
    except commits.AmbiguousCommitError as exc:
        return _fail(USAGE, str(exc))
    except commits.CommitLookupError as exc:
        return _fail(NOT_FOUND, str(exc))
    try:
        view = deployments_model.deployment_view(store, container.settings.environments, commit)
    except deployments_model.UnknownCommitError:
        return _fail(NOT_FOUND, f"unknown commit {commit}: no state, status or gate recorded")
    print(deployments_model.render_json(view) if args.json else format_status(view))
    return OK


def format_status(view: Mapping[str, Any]) -> str:
    lines = [f"commit {view['commit']}", ""]
    for env, environment in view["environments"].items():
        lines.append(f"environment {env}: {environment['phase']}")
        for cluster, detail in environment["clusters"].items():
            lines.append(f"  cluster {cluster}: {detail['phase']}")
            lines.extend("    " + line for line in _objects_table(detail["objects"]))
    if not view["environments"]:
        lines.append("no environment has reported this commit")
    lines += ["", "commit statuses"]
    lines += ["  " + line for line in _statuses_table(view["statuses"])]
    lines += ["", "gates"]
    lines += ["  " + line for line in gates_table(view["gates"])]
    return "\n".join(lines)


def _objects_table(objects: Mapping[str, Any]) -> list[str]:
    rows = [
        [name, o["phase"], o["reason"], short_time(o["time"]), _clip(o["summary"])]
        for name, o in objects.items()
    ]
    return table(("OBJECT", "PHASE", "REASON", "TIME", "SUMMARY"), rows)


def _statuses_table(statuses: Mapping[str, Any]) -> list[str]:
    rows = [
        [name, s["state"], "yes" if s["confirmed"] else "no", _clip(s["description"])]
        for name, s in statuses.items()
    ]
    return table(("CONTEXT", "STATE", "CONFIRMED", "DESCRIPTION"), rows)


# --- gates ---------------------------------------------------------------------------------------


def gates_command(container: Container, args: argparse.Namespace) -> int:
    store = GateStore(container.store)
    found = store.open_gates(args.env) if args.open else store.all_gates()
    chosen = [g for g in found if args.env is None or g.environment == args.env]
    chosen.sort(key=lambda g: (g.created_at, g.id), reverse=True)
    waiting = [deployments_model.gate_summary(g) for g in chosen if g.state in OPEN]
    completed = [deployments_model.gate_summary(g) for g in chosen if g.state not in OPEN]
    if args.json:
        print(json.dumps({"waiting": waiting, "completed": completed}, indent=2))
        return OK
    lines = [f"waiting ({len(waiting)})"] + ["  " + line for line in gates_table(waiting)]
    if not args.open:
        lines += ["", f"completed ({len(completed)})"]
        lines += ["  " + line for line in gates_table(completed)]
    print("\n".join(lines))
    return OK


def gates_table(gates: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = [
        [
            g["environment"],
            g["state"],
            g["result"],
            (g["commit"] or "")[:12],
            str(g["pull_request_id"] or ""),
            short_time(g["created_at"]),
            short_time(g["deadline"]),
            _clip(g["reason"]),
        ]
        for g in gates
    ]
    headers = ("ENVIRONMENT", "STATE", "RESULT", "COMMIT", "PR", "CREATED", "DEADLINE", "REASON")
    return table(headers, rows)


# --- dead letters --------------------------------------------------------------------------------


def peek_command(container: Container, args: argparse.Namespace) -> int:
    letters = container.dead_letters.peek(args.max)
    if args.json:
        print(json.dumps({"count": len(letters), "messages": [d.as_dict() for d in letters]}))
        return OK
    queue = container.settings.servicebus_queue
    rows = [
        [
            d.message_id,
            d.session_id,
            d.reason,
            _clip(d.description, 40),
            short_time(d.enqueued_time),
            str(d.delivery_count),
            _clip(d.body_preview, 40),
        ]
        for d in letters
    ]
    headers = ("MESSAGE ID", "SESSION", "REASON", "DESCRIPTION", "ENQUEUED", "DELIVERIES", "BODY")
    lines = [f"{len(letters)} dead-lettered message(s) in {queue}/$deadletterqueue"]
    print("\n".join([*lines, *table(headers, rows)]))
    return OK


def replay_command(container: Container, args: argparse.Namespace) -> int:
    result = container.dead_letters.replay(args.max, preview=args.preview)
    queue = container.settings.servicebus_queue
    if args.json:  # `dry_run`: the former name of `preview`, kept for scripts that read it
        print(json.dumps({"queue": queue, **asdict(result), "dry_run": result.preview}))
    elif result.preview:
        print(f"preview: {result.count} dead-lettered message(s) would go back to {queue}")
    else:
        print(
            f"{result.replayed} of {result.count} dead-lettered message(s) replayed to {queue}; "
            f"{result.skipped} left in the dead-letter queue"
        )
    if result.error:
        return _fail(FAILED, f"replay stopped: {result.error}")
    return OK


# --- doctor --------------------------------------------------------------------------------------


def doctor_command(
    args: argparse.Namespace,
    environ: Mapping[str, str] | None,
    make_container: Callable[[Settings], Container],
) -> int:
    from connector.app.doctor import report as doctor

    console_logs.install_for_cli(os.environ if environ is None else environ)

    def build() -> Container:
        return make_container(load_settings(args.settings, environ))

    return doctor.command(build, as_json=args.json)


# --- tables --------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns; cells are single-line and free of control characters."""
    if not rows:
        return ["(none)"]
    cells = [list(headers), *([_cell(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]


def _cell(value: object) -> str:
    return _CONTROL.sub(" ", str(value))


def _clip(text: str, width: int = SUMMARY_WIDTH) -> str:
    text = _cell(text)
    return text if len(text) <= width else text[: width - 3] + "..."


def short_time(value: str | datetime | None) -> str:
    """`2026-05-14 09:12:50Z` from an ISO time (UTC in the store), "" for none."""
    if value is None or value == "":
        return ""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M:%SZ")
