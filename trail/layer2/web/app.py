"""The ``trail web`` application: pages, the JSON API, server-sent event streams, the token.

Built on Starlette (routing, static files, requests and responses) and sse-starlette (the
event streams, with disconnect detection and keep-alive pings); served by uvicorn. Every
route, static files included, answers 401 without the token: ``?token=`` in the URL (the
page then keeps it in an HttpOnly, SameSite=Strict cookie), an ``X-Trail-Token`` header or
``Authorization: Bearer``. A call that changes anything (POST) needs the token in a header,
never only a cookie, and is refused when its ``Origin`` is not this server's: another
site's page cannot steer a run. Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from trail.errors import TrailClientError, TrailError
from trail.layer1 import values
from trail.layer1.calls import CALLS, CallSpec
from trail.layer1.journal import Journal
from trail.layer2.diagram import STATE_COLOURS
from trail.layer2.web.hub import Hub, call_table, diagram_svg, page_row

log = logging.getLogger(__name__)

COOKIE = "trail_web_token"
HEADER = "x-trail-token"
STATIC = resources.files("trail.layer2.web") / "static"


def json_response(data: Any, status: int = 200) -> Response:
    """JSON as trail shows values everywhere (a value JSON cannot hold becomes its text)."""
    return Response(values.dumps(data), status, media_type="application/json")


class TokenGate:
    """ASGI middleware: 401 without the token, 403 for a cross-site change."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    def _matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        header = request.headers.get(HEADER)
        bearer = request.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            header = header or bearer[7:]
        if request.method not in ("GET", "HEAD"):
            if not self._matches(header):
                await _refuse(401, "the token is missing or wrong (POST needs it in the "
                                   "X-Trail-Token header)", scope, receive, send)
                return
            origin = request.headers.get("origin")
            host = request.headers.get("host", "")
            if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
                await _refuse(403, "a request from another site's page is refused", scope,
                              receive, send)
                return
        elif not any(self._matches(given) for given in
                     (header, request.query_params.get("token"), request.cookies.get(COOKIE))):
            await _refuse(401, "this page needs the token: open the URL `trail web` printed "
                               "(with ?token=...)", scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _refuse(status: int, text: str, scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse(text, status)(scope, receive, send)


def create_app(hub: Hub, token: str, journal: Path) -> ASGIApp:
    """The whole web application around ``hub``, behind the token gate. The handlers find
    the hub, the journal and the token in ``app.state``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        import asyncio

        hub.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            hub.stop()

    app = Starlette(routes=[
        Route("/", index),
        Route("/runs/{key}", run_page),
        Route("/api/trails", trails),
        Route("/api/calls", calls),
        Route("/api/runs/{key}", run_data),
        Route("/api/runs/{key}/timeline", timeline),
        Route("/api/runs/{key}/steps/{n:int}/output", step_output),
        Route("/api/runs/{key}/calls/{call}", call, methods=["POST"]),
        Route("/api/events", events),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ], lifespan=lifespan)
    app.state.hub, app.state.journal, app.state.token = hub, journal, token
    return TokenGate(app, token)


def _hub(request: Request) -> Hub:
    return request.app.state.hub  # type: ignore[no-any-return]


def _journal(request: Request) -> Path:
    return request.app.state.journal  # type: ignore[no-any-return]


STATE_CSS = "\n".join(f'[data-state="{state}"] {{ --state-colour: {colour}; }}'
                      for state, colour in STATE_COLOURS.items())


def page(request: Request, template: str) -> Response:
    """A page, with the token for its scripts (and, opened with ``?token=``, the cookie)."""
    token = request.app.state.token
    text = (STATIC / template).read_text(encoding="utf-8")
    text = text.replace("{{token}}", escape(token)).replace("{{state_css}}", STATE_CSS)
    response = HTMLResponse(text, headers={
        "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline';"
                                   " img-src 'self' data:; frame-ancestors 'none'"})
    if request.query_params.get("token"):
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
    return response


async def index(request: Request) -> Response:
    return page(request, "index.html")


async def run_page(request: Request) -> Response:
    return page(request, "run.html")


async def trails(request: Request) -> Response:
    past = await run_in_threadpool(_past_runs, _journal(request))
    return json_response({"trails": _hub(request).listing(), "past": past})


async def calls(request: Request) -> Response:
    return json_response(call_table())


async def run_data(request: Request) -> Response:
    """A run's snapshot: live from the hub, or from the journal."""
    key = request.path_params["key"]
    watched = _hub(request).trail(key)
    if watched is not None and request.query_params.get("followed"):
        return json_response({"followed": True})  # the page then takes the stream
    if watched is not None:
        with watched.lock:
            data = watched.snapshot()
    else:
        found = await run_in_threadpool(_past_run, _journal(request), key)
        if found is None:
            return json_response({"error": f"no run {key!r} is running or in the "
                                           f"journal {_journal(request)}"}, 404)
        data = found
    return json_response(data)


async def timeline(request: Request) -> Response:
    entries = await run_in_threadpool(_timeline, _journal(request), request.path_params["key"])
    return json_response({"timeline": entries})


async def step_output(request: Request) -> Response:
    """A step's whole output as plain text (the pages are sent its newest lines only)."""
    key, n = request.path_params["key"], request.path_params["n"]
    watched = _hub(request).trail(key)
    if watched is not None:
        with watched.lock:
            lines = watched.output(n)
    else:
        lines = await run_in_threadpool(_past_output, _journal(request), key, n)
    if lines is None:
        return PlainTextResponse(f"no step {n} in run {key!r}", 404)
    text = "\n".join(line if isinstance(line, str) else values.dumps(line) for line in lines)
    return PlainTextResponse(text, headers={"Cache-Control": "no-store",
                                            "X-Content-Type-Options": "nosniff"})


async def events(request: Request) -> Response:
    """Server-sent events: a run's (``?run=KEY``, greeted with its snapshot) or the list's."""
    hub = _hub(request)
    key = request.query_params.get("run")
    subscriber = hub.subscribe(key)
    if subscriber is None:
        return json_response({"error": f"no live trail {key!r}"}, 404)

    async def stream() -> AsyncIterator[dict[str, str]]:
        try:
            while True:
                message = await subscriber.queue.get()
                yield {"data": values.dumps(message)}
        finally:
            hub.unsubscribe(subscriber)

    return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})


