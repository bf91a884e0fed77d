"""The table of API calls: every call's arguments, checks, defaults, summary and example.

Written once, read by everything that speaks the API: ``wire.parse_request`` checks a
request's arguments against it, ``api.HANDLERS`` is checked against it at import, and every
client face (TrailClient's methods, the ``trail`` commands, the REPL, the live view's command
line) is generated from it. Adding a call touches this table and its handler, nothing else.

Two arguments recur and are described by flags rather than listed: a call that ``selects``
takes ``tags`` (``**tags`` in Python, TAG=VALUE words on the command line), and a
``mutating`` call takes ``dry_run`` (default True: it says which steps would change and
changes nothing; ``start`` defaults to False, as in AutoTrail).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from trail.core.states import State
from trail.errors import ProtocolError


class Call(str, Enum):
    """Every call the API serves; the values are AutoTrail's names."""

    INFO = "info"
    GRAPH = "graph"
    START = "start"
    STOP = "stop"
    SHUTDOWN = "shutdown"
    LIST = "list"
    STATUS = "status"
    STEPS_WAITING_FOR_USER_INPUT = "steps_waiting_for_user_input"
    PAUSE = "pause"
    PAUSE_BRANCH = "pause_branch"
    INTERRUPT = "interrupt"
    RESUME = "resume"
    RESUME_BRANCH = "resume_branch"
    NEXT_STEP = "next_step"
    SKIP = "skip"
    UNSKIP = "unskip"
    BLOCK = "block"
    UNBLOCK = "unblock"
    RERUN = "rerun"
    SET_PAUSE_ON_FAIL = "set_pause_on_fail"
    UNSET_PAUSE_ON_FAIL = "unset_pause_on_fail"
    SEND_MESSAGE_TO_STEPS = "send_message_to_steps"

    def __str__(self) -> str:
        return self.value


class StatusField:
    """The keys of a status row (AutoTrail's strings), plus trail's own timing fields."""

    N = "n"
    NAME = "Name"
    TAGS = "Tags"
    STATE = "State"
    RETURN_VALUE = "Return value"
    OUTPUT_MESSAGES = "Output messages"
    INPUT_MESSAGES = "Input messages"
    PROMPT_MESSAGES = "Prompt messages"
    UNREPLIED_PROMPT_MESSAGE = "Waiting for response"
    STARTED_AT = "Started at"  # wall-clock seconds of the latest run's start, or None
    FINISHED_AT = "Finished at"  # ... and of its end, or None while it runs
    ATTEMPT = "Attempt"  # "2 of 4" for a step with retries, else None
    NEXT_RETRY_AT = "Next retry at"  # wall-clock seconds of the next retry, or None


STATUS_FIELDS = frozenset(
    value for key, value in vars(StatusField).items() if key.isupper() and isinstance(value, str)
)
DEFAULT_STATUS_FIELDS = (
    StatusField.STATE,
    StatusField.UNREPLIED_PROMPT_MESSAGE,
    StatusField.OUTPUT_MESSAGES,
    StatusField.RETURN_VALUE,
)
STATE_NAMES = frozenset(state.value for state in State)

Scalar = str | int | float | bool | None
Check = Callable[[str, Any], Any]


# --- checks: each takes the argument's name and value, returns the value or raises ---------

def flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ProtocolError(f"argument {name!r} must be true or false, not {value!r}")
    return value


def tags_check(name: str, value: Any) -> dict[str, Scalar]:
    if not isinstance(value, dict):
        raise ProtocolError(f"argument {name!r} must be an object of tag: value, not {value!r}")
    for key, tag in value.items():
        if not isinstance(tag, (str, int, float, bool)) and tag is not None:
            raise ProtocolError(f"tag {key!r} must be a string, number or boolean, not {tag!r}")
    return value


def count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError(f"argument {name!r} must be a whole number >= 0, not {value!r}")
    return value


def optional_count(name: str, value: Any) -> int | None:
    """A whole number >= 0, or None (no limit)."""
    return None if value is None else count(name, value)


def choices(allowed: frozenset[str]) -> Check:
    """A check for a list of names out of ``allowed``, or None."""

    def check(name: str, value: Any) -> list[str] | None:
        if value is None:
            return None
        if not isinstance(value, list):
            raise ProtocolError(f"argument {name!r} must be a list, not {value!r}")
        for item in value:
            if not isinstance(item, str) or item not in allowed:
                raise ProtocolError(
                    f"{item!r} in {name!r} is not one of: {', '.join(sorted(allowed))}"
                )
        return value

    check.choices = sorted(allowed)  # type: ignore[attr-defined]  # for faces that list them
    return check


