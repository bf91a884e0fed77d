"""Step: a description of one unit of work in a trail, and the ``>>`` operator that links steps.

A Step holds what to run and how (function, processors, options, tags). It holds no run-time
state: the manager keeps that in its own record of the run, so one Step object is safe to
describe a step in any number of trails.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from trail.core.states import State
from trail.errors import DefinitionError


def default_pre_processor(trail_env: Any, context: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Call the action function as ``f(trail_env, context)``."""
    return (trail_env, context), {}


def default_post_processor(trail_env: Any, context: Any, return_value: Any) -> Any:
    """Keep the action function's return value."""
    return return_value


def default_failure_handler(trail_env: Any, context: Any, exception: BaseException) -> Any:
    """Keep the exception as the step's return value."""
    return exception


T = TypeVar("T")


class _Options:
    """A step's options as trail reads them. Every step that keeps the defaults shares one
    (a trail may have 100,000 steps); a step's own is made when one of them is set."""

    __slots__ = ("pause_on_fail", "skip_progeny_on_failure", "timeout", "kill_grace",
                 "idempotent", "executor", "conditional", "retries", "retry_delay", "backoff",
                 "max_delay", "jitter", "retry_on", "priority", "pool_size", "gate", "owner")

    def __init__(self, values: tuple[Any, ...], owner: Any = None) -> None:
        for name, value in zip(self.__slots__, (*values, owner), strict=True):
            setattr(self, name, value)

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__[:-1])


class _Option(property, Generic[T]):
    """A Step option: read from the step's options, set on options of the step's own.

    A property whose getter is an ``attrgetter``: reading an option runs no Python code,
    and trail reads a few of every step's on its way through a run."""

    def __init__(self, name: str) -> None:
        super().__init__(attrgetter(f"_options.{name}"), self._set,
                         doc=f"The step's option {name} (see Step).")
        self.name = name

    if TYPE_CHECKING:
        @overload  # type: ignore[override]
        def __get__(self, step: None, owner: type | None = None) -> _Option[T]: ...

        @overload
        def __get__(self, step: Step, owner: type | None = None) -> T: ...

        def __get__(self, step: Step | None, owner: type | None = None) -> T | _Option[T]:
            ...

        def __set__(self, step: Step, value: T) -> None: ...

    def _set(self, step: Step, value: T) -> None:
        options = step.__dict__.get("_options")
        if options is None or options.owner is not step:  # shared (or a copy's): copy it
            options = step._options = _Options(
                options.values() if options is not None else _DEFAULTS, step)
        setattr(options, self.name, value)