class _BadCall(Exception):
    """A call's body the page should not have sent: 400 with this message."""


def _call_args(spec: CallSpec, body: Any) -> dict[str, Any]:
    """A steering call's arguments from its JSON body; _BadCall says what is wrong."""
    if not isinstance(body, dict):
        raise _BadCall("the body must be a JSON object")
    dry_run = body.get("dry_run", True)
    if not isinstance(dry_run, bool):
        raise _BadCall("dry_run must be true or false")
    args: dict[str, Any] = {"dry_run": dry_run}
    given = body.get("args") or {}
    if not isinstance(given, dict):
        raise _BadCall("args must be an object")
    for argument in spec.arguments:
        if argument.name in given:
            value = given[argument.name]
            try:
                args[argument.name] = (argument.from_text(value) if isinstance(value, str)
                                       else value)
            except ValueError as exc:
                raise _BadCall(f"{argument.name}: {exc}") from None
    if spec.selects:
        args["tags"] = body.get("tags") or {}
    return args


async def call(request: Request) -> Response:
    """A steering call on a live run (dry run unless the body says ``"dry_run": false``)."""
    key, name = request.path_params["key"], request.path_params["call"]
    spec = CALLS.get(name)
    if spec is None or not spec.mutating:
        return json_response({"error": f"{name!r} is not a call that steers a trail"}, 404)
    watched = _hub(request).trail(key)
    if watched is None or not watched.live:
        return json_response({"error": f"run {key} is not running: it cannot be steered"},
                             409)
    try:
        args = _call_args(spec, await request.json())
    except ValueError:
        return json_response({"error": "the body must be a JSON object"}, 400)
    except _BadCall as exc:
        return json_response({"error": str(exc)}, 400)
    try:
        result = await run_in_threadpool(watched.client.call, spec.name, **args)
    except TrailClientError as exc:
        return json_response({"error": str(exc)}, 400)
    except TrailError as exc:
        return json_response({"error": str(exc)}, 502)
    dry_run = args["dry_run"]
    log.info("web: %s%s on run %s", spec.name, " (dry run)" if dry_run else "", key)
    stranded = (watched.stranded(spec.name, result)
                if dry_run and isinstance(result, list) else [])
    return json_response({"call": spec.name, "dry_run": dry_run, "result": result,
                          "shape": spec.result.value, "stranded": stranded})


# --- the journal (read in a worker thread: sqlite connections stay in their thread) --------

def _open(journal: Path) -> Journal | None:
    return Journal(journal, verify=False) if journal.exists() else None


def _with_journal(journal: Path, read: Callable[[Journal], Any], default: Any) -> Any:
    book = _open(journal)
    if book is None:
        return default
    try:
        return read(book)
    finally:
        book.close()


def _past_runs(journal: Path) -> list[dict[str, Any]]:
    def read(book: Journal) -> list[dict[str, Any]]:
        runs = book.runs(100)
        for run in runs:
            run["steps"] = len(run.pop("shape").get("steps", []))
        return runs

    return _with_journal(journal, read, [])  # type: ignore[no-any-return]


def _run_id(key: str) -> int | None:
    return int(key) if key.isdigit() else None


def _past_run(journal: Path, key: str) -> dict[str, Any] | None:
    run_id = _run_id(key)
    if run_id is None:
        return None

    def read(book: Journal) -> dict[str, Any] | None:
        run = book.run(run_id)
        if run is None:
            return None
        saved = book.saved_steps(run_id)
        shape = run.pop("shape")
        steps = [{"n": n, "name": name} for n, name in shape.get("steps", [])]
        states = {n: step.state for n, step in saved.items()}
        rows = [page_row({"n": n, "Name": step.name, "State": step.state,
                          "Started at": step.started_at, "Finished at": step.finished_at,
                          "Attempt": step.attempt or None, "Return value": step.return_value,
                          "Output messages": step.output,
                          "last": str(step.output[-1]) if step.output else "",
                          "question": None}) for n, step in sorted(saved.items())]
        counts: dict[str, int] = {}
        for row in rows:
            counts[row["State"]] = counts.get(row["State"], 0) + 1
        return {"type": "snapshot", "key": key, "name": run["name"], "live": False,
                "run": run_id, "journal_run": run_id, "socket": run["socket"],
                "started": run["started"], "ended_at": run["ended"], "outcome": run["outcome"],
                "svg": diagram_svg(steps, shape.get("edges", []), states), "rows": rows,
                "counts": counts, "calls": call_table(), "history": True}

    return _with_journal(journal, read, None)  # type: ignore[no-any-return]


def _past_output(journal: Path, key: str, n: int) -> list[Any] | None:
    run_id = _run_id(key)
    if run_id is None:
        return None

    def read(book: Journal) -> list[Any] | None:
        step = book.saved_steps(run_id).get(n)
        return None if step is None else list(step.output)

    return _with_journal(journal, read, None)  # type: ignore[no-any-return]


def _timeline(journal: Path, key: str) -> list[dict[str, Any]]:
    run_id = _run_id(key)
    if run_id is None:
        return []
    return _with_journal(  # type: ignore[no-any-return]
        journal, lambda book: book.timeline(run_id, messages=True), [])

