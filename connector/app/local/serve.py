"""`python -m connector serve`: the app on this machine with nothing but Python and Node.

Settings as Core Tools sets them: the `Values` of local.settings.json become environment
variables, except those already set in the environment (Core Tools: "Skipping '…' from local
settings as it's already defined in current environment variables"). On top, for the local run:
trial mode unless AZDO_DRY_RUN says otherwise, the file-backed queue (LOCAL_QUEUE_PATH, so the
app's sender writes there: connector/queue/local.py), and Azurite's table service started from
node_modules with its data on disk when the storage is `UseDevelopmentStorage=true`. Then
`function_app.py` is imported, exactly as the Functions host loads it, and served by
connector/app/local/host.py. What it writes lives in the data directory (`.local-run/`):
the queue, Azurite's tables, the keys, and `host.json` (URL and keys, for `send-sample`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector.app.local import azurite as local_azurite

if TYPE_CHECKING:
    from connector.app.local.host import Keys

ROOT = Path(__file__).resolve().parents[3]  # where function_app.py and host.json live
DATA_DIR = ".local-run"
HOST_FILE = "host.json"
DEFAULT_PORT = 7071  # Core Tools' default; local.settings.sample.json: Host.LocalHttpPort
DEV_STORAGE = "usedevelopmentstorage=true"
# What `serve` sets on top of the settings file (told to the CLI through host.json; the storage
# string carries Azurite's published development key only).
_OWN_SETTINGS = ("LOCAL_QUEUE_PATH", "AzureWebJobsStorage", "AZDO_DRY_RUN")


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "serve",
        parents=[common],
        help="run function_app.py locally: HTTP, queue and timers (no Core Tools, no Docker)",
        description="Run every function of function_app.py on this machine: the HTTP routes on "
        "127.0.0.1, the queue function fed from a file-backed queue (sessions, duplicate "
        "detection, dead letters), the timers, Azurite for tables. Trial mode by default. "
        "Ctrl-C stops it and every child; nothing accepted is lost.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (127.0.0.1)")
    parser.add_argument("--port", type=int, help="HTTP port (Host.LocalHttpPort, else 7071)")
    parser.add_argument("--data", help=f"data directory ({DATA_DIR}/ beside the settings)")
    parser.add_argument(
        "--azurite-port", type=int, default=int(os.environ.get("AZURITE_TABLE_PORT", "10002"))
    )
    parser.add_argument("--workers", type=int, default=2, help="queue workers (2)")
    parser.add_argument(
        "--hold-queue", action="store_true", help="accept and queue, but process nothing"
    )


def data_dir(settings_path: str | None, explicit: str | None = None) -> Path:
    if explicit:
        return Path(explicit)
    base = Path(settings_path).resolve().parent if settings_path else Path.cwd()
    return base / DATA_DIR


def running_host(settings_path: str | None) -> dict[str, Any] | None:
    """The URL and keys of a host started with these settings and still running, or None."""
    try:
        info: dict[str, Any] = json.loads((data_dir(settings_path) / HOST_FILE).read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info


def host_settings(settings_path: str | None) -> dict[str, str]:
    """The settings a running host started with these settings changed (its queue, its
    Azurite, trial mode), so that the CLI (`doctor`, `status`, `dlq`) sees what it serves."""
    running = running_host(settings_path) if settings_path else None
    found = (running or {}).get("settings") or {}
    return {str(k): str(v) for k, v in found.items()}


def file_values(path: str | None) -> tuple[dict[str, str], int | None]:
    """The settings file's Values and its Host.LocalHttpPort."""
    from connector.app.local.values import read_values

    if not path:
        return {}, None
    values = read_values(path)
    host = json.loads(Path(path).read_text(encoding="utf-8")).get("Host") or {}
    port = host.get("LocalHttpPort")
    return values, int(port) if port else None


def apply(values: Mapping[str, str], environ: MutableMapping[str, str]) -> list[str]:
    """Core Tools' rule: the environment wins. Returns the names skipped."""
    skipped = [k for k in values if environ.get(k)]
    environ.update({k: v for k, v in values.items() if not environ.get(k)})
    return skipped


def load_keys(directory: Path) -> Keys:
    """The development keys, made once and kept (a restart must not change them)."""
    from connector.app.local.host import Keys

    path = directory / "keys.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Keys(function=data["function"], master=data["master"])
    except (OSError, ValueError, KeyError):
        keys = Keys(function=secrets.token_urlsafe(32), master=secrets.token_urlsafe(32))
        path.write_text(json.dumps({"function": keys.function, "master": keys.master}))
        path.chmod(0o600)
        return keys