class Step:
    """One step of a trail.

    ``action_function(trail_env, context)`` does the work (the pre-processor can change the
    arguments). ``pre_processor``, ``post_processor`` and ``failure_handler`` run in the
    manager, so keep them quick. Keyword arguments are tags; ``name`` defaults to the
    function's name (or ``str()`` of a callable object); its number ``n`` belongs to each
    trail it is in. The options below are tags too, kept as written
    (``Step(f, priority='high')`` is found by ``list(priority='high')``), and trail reads
    them: a value it cannot read is a DefinitionError naming the option. Durations are
    seconds or text ('90s', '5m', '1h30m'); ``priority`` is a number or a word ('low',
    'normal', 'high', 'critical', ...); flags take booleans or 'yes'/'no'.

    Options beyond AutoTrail's: ``timeout`` (seconds; the step is stopped and fails with
    StepTimeoutError), ``kill_grace`` (seconds between SIGTERM and SIGKILL when the step is
    stopped), ``idempotent`` (safe to run again after a crash), ``executor`` ('process',
    'thread' or 'dask', overriding the server's), ``conditional`` (a return value of False
    skips the step's strict progeny: the branch it guards), ``retries`` (run again after a failure,
    up to that many times, ``retry_delay * backoff ** k`` seconds later, capped at
    ``max_delay``, give or take ``jitter`` of it; only for errors ``retry_on`` accepts, if
    given), ``priority`` (higher runs first when ``max_parallel`` or a pool is short),
    ``pool_size`` (how many steps tagged with this step's ``pool`` may run at once, when
    the server's ``pools`` does not say; steps of one pool must agree on it), ``gate``
    (the step runs once each parent has settled: done, or Failed, or waiting below a step
    that failed, where another step waits for its parents to be done; it reads the failed
    steps above it in ``trail_env.failed_above`` and decides whether what is below it goes
    on: rolling updates use it to count a batch's failed hosts; a failure above a gate
    holds up nothing below the gate).
    """

    _given: dict[str, Any] | None = None  # the options as the caller wrote them (__new__)
    _options: _Options  # the options as trail reads them; see _Option

    pause_on_fail: _Option[bool] = _Option("pause_on_fail")
    skip_progeny_on_failure: _Option[bool] = _Option("skip_progeny_on_failure")
    timeout: _Option[float | None] = _Option("timeout")
    kill_grace: _Option[float] = _Option("kill_grace")
    idempotent: _Option[bool] = _Option("idempotent")
    executor: _Option[str | None] = _Option("executor")
    conditional: _Option[bool] = _Option("conditional")
    retries: _Option[int] = _Option("retries")
    retry_delay: _Option[float] = _Option("retry_delay")
    backoff: _Option[float] = _Option("backoff")
    max_delay: _Option[float] = _Option("max_delay")
    jitter: _Option[float] = _Option("jitter")
    retry_on: _Option[Callable[[BaseException], bool] | None] = _Option("retry_on")
    priority: _Option[float] = _Option("priority")
    pool_size: _Option[int | None] = _Option("pool_size")
    gate: _Option[bool] = _Option("gate")

    def retry_wait(self, failures: int, random: Callable[[], float]) -> float:
        """Seconds to wait before the retry after ``failures`` failed attempts."""
        base = min(self.max_delay, self.retry_delay * self.backoff ** (failures - 1))
        return max(0.0, base * (1 + self.jitter * (2 * random() - 1)))

    # AutoTrail's names for the states, so runbooks that compare against them keep working.
    READY = State.READY.value
    RUN = State.RUNNING.value
    SUCCESS = State.SUCCEEDED.value
    FAILURE = State.FAILED.value
    SKIPPED = State.SKIPPED.value
    BLOCKED = State.BLOCKED.value
    PAUSED = State.PAUSED.value
    INTERRUPTED = State.INTERRUPTED.value
    PAUSED_ON_FAIL = State.PAUSED_ON_FAIL.value
    WAIT = State.WAITING.value
    TOSKIP = State.TO_SKIP.value
    TOBLOCK = State.TO_BLOCK.value
    TOPAUSE = State.TO_PAUSE.value

    def __new__(cls, *args: Any, **kwargs: Any) -> Step:
        step = object.__new__(cls)
        # The options the caller wrote, as written: they stay tags (``__init__``). Most
        # steps give none (and a big trail has 100,000 steps): then nothing is kept.
        if kwargs and not _OPTION_NAMES.isdisjoint(kwargs):
            step._given = {key: kwargs[key] for key in OPTIONS if key in kwargs}
        return step

    def __init__(
        self,
        action_function: Callable[..., Any],
        pre_processor: Callable[[Any, Any], tuple[Sequence[Any], dict[str, Any]]] = (
            default_pre_processor
        ),
        post_processor: Callable[[Any, Any, Any], Any] = default_post_processor,
        failure_handler: Callable[[Any, Any, BaseException], Any] = default_failure_handler,
        *,
        pause_on_fail: bool = True,
        skip_progeny_on_failure: bool = False,
        timeout: float | str | None = None,
        kill_grace: float | str = 2.0,
        idempotent: bool = False,
        executor: str | None = None,
        conditional: bool = False,
        retries: int = 0,
        retry_delay: float | str = 1.0,
        backoff: float = 2.0,
        max_delay: float | str = 60.0,
        jitter: float = 0.1,
        retry_on: Callable[[BaseException], bool] | None = None,
        priority: int | float | str = 0,
        pool_size: int | None = None,
        gate: bool = False,
        **tags: Any,
    ) -> None:
        if not callable(action_function):
            raise TypeError(f"a Step needs a callable action function, not {action_function!r}")
        self.action_function = action_function
        self.pre_processor = pre_processor
        self.post_processor = post_processor
        self.failure_handler = failure_handler
        given = self._given
        # Every option is the signature's default (most steps of a big trail): nothing to
        # read (the checks are most of the cost of making a Step), nothing to keep but the
        # options every such step shares. A Step made without an option says so at once:
        # its call (``__new__`` saw it) named none. (A subclass may pass its own to this
        # ``__init__``: its steps are compared with the defaults.)
        if given is None and type(self) is Step:
            self._options = _DEFAULT_OPTIONS
            self.tags: dict[str, Any] = tags
        else:
            options = (pause_on_fail, skip_progeny_on_failure, timeout, kill_grace,
                       idempotent, executor, conditional, retries, retry_delay, backoff,
                       max_delay, jitter, retry_on, priority, pool_size, gate)
            self._options = _DEFAULT_OPTIONS
            if options != _DEFAULTS or tuple(map(type, options)) != _DEFAULT_TYPES:
                self._read_options(*options, tags)
            # An option is a tag too, with the value as written (AutoTrail's tags are
            # free-form): Step(f, priority='high') is found by list(priority='high').
            self.tags = tags if not given else {
                **{key: value for key, value in given.items() if not callable(value)},
                **tags}
        if "name" not in tags:
            self.tags["name"] = _name_of(action_function)

    def _read_options(self, pause_on_fail: Any, skip_progeny_on_failure: Any, timeout: Any,
                      kill_grace: Any, idempotent: Any, executor: Any, conditional: Any,
                      retries: Any, retry_delay: Any, backoff: Any, max_delay: Any,
                      jitter: Any, retry_on: Any, priority: Any, pool_size: Any,
                      gate: Any, tags: dict[str, Any]) -> None:
        """Check the options and keep them as trail reads them (DefinitionError if not)."""
        self.pause_on_fail = _flag("pause_on_fail", pause_on_fail)
        self.skip_progeny_on_failure = _flag("skip_progeny_on_failure", skip_progeny_on_failure)
        self.timeout = None if timeout is None else _seconds("timeout", timeout, positive=True)
        self.kill_grace = _seconds("kill_grace", kill_grace)
        self.idempotent = _flag("idempotent", idempotent)
        if executor is not None and executor not in EXECUTOR_NAMES:
            raise DefinitionError(
                f"Step option executor={executor!r} is not an executor: give one of "
                f"{', '.join(map(repr, EXECUTOR_NAMES))} (the tag names trail gives meaning to "
                f"are listed in trail.core.step.OPTIONS)")
        self.executor = executor
        self.conditional = _flag("conditional", conditional)
        self.retries = _whole("retries", retries, 0)
        self.retry_delay = _seconds("retry_delay", retry_delay)
        self.backoff = _number("backoff", backoff, 1)
        self.max_delay = _seconds("max_delay", max_delay)
        self.jitter = _number("jitter", jitter, 0, 1)
        if retry_on is not None and not callable(retry_on):
            raise DefinitionError(f"Step option retry_on={retry_on!r} must be a function of the "
                                  f"error that says whether to retry")
        self.retry_on = retry_on
        self.priority = _priority(priority)
        self.pool_size = None if pool_size is None else _whole("pool_size", pool_size, 1)
        self.gate = _flag("gate", gate)
        if pool_size is not None and "pool" not in tags:
            raise DefinitionError("pool_size needs a pool tag to size: Step(..., pool='db', "
                                  "pool_size=2)")

    @property
    def name(self) -> str:
        return str(self.tags["name"])

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Step({self.name!r})"

    def __rshift__(self, other: Step | Iterable[Step] | Chain) -> Chain:
        return Chain([], [self]) >> other

    def __rrshift__(self, other: Iterable[Step]) -> Chain:
        return Chain([], _steps_of(other)) >> self


