"""One small handler per API call, dispatched from ``HANDLERS`` and checked against the table.

Every handler gets the run and the request's checked arguments, runs on the run's
thread, and returns the call's result. Mutating calls select steps by tags, keep those in a
state the transition table allows the action from, and change them only when ``dry_run``
is false; either way they return the tags (n and name) of the steps concerned.

The table of calls (``trail.layer1.calls``) says what each call accepts; at import this
module checks that every call in it has exactly one handler here, and no handler is left
without a call.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from trail.core.dag import numbered_edges, strict_progeny
from trail.core.states import PAUSE_ON_FAIL_STATES, Action, State, states_for
from trail.errors import ProtocolError, TrailError
from trail.layer1.calls import CALLS, DEFAULT_STATUS_FIELDS, Call, StatusField
from trail.layer1.records import StepRecord
from trail.layer1.run import Run
from trail.layer1.wire import (
    PROTOCOL_VERSION,
    Encoded,
    Reply,
    error_reply,
    parse_request,
    request_id,
)

log = logging.getLogger(__name__)

Args = dict[str, Any]
Handler = Callable[[Run, Args], Any]

_FIELDS: dict[str, Callable[[StepRecord], Any]] = {
    StatusField.N: lambda r: r.n,
    StatusField.NAME: lambda r: r.name,
    StatusField.TAGS: lambda r: r.tags,
    StatusField.STATE: lambda r: r.state.value,
    StatusField.RETURN_VALUE: lambda r: r.shown_return_value,
    StatusField.OUTPUT_MESSAGES: lambda r: r.output_messages,
    StatusField.INPUT_MESSAGES: lambda r: r.input_messages,
    StatusField.PROMPT_MESSAGES: lambda r: r.prompt_messages,
    StatusField.UNREPLIED_PROMPT_MESSAGE: lambda r: r.unreplied_prompt,
    StatusField.STARTED_AT: lambda r: r.started_at,
    StatusField.FINISHED_AT: lambda r: r.finished_at,
    StatusField.ATTEMPT: lambda r: (f"{r.tries} of {r.step.retries + 1}"
                                    if r.step.retries and r.tries else None),
    StatusField.NEXT_RETRY_AT: lambda r: r.retry_at_wall,
}


def status_row(record: StepRecord, fields: Iterable[str]) -> dict[str, Any]:
    """A status row: always n and Name (they identify the step), then the asked fields."""
    row = {StatusField.N: record.n, StatusField.NAME: record.name}
    for name in fields:
        row[name] = _FIELDS[name](record)
    return row


def briefs(records: Iterable[StepRecord]) -> list[dict[str, Any]]:
    return [record.brief for record in records]


def _eligible(records: Iterable[StepRecord], action: Action) -> list[StepRecord]:
    allowed = states_for(action)
    return [record for record in records if record.state in allowed]


def _move(
    run: Run, records: list[StepRecord], action: Action, args: Args, call: Call
) -> list[dict[str, Any]]:
    """Apply ``action`` to the eligible ones among ``records`` unless this is a dry run."""
    chosen = _eligible(records, action)
    if not args["dry_run"]:
        for record in chosen:
            run.apply(record, action, f"api:{call}")
    return briefs(chosen)


def _by_tags(action: Action, call: Call) -> Handler:
    def handler(run: Run, args: Args) -> list[dict[str, Any]]:
        return _move(run, run.select(args["tags"]), action, args, call)

    handler.__name__ = call.value
    handler.__doc__ = f"{call}: move the steps with the given tags by {action!r}."
    return handler


def _branch(action: Action, call: Call) -> Handler:
    def handler(run: Run, args: Args) -> list[dict[str, Any]]:
        roots = [record.step for record in run.select(args["tags"])]
        branch = run.records_of(strict_progeny(run.graph, roots))
        return _move(run, branch, action, args, call)

    handler.__name__ = call.value
    handler.__doc__ = f"{call}: {action!r} the tagged steps and their strict progeny."
    return handler


WAITING_LISTED = 20  # steps named per kind of wait in info()


def info(run: Run, args: Args) -> dict[str, Any]:
    """What this server is: protocol, process, sockets, steps and how far the run is."""
    waiting = run.standing.waiting_for_operator()
    return {
        **run.info,
        "protocol": PROTOCOL_VERSION,
        "pid": os.getpid(),
        "steps": len(run.records),
        "executor": run.default_executor,
        "counts": run.standing.counts(),
        "finished": run.standing.finished(),
        "end": run.standing.end_state(),  # "succeeded", "failed", or None while not finished
        "idle": run.standing.idle(),  # nothing happens until an operator acts
        # The first WAITING_LISTED steps of each kind, and how many in all: at 100,000
        # Ready steps, a list of all would make every info() reply megabytes.
        "waiting_for": {what: [list(step) for step in steps[:WAITING_LISTED]]
                        for what, steps in waiting.items()},
        "waiting_counts": {what: len(steps) for what, steps in waiting.items()},
        "published": run.outbox.published,  # the seq of the last event sent (0: none yet)
    }


def graph(run: Run, args: Args) -> dict[str, Any]:
    """The trail's shape: every step's tags, and the edges as [parent n, child n] pairs."""
    return {
        "steps": [record.tags for record in run.records],
        "edges": [list(edge) for edge in numbered_edges(run.graph)],
    }


def stop(run: Run, args: Args) -> list[dict[str, Any]]:
    """Interrupt the running steps, then block every other step that may still run."""
    selected = run.select(args["tags"])
    running = _eligible(selected, Action.INTERRUPT)
    if args["dry_run"]:
        return briefs(running)
    run.stopped = True
    for record in running:
        run.interrupt(record, f"api:{Call.STOP}")
    _move(run, selected, Action.BLOCK, args, Call.STOP)
    return briefs(running)


def shutdown(run: Run, args: Args) -> bool:
    """Stop serving (running steps are interrupted on the way out). True unless a dry run."""
    if args["dry_run"]:
        return False
    run.shut_down(f"api:{Call.SHUTDOWN}")
    return True


def list_steps(run: Run, args: Args) -> list[dict[str, Any]]:
    return [record.tags for record in run.select(args["tags"])]


def status(run: Run, args: Args) -> Encoded:
    """A status row per selected step, by n, from ``offset`` on and at most ``limit`` of
    them; rows of steps unchanged since the last call with the same fields are reused as
    encoded, so an idle trail of thousands answers at once."""
    fields = tuple(DEFAULT_STATUS_FIELDS if args["fields"] is None else args["fields"])
    states = {State(value) for value in args["states"] or ()}
    if states and not args["tags"]:
        records = run.standing.in_state(*states)  # no look at the steps in other states
    else:
        records = run.select(args["tags"])
        if states:
            records = [record for record in records if record.state in states]
    offset, limit = args["offset"], args["limit"]
    if offset or limit is not None:
        records = records[offset:None if limit is None else offset + limit]

    def row(record: StepRecord) -> dict[str, Any]:
        return status_row(record, fields)

    return Encoded(b"[" + b",".join([record.encoded_row(fields, row) for record in records])
                   + b"]")


def steps_waiting_for_user_input(run: Run, args: Args) -> list[dict[str, Any]]:
    return [
        status_row(record, [StatusField.UNREPLIED_PROMPT_MESSAGE])
        for record in run.select(args["tags"])
        if record.unreplied_prompt is not None
    ]


def interrupt(run: Run, args: Args) -> list[dict[str, Any]]:
    """Stop running steps now: SIGTERM to the step's process group, SIGKILL after grace."""
    chosen = _eligible(run.select(args["tags"]), Action.INTERRUPT)
    if not args["dry_run"]:
        for record in chosen:
            run.interrupt(record, f"api:{Call.INTERRUPT}")
    return briefs(chosen)