def say(text: str) -> None:
    print(f"serve: {text}", file=sys.stderr, flush=True)


def command(args: argparse.Namespace) -> int:
    from connector.settings import SettingsError

    settings_path = getattr(args, "settings", None)
    if settings_path is None and Path("local.settings.json").exists():
        settings_path = "local.settings.json"
    try:
        values, file_port = file_values(settings_path)
    except SettingsError as exc:
        say(f"error: {exc}")
        return 2
    port = args.port or file_port or DEFAULT_PORT
    directory = data_dir(settings_path, args.data)
    directory.mkdir(parents=True, exist_ok=True)
    if not _port_free(args.host, port):
        say(f"error: port {port} is in use (another `make run`?): stop it, or use --port")
        return 3
    for name in apply(values, os.environ):
        say(f"{name}: the environment's value wins over {settings_path}")
    if not os.environ.get("LOCAL_QUEUE_PATH"):
        os.environ["LOCAL_QUEUE_PATH"] = str(directory / "queue.sqlite")
    if not os.environ.get("AZDO_DRY_RUN"):
        os.environ["AZDO_DRY_RUN"] = "true"
    azurite = None
    storage = "AzureWebJobsStorage"  # the app setting's name, not a shell variable
    if os.environ.get(storage, DEV_STORAGE).lower() == DEV_STORAGE:
        try:
            azurite = local_azurite.start(ROOT, directory / "azurite", args.azurite_port, say)
        except local_azurite.AzuriteError as exc:
            say(f"error: {exc}")
            return 3
        os.environ[storage] = local_azurite.connection_string(args.azurite_port)
    try:
        return _serve(args, port, directory)
    finally:
        if azurite is not None:
            local_azurite.stop(azurite, say)


def _serve(args: argparse.Namespace, port: int, directory: Path) -> int:
    from connector.app.local.functions import discover
    from connector.app.local.host import Background, HttpDispatcher, make_server
    from connector.queue.local import LocalQueue

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    sys.path.insert(0, str(ROOT))
    app = importlib.import_module("function_app").app  # the app itself, as the host loads it
    functions = discover(app, ROOT / "host.json")
    queue = LocalQueue(os.environ["LOCAL_QUEUE_PATH"])
    if released := queue.release_locks():
        say(f"{released} message(s) were in progress when the last run stopped: redelivered")
    keys = load_keys(directory)
    server = make_server(args.host, port, HttpDispatcher(functions, keys))
    url = f"http://{args.host}:{port}"
    background = Background(functions, queue, workers=args.workers, hold=args.hold_queue)
    host_file = directory / HOST_FILE
    own = {k: os.environ[k] for k in _OWN_SETTINGS if os.environ.get(k)}
    info = {"url": url, "function_key": keys.function, "master_key": keys.master, "settings": own}
    host_file.write_text(json.dumps({**info, "pid": os.getpid()}))
    host_file.chmod(0o600)
    _banner(functions, url, keys, queue.pending(), args.hold_queue)
    # Both, explicitly: a shell starting us in the background sets SIGINT to "ignore".
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        say("stopping: finishing the message in progress, then Azurite")
    finally:
        server.server_close()
        background.stop()
        queue.close()
        host_file.unlink(missing_ok=True)
    return 0


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds it
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _banner(functions: Any, url: str, keys: Keys, pending: int, hold: bool) -> None:
    lines = ["Functions:"]
    for f in functions.http:
        methods = ",".join(sorted(f.methods)) or "all methods"
        lines.append(f"  {f.name}: [{methods}] {url}/{functions.route_prefix}/{f.route}")
    lines += [f"  {q.name}: queue {q.queue_name} (file-backed)" for q in functions.queues]
    lines += [f"  {t.name}: timer {t.schedule} (UTC)" for t in functions.timers]
    trial = os.environ.get("AZDO_DRY_RUN", "").lower() == "true"
    lines += [
        f"function key: {keys.function}   (x-functions-key or ?code=)",
        f"master key:   {keys.master}   (/api/doctor)",
        "trial mode: Azure DevOps writes are logged (azure_devops.trial), not sent"
        if trial
        else "LIVE mode (AZDO_DRY_RUN=false): writes go to Azure DevOps",
        f"queue: {pending} message(s) waiting" + (" (held: --hold-queue)" if hold else ""),
        "smoke test: .venv/bin/python -m connector send-sample --settings local.settings.json",
        "Ctrl-C stops the host and Azurite.",
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)