def _name_of(function: Callable[..., Any]) -> str:
    """AutoTrail's name for an action: its ``__name__``, else ``str()`` of it.

    A ``functools.partial`` is named by the function it wraps (its ``str`` holds a memory
    address, which would change the step's name in every process).
    """
    if isinstance(function, functools.partial):
        return _name_of(function.func)
    name = getattr(function, "__name__", None)
    return name if isinstance(name, str) else str(function)


# --- option values: what a tag name trail gives meaning to must hold -----------------------

EXECUTOR_NAMES = ("process", "thread", "dask")  # layer1's executors (a test checks)

PRIORITY_WORDS = {"lowest": -2, "low": -1, "normal": 0, "medium": 0, "high": 1, "highest": 2,
                  "urgent": 2, "critical": 2}

_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|sec|min|s|m|h|d)")
_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def _bad(option: str, value: Any, want: str) -> DefinitionError:
    return DefinitionError(f"Step option {option}={value!r} is not {want} (trail reads the "
                           f"tag {option!r} as an option; see trail.core.step.OPTIONS)")


def _seconds(option: str, value: Any, positive: bool = False) -> float:
    """A duration: seconds as a number, or text such as '90', '30s', '5m', '1h30m', '250ms'."""
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION.findall(text)
            if parts and "".join(number + unit for number, unit in parts) == text:
                seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if seconds is None or seconds != seconds or seconds < 0 or (positive and seconds == 0):
        raise _bad(option, value, "a positive duration (30, '90s', '5m', '1h30m')" if positive
                   else "a duration of zero or more (30, '90s', '5m', '1h30m')")
    return seconds