def next_step(run: Run, args: Args) -> list[dict[str, Any]]:
    """Resume the first ``step_count`` paused steps in topological order."""
    paused = _eligible(run.records, Action.NEXT_STEP)[: args["step_count"]]
    return _move(run, paused, Action.NEXT_STEP, args, Call.NEXT_STEP)


def _pause_on_fail(value: bool, call: Call) -> Handler:
    def handler(run: Run, args: Args) -> list[dict[str, Any]]:
        chosen = [r for r in run.select(args["tags"]) if r.state in PAUSE_ON_FAIL_STATES]
        if not args["dry_run"]:
            for record in chosen:
                run.set_pause_on_fail(record, value, f"api:{call}")
        return briefs(chosen)

    handler.__name__ = call.value
    return handler


def send_message_to_steps(run: Run, args: Args) -> list[dict[str, Any]]:
    """Send ``message`` to the running steps with the given tags (a prompt's reply)."""
    chosen = [r for r in run.select(args["tags"]) if r.state is State.RUNNING]
    if not args["dry_run"]:
        for record in chosen:
            run.reply(record, args["message"], f"api:{Call.SEND_MESSAGE_TO_STEPS}")
    return briefs(chosen)


HANDLERS: dict[Call, Handler] = {
    Call.INFO: info,
    Call.GRAPH: graph,
    Call.START: _by_tags(Action.START, Call.START),
    Call.STOP: stop,
    Call.SHUTDOWN: shutdown,
    Call.LIST: list_steps,
    Call.STATUS: status,
    Call.STEPS_WAITING_FOR_USER_INPUT: steps_waiting_for_user_input,
    Call.PAUSE: _by_tags(Action.PAUSE, Call.PAUSE),
    Call.PAUSE_BRANCH: _branch(Action.PAUSE, Call.PAUSE_BRANCH),
    Call.INTERRUPT: interrupt,
    Call.RESUME: _by_tags(Action.RESUME, Call.RESUME),
    Call.RESUME_BRANCH: _branch(Action.RESUME_BRANCH, Call.RESUME_BRANCH),
    Call.NEXT_STEP: next_step,
    Call.SKIP: _by_tags(Action.SKIP, Call.SKIP),
    Call.UNSKIP: _by_tags(Action.UNSKIP, Call.UNSKIP),
    Call.BLOCK: _by_tags(Action.BLOCK, Call.BLOCK),
    Call.UNBLOCK: _by_tags(Action.UNBLOCK, Call.UNBLOCK),
    Call.RERUN: _by_tags(Action.RERUN, Call.RERUN),
    Call.SET_PAUSE_ON_FAIL: _pause_on_fail(True, Call.SET_PAUSE_ON_FAIL),
    Call.UNSET_PAUSE_ON_FAIL: _pause_on_fail(False, Call.UNSET_PAUSE_ON_FAIL),
    Call.SEND_MESSAGE_TO_STEPS: send_message_to_steps,
}


