"""Step: a description of one unit of work in a trail, and the ``>>`` operator that links steps.

A Step holds what to run and how (function, processors, options, tags). It holds no run-time
state: the manager keeps that in its own record of the run, so one Step object is safe to
describe a step in any number of trails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from trail.core.states import State


def default_pre_processor(trail_env: Any, context: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Call the action function as ``f(trail_env, context)``."""
    return (trail_env, context), {}


def default_post_processor(trail_env: Any, context: Any, return_value: Any) -> Any:
    """Keep the action function's return value."""
    return return_value


def default_failure_handler(trail_env: Any, context: Any, exception: BaseException) -> Any:
    """Keep the exception as the step's return value."""
    return exception


class Step:
    """One step of a trail.

    ``action_function(trail_env, context)`` does the work (the pre-processor can change the
    arguments). ``pre_processor``, ``post_processor`` and ``failure_handler`` run in the
    manager, so keep them quick. Keyword arguments other than the options are tags; ``name``
    defaults to the function's name; its number ``n`` belongs to each trail it is in.

    Options beyond AutoTrail's: ``timeout`` (seconds; the step is stopped and fails with
    StepTimeoutError), ``kill_grace`` (seconds between SIGTERM and SIGKILL when the step is
    stopped), ``idempotent`` (safe to run again after a crash), ``executor`` ('process' or
    'thread', overriding the server's), ``conditional`` (a return value of False skips the
    step's strict progeny: the branch it guards), ``retries`` (run again after a failure,
    up to that many times, ``retry_delay * backoff ** k`` seconds later, capped at
    ``max_delay``, give or take ``jitter`` of it; only for errors ``retry_on`` accepts, if
    given), ``priority`` (higher runs first when ``max_parallel`` or a pool is short),
    ``pool_size`` (how many steps tagged with this step's ``pool`` may run at once, when
    the server's ``pools`` does not say; steps of one pool must agree on it).
    """

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
        timeout: float | None = None,
        kill_grace: float = 2.0,
        idempotent: bool = False,
        executor: str | None = None,
        conditional: bool = False,
        retries: int = 0,
        retry_delay: float = 1.0,
        backoff: float = 2.0,
        max_delay: float = 60.0,
        jitter: float = 0.1,
        retry_on: Callable[[BaseException], bool] | None = None,
        priority: int = 0,
        pool_size: int | None = None,
        **tags: Any,
    ) -> None:
        if not callable(action_function):
            raise TypeError(f"a Step needs a callable action function, not {action_function!r}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"a step's timeout must be a positive number of seconds: {timeout!r}")
        if not kill_grace >= 0:
            raise ValueError(f"kill_grace must be zero or more seconds: {kill_grace!r}")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a whole number >= 0: {retries!r}")
        if not (retry_delay >= 0 and backoff >= 1 and max_delay >= 0 and 0 <= jitter <= 1):
            raise ValueError("retry_delay and max_delay must be >= 0, backoff >= 1, and "
                             "jitter between 0 and 1")
        if pool_size is not None and (not isinstance(pool_size, int) or pool_size < 1):
            raise ValueError(f"pool_size must be a whole number >= 1: {pool_size!r}")
        if pool_size is not None and "pool" not in tags:
            raise ValueError("pool_size needs a pool tag to size: Step(..., pool='db', "
                             "pool_size=2)")
        self.action_function = action_function
        self.pre_processor = pre_processor
        self.post_processor = post_processor
        self.failure_handler = failure_handler
        self.pause_on_fail = pause_on_fail
        self.skip_progeny_on_failure = skip_progeny_on_failure
        self.timeout = timeout
        self.kill_grace = kill_grace
        self.idempotent = idempotent
        self.executor = executor
        self.conditional = conditional
        self.retries = retries
        self.retry_delay = retry_delay
        self.backoff = backoff
        self.max_delay = max_delay
        self.jitter = jitter
        self.retry_on = retry_on
        self.priority = priority
        self.pool_size = pool_size
        self.tags: dict[str, Any] = dict(tags)
        self.tags.setdefault("name", _name_of(action_function))

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
    name = getattr(function, "__name__", None)
    if isinstance(name, str) and name != "<lambda>":
        return name
    inner = getattr(function, "func", None)  # functools.partial
    if inner is not None:
        return _name_of(inner)
    return name or type(function).__name__


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