def _flag(option: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _bad(option, value, "true or false")


def _whole(option: str, value: Any, least: int) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise _bad(option, value, f"a whole number >= {least}")
    return value


def _number(option: str, value: Any, least: float, most: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            least <= value <= (most if most is not None else float("inf"))):
        span = f"between {least} and {most}" if most is not None else f">= {least}"
        raise _bad(option, value, f"a number {span}")
    return float(value)


def _priority(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in PRIORITY_WORDS:
            return PRIORITY_WORDS[word]
        try:
            return float(word)
        except ValueError:
            pass
    raise _bad("priority", value, "a number (higher runs first) or one of "
               + ", ".join(PRIORITY_WORDS))


# Step's options: the tag names trail gives meaning to, besides 'name' and 'n'.
OPTIONS = ("pause_on_fail", "skip_progeny_on_failure", "timeout", "kill_grace", "idempotent",
           "executor", "conditional", "retries", "retry_delay", "backoff", "max_delay",
           "jitter", "retry_on", "priority", "pool_size", "gate")
_OPTION_NAMES = frozenset(OPTIONS)
# Their defaults, in that order, as Step's signature has them and as trail reads them; the
# types too, so that 0 is not taken for False.
_DEFAULTS = (True, False, None, 2.0, False, None, False, 0, 1.0, 2.0, 60.0, 0.1, None, 0, None,
             False)
_DEFAULT_TYPES = tuple(map(type, _DEFAULTS))
_DEFAULT_OPTIONS = _Options(_DEFAULTS)


def with_options(steps: Iterable[Step]) -> list[Step]:
    """The steps among ``steps`` that set an option, in order: every other step reads each
    option's default, so what an option does in a trail of 100,000 steps is found
    without reading it from each of them."""
    return [step for step in steps if step._options is not _DEFAULT_OPTIONS]


def _steps_of(value: Any) -> list[Step]:
    if isinstance(value, Step):
        return [value]
    if isinstance(value, Chain):
        return list(value.tail)
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"only Steps (or lists of Steps) can be linked with >>, not {value!r}")
    steps = list(value)
    for item in steps:
        if not isinstance(item, Step):
            raise TypeError(f"only Steps can be linked with >>, not {item!r}")
    return steps


class Chain:
    """What ``a >> [b, c] >> d`` builds: the (parent, child) pairs so far and the last steps.

    A Chain is a trail definition in itself; ``steps`` lists every step it touches, so a
    lone step (``Chain([], [a])``) is a trail too.
    """

    def __init__(self, pairs: list[tuple[Step, Step]], tail: list[Step]) -> None:
        self.pairs = pairs
        self.tail = tail
        self.steps: list[Step] = []
        seen: set[int] = set()
        for step in [s for pair in pairs for s in pair] + tail:
            if id(step) not in seen:
                seen.add(id(step))
                self.steps.append(step)

    def __rshift__(self, other: Step | Iterable[Step] | Chain) -> Chain:
        heads = _steps_of(other) if not isinstance(other, Chain) else _heads(other)
        pairs = [*self.pairs, *((p, c) for p in self.tail for c in heads)]
        if isinstance(other, Chain):
            return Chain(pairs + other.pairs, other.tail)
        return Chain(pairs, heads)

    def __rrshift__(self, other: Iterable[Step]) -> Chain:
        return Chain([], _steps_of(other)) >> self

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.pairs)

    def __repr__(self) -> str:
        return f"Chain({len(self.pairs)} links, ends at {[str(s) for s in self.tail]})"


def _heads(chain: Chain) -> list[Step]:
    """The steps of a chain that have no parent inside it."""
    children = {id(c) for _, c in chain.pairs}
    return [s for s in chain.steps if id(s) not in children]
