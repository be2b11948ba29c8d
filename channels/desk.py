"""Serving the demo to a team: logins, an audit trail, and limits that protect the machine.

``Desk(settings, host)`` refuses to serve beyond loopback without a users file (setting ``users_file``).
``launch_options()`` puts Gradio's login in front of the page, and a gate in front of every other route:
Gradio leaves a few routes open (cancel, heartbeat, reset, streams), so anything but the login page and
its static files needs a session here, of a user still in the users file. ``serve(app)`` wraps every event
of the app, whatever its handlers, so that each request

* waits for its turn in its queue (Gradio's concurrency ids: one request at a time each) while at most
  ``queue_size`` others wait there, and while its user has fewer than ``user_requests`` in flight; otherwise
  it is refused at once with a message that starts "Busy, try again";
* is answered within ``request_timeout_s`` of its arrival, waiting included, or told it timed out (a step
  already running finishes in the background and holds its queue until then; progress updates stop it);
* is written to the audit trail (``audit_file``, and the logs at INFO; ``channels.desk_audit``): user, time,
  what was done and how it ended, with digests of uploaded files rather than their content.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import inspect
import ipaddress
import re
import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio as gr
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse

from agent.settings import Settings
from agent.types import AgentError

from . import users
from .desk_audit import audit, audit_to, reply_facts, request_facts

# What the login page itself loads: the page, its scripts, styles and fonts, and the login form's target.
# Gradio's own start-up call is here too (it only starts the queue, once).
OPEN_PATHS = {"/", "/login", "/login/", "/logout", "/favicon.ico", "/theme.css", "/gradio_api/startup-events"}
OPEN_PREFIXES = ("/assets/", "/static/")
FAILED_LOGINS = 5  # in a row, for one user: further tries wait THROTTLE_S after the last one
THROTTLE_S = 30
_END = object()


class TimedOut(AgentError):
    """A request ran past ``request_timeout_s``."""


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback address."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        found = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(found) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in found)


class Users:
    """The users file, read again whenever it changes on disk."""

    def __init__(self, path: str):
        self.path, self._stamp, self._users = Path(path), None, {}
        if not self.current():
            raise AgentError(f"users file {path} has no users: add one with 'support-agent --set users_file={path} "
                             "users add NAME'")

    def current(self) -> dict[str, str]:
        try:
            st = self.path.stat()
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            self._users, self._stamp = users.read(self.path) if stamp else {}, stamp
        return self._users


@dataclasses.dataclass
class _Lane:
    """One of the app's queues: a turn to run, and how many wait for it."""
    turn: asyncio.Semaphore = dataclasses.field(default_factory=lambda: asyncio.Semaphore(1))
    waiting: int = 0


