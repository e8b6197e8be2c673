"""The dashboard's WSGI application: routes, the token check, actions.

How it works
------------
:class:`Dashboard` is a plain WSGI callable (served by pulsar-wsgi's thread pool, or any WSGI
server). It reads everything from one :class:`~._source.Source` (created at the first request
from the serving actor's settings, unless given). Pages are HTML; the same URL asked with
``Accept: application/json`` answers ``{"main": <inner html>, "updated": <time>}``, which the
page's script puts in place every ``interval`` seconds. ``/api/state`` is the raw snapshot,
``/metrics`` the Prometheus text.

Security: with a token configured, every action (``POST``) needs it — the ``pulsar_dashboard``
cookie set by ``/login`` (HttpOnly, SameSite=Strict) or ``Authorization: Bearer TOKEN`` —
whatever the address; on a non-loopback bind (``protect_reads``) every page needs it too.
A ``POST`` whose ``Origin`` is not this host is refused (a page elsewhere cannot drive the
dashboard through the user's browser, with or without a token); pages readable without a
token (a loopback bind) answer only to a loopback ``Host`` (no DNS rebinding).
"""

from __future__ import annotations

import hmac
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pulsar

from ._metrics import CONTENT_TYPE, render_metrics
from ._source import Source, recycle_me
from ._views import (
    SCRIPT,
    layout,
    render_actor,
    render_actors,
    render_login,
    render_servers,
    render_task,
    render_task_filters,
    render_tasks,
)

__all__ = ["COOKIE", "Dashboard"]

COOKIE = "pulsar_dashboard"
StartResponse = Callable[..., Any]