def anything(name: str, value: Any) -> Any:
    return value


def json_or_text(text: str) -> Any:
    """A value typed by a person: JSON when it is JSON (true, 3, "x"), else the text."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # nested past what JSON reads is not JSON here
        return text


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # the default of an argument a request must give


@dataclass(frozen=True)
class Argument:
    """One argument of a call: how the server checks it, its default, how people type it.

    ``cli`` says how the ``trail`` command takes it: a word (``COUNT``, ``MESSAGE``) is a
    positional argument read by ``from_text``; ``--field`` is a repeatable option whose
    values make a list (none given: the default), or with ``many=False`` an option that
    takes one value, read by ``from_text`` (``--limit 100``).
    """

    name: str
    check: Check
    default: Any = REQUIRED
    help: str = ""
    cli: str = ""
    from_text: Callable[[str], Any] = str
    many: bool = True

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def option(self) -> bool:
        return self.cli.startswith("--")


class Result(Enum):
    """What a call returns, which says how a face shows it to a person."""

    STEPS = "steps"  # the steps concerned, [{n, name}]: "pause affected 2 step(s)"
    ROWS = "rows"  # rows of a table (status, list): a table, or ``CallSpec.nothing``
    DONE = "done"  # yes or no: whether it is done (``CallSpec.done`` / ``CallSpec.would``)
    DATA = "data"  # a JSON object, shown as it is


TAGS = Argument("tags", tags_check, {}, help="select the steps with these tags")


@dataclass(frozen=True)
class CallSpec:
    """One API call as every face sees it.

    ``name`` is the call's name on the wire (a ``Call``). ``arguments`` are the call's own,
    in the order of the Python signature; ``tags`` and ``dry_run`` come from ``selects``
    and ``mutating``. ``command`` is the ``trail`` command's name when it is not the
    call's name with dashes; ``cli=False`` keeps the call off the command line.
    ``whole_trail``: called without tags it is meant for every step (start, stop), so the
    live view does it rather than asking which step. ``nothing``, ``done`` and ``would``
    are what a face says for an empty table, and for a yes/no result done or dry-run.
    """

    name: str
    summary: str
    example: str
    arguments: tuple[Argument, ...] = ()
    selects: bool = False
    mutating: bool = False
    dry_run_default: bool = True
    result: Result = Result.STEPS
    command: str = ""
    cli: bool = True
    whole_trail: bool = False
    nothing: str = "no step matches"
    done: str = ""
    would: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", str(self.name))  # Call.PAUSE -> "pause"

    @property
    def command_name(self) -> str:
        return self.command or self.name.replace("_", "-")

    @property
    def dry_run(self) -> Argument:
        return Argument("dry_run", flag, self.dry_run_default,
                        help="only say what would change" if self.dry_run_default else "")

    @property
    def parameters(self) -> tuple[Argument, ...]:
        """The Python parameters before ``**tags``: the call's own, then ``dry_run``."""
        return self.arguments + ((self.dry_run,) if self.mutating else ())

    @property
    def wire_arguments(self) -> dict[str, Argument]:
        """Every argument a request carries, by name (tags nested as one object)."""
        wire = {TAGS.name: TAGS} if self.selects else {}
        return {**wire, **{argument.name: argument for argument in self.parameters}}

    def argument(self, name: str) -> Argument:
        return self.wire_arguments[name]

    def help(self) -> str:
        """The summary, what each typed argument means, and the example (for --help)."""
        lines = [self.summary]
        lines += [f"{a.cli}: {a.help}" for a in self.arguments if a.help and a.cli
                  and not a.option]
        return "\n\n".join(lines) + f"\n\n\b\nExample:\n  {self.example}"


def _steering(call: str, summary: str, example: str, **options: Any) -> CallSpec:
    """A call that selects steps by tags and changes them (unless a dry run)."""
    return CallSpec(call, summary, example, selects=True, mutating=True, **options)


