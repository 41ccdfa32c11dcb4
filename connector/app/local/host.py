"""The embedded local host: runs the functions `function_app.py` defines, with nothing but
Python (`python -m connector serve`, connector/app/local/serve.py starts it).

- HTTP functions on one loopback port, at the routes, methods and auth levels the app's binding
  metadata declares (connector/app/local/functions.py); each request reaches the function as a
  real `azure.functions.HttpRequest`. Keys as the Functions host takes them: `?code=` or the
  `x-functions-key` header; `function` routes take the function key or the master key, `admin`
  routes only the master key (Learn, "Azure Functions HTTP trigger", "Authorization keys").
- The queue function, fed from the file-backed queue (connector/queue/local.py) as real
  `azure.functions.ServiceBusMessage`s; completed when the function returns, abandoned (so
  redelivered, and dead-lettered after the queue's maximum) when it raises — host.json's
  `autoCompleteMessages: true`.
- Timer functions on their NCRONTAB schedules (connector/app/local/schedule.py).
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import azure.functions as func
from azure.functions.timer import TimerRequest

from connector.app.local.functions import Functions, HttpFunction, QueueFunction, TimerFunction
from connector.app.local.schedule import Schedule
from connector.queue.local import LocalQueue, Received

logger = logging.getLogger("connector.local_host")

MAX_BODY = 100 * 1024 * 1024  # the Functions host's request limit (Learn, HTTP trigger limits)
IDLE_POLL_SECONDS = 0.2
PAST_DUE = timedelta(seconds=10)  # later than this after its time, a timer run is past due


@dataclass(frozen=True)
class Keys:
    function: str
    master: str

    def admits(self, level: str, presented: str) -> bool:
        if level == "anonymous":
            return True
        allowed = [self.master] if level == "admin" else [self.function, self.master]
        return bool(presented) and any(hmac.compare_digest(presented, k) for k in allowed)


def _json(status: int, message: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps({"error": message}).encode()


class HttpDispatcher:
    """One request in, the function's answer out; no socket involved (tested directly)."""

    def __init__(self, functions: Functions, keys: Keys) -> None:
        self._functions = functions
        self._keys = keys

    def dispatch(
        self, method: str, target: str, headers: dict[str, str], body: bytes, base_url: str
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urllib.parse.urlsplit(target)
        found = self._functions.resolve(urllib.parse.unquote(parts.path))
        if found is None:
            return _json(404, f"no function at {parts.path}")
        function, route_params = found
        if function.methods and method not in function.methods:
            return _json(404, f"{function.name} does not take {method}")  # the host's answer
        params = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        lower = {k.lower(): v for k, v in headers.items()}
        presented = lower.get("x-functions-key") or params.get("code", "")
        if not self._keys.admits(function.auth_level, presented):
            return 401, {}, b""  # the host answers a missing or wrong key with an empty 401
        request = func.HttpRequest(
            method, base_url + target, headers=headers, params=params,
            route_params=route_params, body=body,
        )  # fmt: skip
        return _invoke(function, request)


def _invoke(function: HttpFunction, request: func.HttpRequest) -> tuple[int, dict[str, str], bytes]:
    try:
        response = function.call(request)
    except Exception:
        logger.exception("local_host.function_failed", extra={"function": function.name})
        return 500, {}, b""  # the host's answer to an unhandled exception
    if isinstance(response, str):
        response = func.HttpResponse(response)
    out = dict(response.headers)
    if not any(k.lower() == "content-type" for k in out):
        mimetype = response.mimetype or "text/plain"
        out["Content-Type"] = f"{mimetype}; charset={response.charset or 'utf-8'}"
    return response.status_code, out, response.get_body()


def make_server(host: str, port: int, dispatcher: HttpDispatcher) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length_text = self.headers.get("Content-Length") or "0"
            length = int(length_text) if length_text.isdigit() else -1
            if length < 0:
                self._reply(*_json(400, "Content-Length is not a number"))
                return
            if length > MAX_BODY:
                self._reply(*_json(413, "request body over the host's limit"))
                return
            body = self.rfile.read(length) if length else b""
            base = f"http://{self.headers.get('Host') or f'{host}:{port}'}"
            started = time.monotonic()
            answer = dispatcher.dispatch(
                self.command, self.path, dict(self.headers.items()), body, base
            )
            self._reply(*answer)
            ms = (time.monotonic() - started) * 1000
            path = urllib.parse.urlsplit(self.path).path  # never the query: `?code=` is a key
            logger.info("local_host.http %s %s %s (%.0f ms)", self.command, path, answer[0], ms)

        def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve  # noqa: N815

        def log_message(self, *_: object) -> None:  # one line per request is logged above
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def service_bus_message(received: Received) -> func.ServiceBusMessage:
    from azure.functions.servicebus import ServiceBusMessage

    return ServiceBusMessage(
        body=received.body,
        message_id=received.message_id,
        session_id=received.session_id,
        content_type="application/json",
        application_properties=received.application_properties,
        delivery_count=received.delivery_count,
        enqueued_time_utc=received.enqueued_at,
        sequence_number=received.seq,
        user_properties={},
    )


class QueueWorker:
    """Receives, invokes, completes or abandons, until stopped. Several workers share a queue:
    the queue's session locks keep each session's order (host.json: one call per session)."""

    def __init__(self, queue: LocalQueue, function: QueueFunction, stop: threading.Event) -> None:
        self._queue = queue
        self._function = function
        self._stop = stop

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                received = self._queue.receive()
            except Exception:
                logger.exception("local_host.queue_unreadable")
                self._stop.wait(1)
                continue
            if received is None:
                self._stop.wait(IDLE_POLL_SECONDS)
                continue
            self._one(received)

    def _one(self, received: Received) -> None:
        try:
            self._function.call(service_bus_message(received))
        except Exception as exc:
            dead = self._queue.abandon(received, f"{type(exc).__name__}: {exc}")
            logger.warning(
                "local_host.message_failed %s delivery %d%s",
                received.message_id,
                received.delivery_count,
                ": dead-lettered" if dead else ": redelivered",
                exc_info=True,
            )
            return
        self._queue.complete(received)


class TimerRunner:
    def __init__(
        self,
        function: TimerFunction,
        stop: threading.Event,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._function = function
        self._schedule = Schedule.parse(function.schedule)
        self._stop = stop
        self._clock = clock

    def run(self) -> None:
        if self._function.run_on_startup:
            self._fire(past_due=False)
        due = self._schedule.next_after(self._clock())
        while not self._stop.wait(max(0.0, (due - self._clock()).total_seconds())):
            self._fire(past_due=self._clock() - due > PAST_DUE)
            due = self._schedule.next_after(max(due, self._clock()))

    def _fire(self, *, past_due: bool) -> None:
        try:
            self._function.call(TimerRequest(past_due=past_due))
        except Exception:
            logger.exception("local_host.timer_failed", extra={"function": self._function.name})


class Background:
    """The queue workers (unless held) and the timers, on daemon threads."""

    def __init__(self, functions: Functions, queue: LocalQueue, *, workers: int, hold: bool):
        self._stop = threading.Event()
        targets: list[Callable[[], None]] = [
            TimerRunner(t, self._stop).run for t in functions.timers
        ]
        if not hold:
            for function in functions.queues:
                targets += [QueueWorker(queue, function, self._stop).run for _ in range(workers)]
        self._threads = [threading.Thread(target=t, daemon=True) for t in targets]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 30) -> None:
        """Let a message in progress finish (its lock would otherwise cost a delivery)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