class Desk:
    def __init__(self, settings: Settings, host: str):
        if not settings.users_file and not is_loopback(host):
            raise AgentError(f"refusing to serve on {host} without logins: set users_file (--set users_file=PATH, "
                             "SUPPORT_AGENT_USERS_FILE or the settings file; add users with 'support-agent users "
                             "add NAME')")
        self.users = Users(settings.users_file) if settings.users_file else None
        self.queue_size, self.user_requests = settings.queue_size, settings.user_requests
        self.timeout_s = settings.request_timeout_s
        self.lanes: dict[str, _Lane] = {}
        self.in_flight: Counter[str] = Counter()  # per user (per page session without logins)
        self.failures: dict[str, tuple[int, float]] = {}  # user: (failed logins in a row, when the last was)
        self.verifying = asyncio.Semaphore(2)  # an Argon2 check takes 64 MiB and a core for ~0.1 s
        self.pool = ThreadPoolExecutor(8, thread_name_prefix="desk")
        audit_to(settings.audit_file)

    # Logins ----------------------------------------------------------------------------------------------
    def launch_options(self) -> dict:
        """Keyword arguments for ``Blocks.launch``. Run history is off: it would keep customers' data in
        the browser."""
        options = {"run_history": False}
        if self.users is not None:
            options |= {"auth": self.login, "auth_message": "Support desk: log in with your team account.",
                        "app_kwargs": {"middleware": [Middleware(_Gate, desk=self)]}}
        return options

    async def login(self, name: str, password: str) -> bool:
        count, last = self.failures.get(name, (0, 0.0))
        if count >= FAILED_LOGINS and time.monotonic() - last < THROTTLE_S:
            audit("login", name, outcome="refused", reason=f"{count} failed logins in a row")
            return False
        async with self.verifying:
            ok = await asyncio.get_running_loop().run_in_executor(self.pool, users.verify, self.users.current(),
                                                                  name, password)
        if name in self.users.current():  # unknown names are not counted: anyone can make them up
            self.failures[name] = (0, 0.0) if ok else (count + 1, time.monotonic())
        audit("login", name if users.NAME.fullmatch(name) else "(not a user name)",
              outcome="logged in" if ok else "refused")
        return ok

    def session_user(self, scope) -> str | None:
        """The user of the request's session, if it has one of a user still in the users file."""
        app, cookies = scope["app"], Request(scope).cookies
        token = cookies.get(f"access-token-{app.cookie_id}") or cookies.get(f"access-token-unsecure-{app.cookie_id}")
        user = app.tokens.get(token)
        if user is None or user in self.users.current():
            return user
        for stale in [t for t, u in app.tokens.items() if u == user]:  # removed: every session of theirs ends
            app.tokens.pop(stale, None)
        audit("session_ended", user, outcome="user removed from the users file")
        return None

    # Requests ----------------------------------------------------------------------------------------------
    def serve(self, app: gr.Blocks) -> None:
        """Every event of ``app`` through ``_served``; Gradio's own queue no longer holds them back."""
        for block_fn in app.fns.values():
            if block_fn.fn is not None:
                block_fn.fn = self._served(block_fn.fn, block_fn.concurrency_id)
                block_fn.concurrency_limit = None

    def _served(self, handler, lane_name: str):
        signature = inspect.signature(handler)
        asks_request = any(p.annotation in (gr.Request, "gr.Request") for p in signature.parameters.values())
        action = handler.__name__

        async def admitted(args) -> tuple[_Ticket, list]:
            args = list(args)
            if asks_request:
                request = next((a for a in args if isinstance(a, gr.Request)), None)
            else:
                request = args.pop() if args and isinstance(args[-1], gr.Request) else None
            ticket = _Ticket(self, action, lane_name, request, time.monotonic() + self.timeout_s)
            await ticket.admit()
            return ticket, [_TimedProgress(a, ticket) if isinstance(a, gr.Progress) else a for a in args]

        if inspect.isgeneratorfunction(handler):
            async def served(*args):
                ticket, args = await admitted(args)
                with ticket:
                    ticket.facts = await ticket.run(request_facts, args)
                    async with contextlib.aclosing(ticket.steps(handler(*args))) as steps:
                        async for outputs in steps:
                            ticket.outputs = outputs
                            yield outputs
        else:
            async def served(*args):
                ticket, args = await admitted(args)
                with ticket:
                    ticket.facts = await ticket.run(request_facts, args)
                    ticket.outputs = await ticket.run(handler, *args)
                    return ticket.outputs

        functools.update_wrapper(served, handler)
        if not asks_request:  # Gradio passes the request to a parameter annotated as one
            parameter = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                          annotation=gr.Request)
            served.__signature__ = signature.replace(parameters=[*signature.parameters.values(), parameter])
            served.__annotations__ = {**handler.__annotations__, "request": gr.Request}
        return served