SPECS: tuple[CallSpec, ...] = (
    CallSpec(Call.INFO, "What the server is: protocol, pid, sockets, steps, counts per state.",
             "trail ls", result=Result.DATA, cli=False),
    CallSpec(Call.GRAPH, "The trail's shape: steps (tags, by n) and edges [parent n, child n].",
             "trail dot -o now.svg", result=Result.DATA, cli=False),
    _steering(Call.START, "Start the trail (Ready steps begin).", "trail start --yes",
              dry_run_default=False, whole_trail=True),
    _steering(Call.STOP, "Interrupt running steps and block the rest (returns the interrupted).",
              "trail stop --yes", whole_trail=True),
    CallSpec(Call.SHUTDOWN, "Shut the trail server down (running steps are interrupted).",
             "trail shutdown --yes", mutating=True, result=Result.DONE,
             done="the server is shutting down", would="would stop the server"),
    CallSpec(Call.LIST, "The steps and their tags, in order.", "trail list tier=web",
             selects=True, result=Result.ROWS),
    CallSpec(Call.STATUS, "Status of the steps (all, or those with the given tags), by n; "
             "offset and limit give a page of them.",
             "trail status phase=switch --state Running", selects=True, result=Result.ROWS,
             arguments=(
                 Argument("fields", choices(STATUS_FIELDS), None, cli="--field",
                          help="A field to show (repeatable): "
                               + ", ".join(sorted(STATUS_FIELDS)) + "."),
                 Argument("states", choices(STATE_NAMES), None, cli="--state",
                          help="Only steps in this state (repeatable): "
                               + ", ".join(sorted(STATE_NAMES)) + "."),
                 Argument("offset", count, 0, cli="--offset", from_text=int, many=False,
                          help="Leave out the first OFFSET of the steps selected (by n): "
                               "with --limit, a page of a big trail."),
                 Argument("limit", optional_count, None, cli="--limit", from_text=int,
                          many=False, help="At most this many rows (default: every row)."),
             )),
    CallSpec(Call.STEPS_WAITING_FOR_USER_INPUT, "The steps with an unanswered question.",
             "trail status --field 'Waiting for response'", selects=True, result=Result.ROWS,
             cli=False, nothing="no step is waiting for input"),
    _steering(Call.PAUSE, "Pause steps before they run.", "trail pause name=promote --yes"),
    _steering(Call.PAUSE_BRANCH, "Pause steps and the branch below them.",
              "trail pause-branch name=announce_needed --yes"),
    _steering(Call.INTERRUPT, "Stop running steps now (they become Interrupted).",
              "trail interrupt name=promote --yes"),
    _steering(Call.RESUME, "Resume paused, failed-and-paused or interrupted steps.",
              "trail resume name=promote --yes"),
    _steering(Call.RESUME_BRANCH, "Resume steps and the branch below them.",
              "trail resume-branch name=announce_needed --yes"),
    CallSpec(Call.NEXT_STEP, "Resume the next COUNT paused steps, in order.", "trail next --yes",
             mutating=True, command="next", arguments=(
                 Argument("step_count", count, 1, cli="COUNT", from_text=int,
                          help="how many paused steps to resume (default 1)."),
             )),
    _steering(Call.SKIP, "Skip steps: they count as done without running.",
              "trail skip n=4 --yes"),
    _steering(Call.UNSKIP, "Take back a skip not yet done.", "trail unskip n=4 --yes"),
    _steering(Call.BLOCK, "Block steps: they and their branch never run.",
              "trail block phase=notify --yes"),
    _steering(Call.UNBLOCK, "Take back a block.", "trail unblock phase=notify --yes"),
    _steering(Call.RERUN, "Run failed or interrupted steps again.",
              "trail rerun name=verify --yes"),
    _steering(Call.SET_PAUSE_ON_FAIL, "Pause steps when they fail, rather than fail them.",
              "trail set-pause-on-fail name=promote --yes"),
    _steering(Call.UNSET_PAUSE_ON_FAIL, "Let steps fail when they fail.",
              "trail unset-pause-on-fail name=promote --yes"),
    _steering(Call.SEND_MESSAGE_TO_STEPS,
              "Send MESSAGE to running steps (answer a question; true marks an Instruction "
              "done).", "trail send db2 name=choose_replica --yes", command="send",
              arguments=(
                  Argument("message", anything, cli="MESSAGE", from_text=json_or_text,
                           help='read as JSON when it is JSON (true, 3, "text"), else as '
                                'text.'),
              )),
)

CALLS: dict[str, CallSpec] = {spec.name: spec for spec in SPECS}
assert list(CALLS) == [call.value for call in Call], "every Call has one entry, in order"