class _Response(Exception):
    """A finished response raised from deep inside a handler (redirects, 403...)."""

    def __init__(self, status: str, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = list(headers)


class Dashboard:
    """The dashboard as a WSGI application.

    Args:
        source: the :class:`Source` to read (None: made at the first request from the settings
            of the pulsar actor serving it: ``dashboard_attach``, ``dashboard_task_backend``,
            ``dashboard_interval``).
        token: the token actions need (None: read from the actor's ``dashboard_token``).
        protect_reads: pages need the token too (the server sets it for non-loopback binds).
        metrics_only: serve ``/metrics`` and nothing else (404): the ``--metrics`` exporter.
    """

    def __init__(
        self,
        source: Source | None = None,
        *,
        token: str | None = None,
        protect_reads: bool | None = None,
        metrics_only: bool = False,
    ) -> None:
        self._source = source
        self._token = token
        self._protect_reads = protect_reads
        self.metrics_only = metrics_only
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """Pickled to a spawned worker as its configuration (the source is made there)."""
        return {
            "token": self._token,
            "protect_reads": self._protect_reads,
            "metrics_only": self.metrics_only,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._source = None
        self._token = state["token"]
        self._protect_reads = state["protect_reads"]
        self.metrics_only = state["metrics_only"]
        self._lock = threading.Lock()

    # -- configuration ----------------------------------------------------------------------------
    def _setting(self, name: str) -> Any:
        """The setting ``name`` of the actor serving the request, else its declared default
        (the dashboard served outside pulsar, or by an application without these settings)."""
        cfg = getattr(pulsar.get_actor(), "cfg", None)
        if cfg is not None and name in cfg.settings:
            return cfg.get(name)
        return pulsar.Config(apps=("dashboard",)).get(name)

    def start_source(self) -> Source:
        """Create and start the source without waiting for its first read (a worker starts)."""
        return self._get_source()

    @property
    def source(self) -> Source:
        """The source (created and started on first use), once it has read (or failed to)."""
        source = self._get_source()
        source.wait_ready(10)
        return source

    def _get_source(self) -> Source:
        with self._lock:
            if self._source is None:
                attach = self._setting("dashboard_attach")
                actor = pulsar.get_actor()
                if not attach and actor is None:
                    raise pulsar.ConfigError("pulsar-dashboard: --attach is required")
                self._source = Source(
                    str(attach) if attach else None,
                    actor=actor,
                    task_backend=self._setting("dashboard_task_backend"),
                    interval=float(self._setting("dashboard_interval")),
                )
            source = self._source
        return source.start()

    @property
    def token(self) -> str | None:
        if self._token is None:
            self._token = self._setting("dashboard_token") or ""
        return self._token or None

    @property
    def protect_reads(self) -> bool:
        if self._protect_reads is None:
            from ._server import is_loopback

            binds = list(self._setting("bind"))
            self._protect_reads = bool(self.token) and not all(is_loopback(b) for b in binds)
        return self._protect_reads

    def close(self) -> None:
        """Stop the source."""
        if self._source is not None:
            self._source.close()

    # -- WSGI -------------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        try:
            status, headers, body = self.handle(environ)
        except _Response as r:
            status, headers, body = r.status, r.headers, r.body
        headers = [
            *headers,
            ("Content-Length", str(len(body))),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Referrer-Policy", "same-origin"),
            ("Cache-Control", "no-store"),
        ]
        start_response(status, headers)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    def handle(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        """Route one request; ``(status, headers, body)``."""
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO") or "/"
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        if not self.protect_reads and not self._loopback_host(environ):
            # served on loopback without a token for reads: a page of another site whose name
            # was re-pointed at 127.0.0.1 (DNS rebinding) must not read it or act through it
            raise _Response(
                "403 Forbidden",
                b"unexpected Host: this dashboard answers to 127.0.0.1, localhost and ::1\n",
                [("Content-Type", "text/plain; charset=utf-8")],
            )
        if self.metrics_only and (path != "/metrics" or method not in ("GET", "HEAD")):
            # the --metrics exporter: nothing else to read, no action to take
            raise _Response("404 Not Found", b"not found\n", [("Content-Type", "text/plain")])
        if path == "/static/dashboard.js":
            return "200 OK", [("Content-Type", "text/javascript; charset=utf-8")], SCRIPT.encode()
        if path == "/login":
            return self.login(environ, method, query)
        authed = self.authenticated(environ)
        if self.protect_reads and not authed:
            if path.startswith(("/api/", "/metrics")):
                raise _Response(
                    "401 Unauthorized",
                    b"token required\n",
                    [
                        ("Content-Type", "text/plain; charset=utf-8"),
                        ("WWW-Authenticate", 'Bearer realm="pulsar-dashboard"'),
                    ],
                )
            self.redirect(f"/login?{urlencode({'next': path})}")
        if method == "POST":
            return self.action(environ, path, authed)
        if method not in ("GET", "HEAD"):
            raise _Response("405 Method Not Allowed", b"", [("Allow", "GET, HEAD, POST")])
        if path == "/metrics":
            body = render_metrics(self.source.snapshot)
            return "200 OK", [("Content-Type", CONTENT_TYPE)], body
        if path == "/api/state":
            return self.json(self.source.snapshot())
        return self.page(environ, path, query, authed)

    # -- helpers ----------------------------------------------------------------------------------
    def authenticated(self, environ: dict[str, Any]) -> bool:
        """The request carries the token (cookie or bearer); True when no token is set."""
        token = self.token
        if not token:
            return True
        given = ""
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        else:
            cookie = SimpleCookie()
            try:
                cookie.load(environ.get("HTTP_COOKIE", ""))
            except Exception:
                pass
            if COOKIE in cookie:
                given = cookie[COOKIE].value
        return hmac.compare_digest(given.encode(), token.encode())

    def redirect(self, where: str) -> None:
        raise _Response("303 See Other", b"", [("Location", where)])

    def json(self, data: Any, status: str = "200 OK") -> tuple[str, list[tuple[str, str]], bytes]:
        body = json.dumps(data, default=str).encode()
        return status, [("Content-Type", "application/json")], body

    def _form(self, environ: dict[str, Any]) -> dict[str, str]:
        try:
            size = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            size = 0
        data = environ["wsgi.input"].read(min(size, 65536)) if size > 0 else b""
        return {k: v[-1] for k, v in parse_qs(data.decode("utf-8", "replace")).items()}

    def _same_origin(self, environ: dict[str, Any]) -> bool:
        origin = environ.get("HTTP_ORIGIN")
        if not origin or origin == "null":
            return origin is None
        host = environ.get("HTTP_HOST") or ""
        return urlsplit(origin).netloc == host

    def _loopback_host(self, environ: dict[str, Any]) -> bool:
        from ._server import is_loopback

        host = environ.get("HTTP_HOST")
        if not host:
            return True  # HTTP/1.0 without Host: nothing a browser on another site sends
        return is_loopback(host if ":" in host else f"{host}:80")

    def _tasks_on(self, snap: dict[str, Any]) -> bool:
        return bool((snap.get("tasks") or {}).get("available"))

    # -- login ------------------------------------------------------------------------------------
    def login(
        self, environ: dict[str, Any], method: str, query: dict[str, str]
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        next_url = query.get("next", "/")
        error = None
        if method == "POST":
            if not self._same_origin(environ):
                raise _Response("403 Forbidden", b"cross-origin request refused\n")
            form = self._form(environ)
            next_url = form.get("next", "/")
            if not next_url.startswith("/") or next_url.startswith("//"):
                next_url = "/"
            token = self.token
            given = form.get("token", "")
            if token and hmac.compare_digest(given.encode(), token.encode()):
                cookie = f"{COOKIE}={given}; Path=/; HttpOnly; SameSite=Strict"
                raise _Response(
                    "303 See Other", b"", [("Location", next_url), ("Set-Cookie", cookie)]
                )
            error = "wrong token" if token else "no token is configured: nothing to sign in to"
        html = layout(
            "Sign in",
            render_login(error, next_url),
            active="",
            tasks=False,
            interval=3600,
            updated=time.time(),
            token_set=bool(self.token),
        )
        return (
            ("401 Unauthorized" if error else "200 OK"),
            [("Content-Type", "text/html; charset=utf-8")],
            html.encode(),
        )

    # -- pages ------------------------------------------------------------------------------------
    def page(
        self, environ: dict[str, Any], path: str, query: dict[str, str], authed: bool
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        source = self.source
        snap = source.snapshot()
        tasks_on = self._tasks_on(snap)
        before = ""
        status = "200 OK"
        if path == "/":
            title, active, main = "Actors", "actors", render_actors(snap)
        elif m := re.fullmatch(r"/actors/([\w.\-]+)", path):
            aid = m[1]
            info = source.actor_info(aid)
            title, active, main = f"Actor {aid}", "actors", render_actor(snap, aid, info)
            if info is None:
                status = "404 Not Found"
        elif path == "/servers":
            title, active, main = "Servers", "servers", render_servers(snap)
        elif path == "/tasks" and tasks_on:
            filters = {k: query.get(k, "") for k in ("status", "queue", "name")}
            info = snap.get("tasks") or {}
            before = render_task_filters(
                filters, (info.get("queues") or {}).keys(), info.get("jobs") or ()
            )
            tasks = source.call(self._list_tasks, filters)
            title, active, main = "Tasks", "tasks", render_tasks(snap, tasks, filters)
        elif (m := re.fullmatch(r"/tasks/([\w.@:\-]+)", path)) and tasks_on:
            record = source.call(self._task_record, m[1])
            title, active, main = f"Task {m[1]}", "tasks", render_task(snap, record, m[1])
            if record is None:
                status = "404 Not Found"
        else:
            raise _Response("404 Not Found", b"not found\n", [("Content-Type", "text/plain")])
        updated = float(snap.get("time") or time.time())
        if "application/json" in environ.get("HTTP_ACCEPT", ""):
            return self.json({"main": main, "updated": updated, "title": title}, status)
        html = layout(
            title,
            main,
            active=active,
            tasks=tasks_on,
            interval=source.interval,
            updated=updated,
            flash=query.get("msg"),
            logged_in=authed and bool(self.token),
            token_set=bool(self.token),
            before=before,
        )
        return status, [("Content-Type", "text/html; charset=utf-8")], html.encode()

    async def _list_tasks(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        client = self.source.tasks_client
        found = await client.list_tasks(filters.get("status") or None, 500)
        out = []
        for task in found:
            if filters.get("queue") and task.queue != filters["queue"]:
                continue
            if filters.get("name") and task.name != filters["name"]:
                continue
            out.append(
                {
                    "id": task.id,
                    "name": task.name,
                    "queue": task.queue,
                    "status": str(task.status),
                    "attempts": task.attempts,
                    "progress": task.progress,
                    "error": task.error,
                    "runtime": _runtime(task),
                }
            )
            if len(out) >= 100:
                break
        return out

    async def _task_record(self, task_id: str) -> dict[str, Any] | None:
        client = self.source.tasks_client
        task = await client.get_task(task_id)
        if task is None:
            return None
        record = task.as_dict()
        record["status"] = str(task.status)
        if task.name.startswith("workflow."):
            try:
                shape = task.kwargs
            except ValueError:
                shape = None
            if isinstance(shape, dict):
                record["tree"] = {
                    "id": task.id,
                    "status": str(task.status),
                    **await self._walk(shape),
                }
        return record

    async def _walk(self, node: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if node.get("id"):
            task = await self.source.tasks_client.get_task(node["id"])
            out = {"id": node["id"], "name": node.get("name"), "status": None}
            if task is not None:
                out.update(name=task.name, status=str(task.status), error=task.error)
        if "kind" in node:
            out["kind"] = node["kind"]
            out["members"] = [await self._walk(m) for m in node.get("members") or ()]
        return out

    # -- actions ----------------------------------------------------------------------------------
    def action(
        self, environ: dict[str, Any], path: str, authed: bool
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        if not self._same_origin(environ):
            raise _Response(
                "403 Forbidden",
                b"cross-origin request refused\n",
                [("Content-Type", "text/plain; charset=utf-8")],
            )
        if not authed:
            raise _Response(
                "403 Forbidden",
                b"this action needs the dashboard token (sign in at /login)\n",
                [("Content-Type", "text/plain; charset=utf-8")],
            )
        source = self.source
        wants_json = "application/json" in environ.get("HTTP_ACCEPT", "")
        back = "/"
        try:
            if m := re.fullmatch(r"/actors/([\w.\-]+)/(stop|recycle)", path):
                aid, verb = m[1], m[2]
                back = f"/actors/{quote(aid)}"
                info = source.actor_info(aid)
                if info is None or info.get("kind") != "worker":
                    raise _Response("404 Not Found", b"no such worker\n")
                if verb == "stop":
                    source.call(self._stop, aid)
                    msg = f"worker {aid} stopped: its monitor replaces it"
                else:
                    source.call(self._recycle, aid)
                    msg = f"worker {aid} is being recycled (a new worker first)"
                back = "/"
            elif m := re.fullmatch(r"/tasks/([\w.@:\-]+)/(retry|revoke)", path):
                task_id, verb = m[1], m[2]
                back = f"/tasks/{quote(task_id)}"
                if not self._tasks_on(source.snapshot()):
                    raise _Response("404 Not Found", b"no task backend\n")
                if verb == "retry":
                    done = source.call(self._requeue, task_id)
                    msg = f"task {task_id} queued again" if done else f"no task {task_id}"
                else:
                    state = source.call(self._revoke, task_id)
                    msg = f"task {task_id}: {state}" if state else f"no task {task_id}"
            else:
                raise _Response("404 Not Found", b"not found\n")
        except _Response:
            raise
        except Exception as exc:
            msg = f"failed: {type(exc).__name__}: {exc}"
            if wants_json:
                return self.json({"ok": False, "message": msg}, "409 Conflict")
            self.redirect(f"{back}?{urlencode({'msg': msg})}")
        if wants_json:
            return self.json({"ok": True, "message": msg})
        self.redirect(f"{back}?{urlencode({'msg': msg})}")
        raise AssertionError("unreachable")

    async def _stop(self, aid: str) -> Any:
        return await self.source.client.send("arbiter", "kill_actor", aid)

    async def _recycle(self, aid: str) -> Any:
        return await self.source.client.send(aid, "run", recycle_me)

    async def _requeue(self, task_id: str) -> bool:
        return bool(await self.source.tasks_client.requeue(task_id))

    async def _revoke(self, task_id: str) -> Any:
        state = await self.source.tasks_client.revoke(task_id)
        return None if state is None else str(state)


def _runtime(task: Any) -> float | None:
    """Seconds the task's last attempt ran (None when it has not finished)."""
    started, finished = task.time_started, task.time_finished
    if started and finished and finished >= started:
        return float(finished) - float(started)
    return None