class _Ticket:
    """One request on its way through the desk: admitted to its queue, run, timed and audited."""

    def __init__(self, desk: Desk, action: str, lane_name: str, request, deadline: float):
        self.desk, self.action, self.deadline = desk, action, deadline
        self.lane = desk.lanes.setdefault(lane_name, _Lane())
        self.user = getattr(request, "username", None)
        self.holder = self.user or f"session {getattr(request, 'session_hash', None)}"
        self.arrived, self.started = time.monotonic(), None
        self.context = contextvars.copy_context()  # Gradio's progress reporting lives in context variables
        self.loop = asyncio.get_running_loop()
        self.outputs, self.facts, self.timed_out = None, {}, False
        self.holding = 0  # the request's own hold on its lane and its user's count; 0 frees both

    async def admit(self) -> None:
        desk = self.desk
        if desk.in_flight[self.holder] >= desk.user_requests:
            self._refuse(f"Busy, try again when one of yours is done: you have {desk.in_flight[self.holder]} "
                         f"requests waiting or running, the most one user may have (user_requests).")
        if self.lane.waiting >= desk.queue_size:
            self._refuse(f"Busy, try again in a minute: {self.lane.waiting} requests are already waiting "
                         f"(queue_size).")
        desk.in_flight[self.holder] += 1
        self.lane.waiting += 1
        try:
            await asyncio.wait_for(self.lane.turn.acquire(), self.deadline - time.monotonic())
        except BaseException as exc:
            self._free_user()
            if isinstance(exc, TimeoutError):
                self._refuse(f"Busy, try again later: this request waited {time.monotonic() - self.arrived:.0f} s "
                             f"for its turn (request_timeout_s).", "timed out waiting")
            raise
        finally:
            self.lane.waiting -= 1
        self.started, self.holding = time.monotonic(), 1

    def _refuse(self, message: str, outcome: str = "busy"):
        self._audit(outcome)
        raise gr.Error(message, title="Busy", duration=None, print_exception=False)

    def _free_user(self) -> None:
        self.desk.in_flight[self.holder] -= 1
        if self.desk.in_flight[self.holder] <= 0:
            del self.desk.in_flight[self.holder]

    def _release(self) -> None:
        """Frees the lane and the user's count; called on the event loop, once what runs is over."""
        self.lane.turn.release()
        self._free_user()

    async def run(self, fn, *args):
        """``fn(*args)`` in a worker thread, within the deadline; one that runs past it is left to finish
        and keeps the lane until it does."""
        future = self.loop.run_in_executor(self.desk.pool, self.context.run, fn, *args)
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(self.deadline - time.monotonic(), 0))
        except BaseException as exc:
            if not future.done():
                self.holding += 1
                future.add_done_callback(lambda _: self._let_go())
            if isinstance(exc, TimeoutError):
                self.timed_out = True
                raise TimedOut(self.timeout_message()) from None
            raise

    async def steps(self, generator):
        """The outputs of a generator handler, one step at a time, each run as ``run`` runs a call. Once
        it ends, however it ends, the generator is closed (after a step still running)."""
        try:
            while (outputs := await self.run(next, generator, _END)) is not _END:
                yield outputs
        finally:
            self.holding += 1
            closing = self.loop.run_in_executor(self.desk.pool, self._close_after_step, generator)
            closing.add_done_callback(lambda _: self._let_go())

    @staticmethod
    def _close_after_step(generator) -> None:
        while True:
            try:
                return generator.close()
            except ValueError:  # "generator already executing": a step past the deadline is still running
                time.sleep(0.05)

    def _let_go(self) -> None:
        self.holding -= 1
        if self.holding == 0:
            self._release()

    def timeout_message(self) -> str:
        return (f"Timed out: {self.action.replace('_', ' ')} took longer than {self.desk.timeout_s:.0f} s, "
                f"waiting included (request_timeout_s); try a smaller file, or again later.")

    def __enter__(self) -> "_Ticket":
        return self

    def __exit__(self, kind, exc, _) -> None:
        if kind is None:
            outcome = "answered"
        elif self.timed_out or isinstance(exc, TimedOut):
            outcome = "timed out"
        elif isinstance(exc, gr.Error):
            outcome = "refused"  # bad input: the user was told why
        elif isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
            outcome = "cancelled"
        else:
            outcome = "failed"
        self._audit(outcome)
        self._let_go()
        if isinstance(exc, TimedOut):
            raise gr.Error(str(exc), title="Timed out", duration=None, print_exception=False) from None

    def _audit(self, outcome: str) -> None:
        now = time.monotonic()
        waited = (self.started or now) - self.arrived
        audit(self.action, self.user, outcome=outcome, waited_s=round(waited, 2),
              seconds=round(now - (self.started or now), 2), **self.facts, **reply_facts(self.outputs))


class _TimedProgress:
    """Gradio's progress tracker that also stops a handler at its next progress update past the deadline."""

    def __init__(self, progress: gr.Progress, ticket: _Ticket):
        self._progress, self._ticket = progress, ticket

    def __call__(self, *args, **kwargs):
        if time.monotonic() > self._ticket.deadline:
            self._ticket.timed_out = True
            raise TimedOut(self._ticket.timeout_message())
        return self._progress(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._progress, name)


class _Gate:
    """ASGI middleware: a request without a session gets only the login page (with Gradio's description of
    the API taken out of it) and what that page loads; anything else is answered 401."""

    def __init__(self, app, desk: Desk):
        self.app, self.desk = app, desk

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or self.desk.session_user(scope) is not None:
            return await self.app(scope, receive, send)
        path = scope["path"]
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        if path == "/":
            return await self.app(scope, receive, _without_api_info(send))
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return await self.app(scope, receive, send)
        refusal = JSONResponse({"detail": {"error": "Not authenticated", "auth_message": "Log in first."}}, 401)
        return await refusal(scope, receive, send)


def _without_api_info(send):
    """``send`` for a page whose embedded API description (endpoint names and parameters) is blanked."""
    start, body = None, []

    async def sending(message):
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return None
        body.append(message.get("body", b""))
        if message.get("more_body"):
            return None
        page = re.sub(rb"window\.gradio_api_info = .*?;</script>", b"window.gradio_api_info = null;</script>",
                      b"".join(body), count=1, flags=re.S)
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(page)).encode())]})
        await send({"type": "http.response.body", "body": page})

    return sending