def check_handlers(handlers: dict[Call, Handler], calls: Iterable[str]) -> None:
    """Every call in the table has one handler, and every handler a call: else TypeError
    at import, naming them, rather than an "unknown call" in the middle of a run."""
    names = set(calls)
    missing = sorted(names - set(handlers))
    stray = sorted(str(call) for call in set(handlers) - names)
    if missing or stray:
        raise TypeError(f"the table of calls and the handlers disagree: no handler for "
                        f"{missing or 'none'}; no call for {stray or 'none'}")


check_handlers(HANDLERS, CALLS)


def handle(run: Run, body: bytes) -> Reply:
    """Answer one request against ``run``; any failure becomes an error reply, never a crash."""
    try:
        request = parse_request(body)
    except ProtocolError as exc:
        log.warning("refused a request: %s", exc)
        return error_reply(request_id(body), exc)
    except Exception as exc:  # a request no check foresaw must not stop the server
        log.exception("could not read a request")
        return error_reply(request_id(body), ProtocolError(f"unreadable request: {exc}"))
    run.by = request.by  # the causes of what this request changes name who asked
    try:
        result = HANDLERS[request.call](run, request.args)
    except TrailError as exc:
        return error_reply(request.id, exc)
    except Exception as exc:
        log.exception("the %s call failed", request.call)
        return error_reply(request.id, exc)
    finally:
        run.by = None
    return Reply(request.id, True, result)
