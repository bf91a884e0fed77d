"""The parts of a rolling update (``rolling`` and ``on_hosts(batch=...)`` in ``hosts.py``):
how a fleet is cut into batches, how many failed hosts a batch may have, and the gate step
after each batch that counts them and lets the rollout go on, asks, or stops it.

A gate is a ``Step(gate=True)``: the engine runs it once every step of its batch has
settled, failed ones included, and hands it the names of the failed ones
(``trail_env.failed_above``). The failed host steps stay Failed; the gate's own value says
what it decided and why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from trail.core.step import Chain, Step
from trail.errors import RolloutStoppedError

Size = int | str  # a number of hosts, or a percentage of the fleet: "20%"

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
YES = frozenset({"true", "yes", "y", "go", "go on", "continue", "ok"})
NO = frozenset({"false", "no", "n", "stop"})


def _percent(value: Any) -> float | None:
    match = _PERCENT.match(value) if isinstance(value, str) else None
    return float(match.group(1)) if match else None


def host_count(option: str, value: Size, fleet: int, least: int = 1) -> int:
    """A size in hosts: a whole number, or a percentage of ``fleet`` hosts (rounded down,
    at least ``least``)."""
    percent = _percent(value)
    if percent is not None and 0 < percent <= 100:
        return max(least, int(fleet * percent / 100))
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{option} must be a whole number >= {least} or a percentage such as "
                         f"'20%': {value!r}")
    return value


def cut_into_batches(hosts: Sequence[str], batch: Size | Sequence[Size] | None,
                     canary: Size | None) -> list[tuple[str, list[str]]]:
    """The batches in order, each ``(label, hosts)``: the canary first (if any), then
    batches of ``batch`` hosts (a list of sizes ramps up: ``[1, 5, "20%"]``, the last one
    repeating), all the rest in one batch when ``batch`` is None. Percentages are of the
    whole fleet."""
    fleet = len(hosts)
    rest = list(hosts)
    batches: list[tuple[str, list[str]]] = []
    if canary is not None:
        size = host_count("canary", canary, fleet)
        if size >= fleet:
            raise ValueError(f"canary={canary!r} takes every host ({fleet}): leave some for "
                             "the batches, or give batch= alone")
        batches.append(("canary", rest[:size]))
        rest = rest[size:]
    if batch is None:
        sizes = [len(rest)]
    elif isinstance(batch, (list, tuple)):
        if not batch:
            raise ValueError("batch= got an empty list of sizes")
        sizes = [host_count("batch", size, fleet) for size in batch]
    else:
        sizes = [host_count("batch", batch, fleet)]  # type: ignore[arg-type]
    number = 0
    while rest:
        size = sizes[min(number, len(sizes) - 1)]
        number += 1
        batches.append((f"batch {number}", rest[:size]))
        rest = rest[size:]
    return batches


def check_max_fail(max_fail: Size) -> Size:
    """``max_fail``: how many hosts of a batch may fail (0: none), or a percentage."""
    percent = _percent(max_fail)
    if percent is not None and percent <= 100:
        return max_fail
    if isinstance(max_fail, bool) or not isinstance(max_fail, int) or max_fail < 0:
        raise ValueError(f"max_fail must be a whole number >= 0 or a percentage such as "
                         f"'20%': {max_fail!r}")
    return max_fail


def too_many(failed: int, total: int, max_fail: Size) -> bool:
    """More than ``max_fail`` (a number, or a percentage of ``total``) hosts failed."""
    percent = _percent(max_fail)
    if percent is not None:
        return failed * 100 > percent * total
    return failed > int(max_fail)


class BatchGate:
    """The gate after one batch of a rollout: counts the batch's failed hosts; within
    ``max_fail`` the rollout goes on; beyond it, it asks the operator whether to go on
    (``on_max_fail="ask"``) or stops the rollout (RolloutStoppedError: the gate fails and
    nothing below it runs). A canary's gate allows no failure and never asks."""

    def __init__(self, rollout: str, label: str, hosts: list[str], host_of: dict[str, str],
                 max_fail: Size, on_max_fail: str, batches: int) -> None:
        self.name = self.__name__ = f"{rollout}/{label.replace(' ', '')}"
        self.rollout = rollout
        self.label = label
        self.hosts = hosts
        self.host_of = host_of  # step name -> host, for this batch's steps
        self.max_fail = 0 if label == "canary" else max_fail
        self.ask = on_max_fail == "ask" and label != "canary"
        self.batches = batches

    def __str__(self) -> str:
        return self.name

    def __call__(self, trail_env: Any, context: Any) -> str:
        failed = {self.host_of[name] for name in trail_env.failed_above
                  if name in self.host_of}
        failed_hosts = [host for host in self.hosts if host in failed]
        where = ("the canary" if self.label == "canary"
                 else f"{self.label} of {self.batches}")
        summary = f"{len(failed_hosts)} of {len(self.hosts)} hosts of {where} failed"
        if failed_hosts:
            summary += f" ({', '.join(failed_hosts)})"
        if not too_many(len(failed_hosts), len(self.hosts), self.max_fail):
            trail_env.output(f"{summary}: the rollout goes on")
            return summary
        limit = f"max_fail={self.max_fail}" if self.label != "canary" else "a canary"
        if not self.ask:
            trail_env.output(f"{summary}, more than {limit} allows: the rollout stops")
            raise RolloutStoppedError(self.rollout, f"{summary}, more than {limit} allows")
        while True:
            reply = trail_env.input(f"{summary}, more than {limit} allows. Go on with the "
                                    f"rollout? yes / no")
            word = str(reply).strip().lower() if not isinstance(reply, bool) else \
                ("yes" if reply else "no")
            if word in YES:
                trail_env.output(f"{summary}: the operator went on")
                return f"{summary}; the operator went on"
            if word in NO:
                trail_env.output(f"{summary}: the operator stopped the rollout")
                raise RolloutStoppedError(self.rollout, f"{summary}; the operator stopped it")
            trail_env.output(f"{reply!r} is neither yes nor no")


class Rollout(Chain):
    """What ``rolling`` builds: a chain (link it with ``>>`` like any), plus its plan.

    ``batches`` lists ``(label, hosts)`` in order ("canary", "batch 1", ...), ``gates`` the
    gate step after each batch, ``host_steps`` each host's phase steps in order.
    """

    def __init__(self, pairs: list[tuple[Step, Step]], tail: list[Step],
                 batches: list[tuple[str, list[str]]], gates: list[Step],
                 host_steps: dict[str, list[Step]]) -> None:
        super().__init__(pairs, tail)
        self.batches = batches
        self.gates = gates
        self.host_steps = host_steps

    def __repr__(self) -> str:
        return (f"Rollout({len(self.host_steps)} hosts in {len(self.batches)} batches, "
                f"ends at {self.tail[0]})")


def batch_tags(rollout: str, label: str) -> dict[str, Any]:
    """The tags of a batch's steps: ``rollout=name``, ``batch=2`` (or "canary")."""
    return {"rollout": rollout, "batch": "canary" if label == "canary" else int(label.split()[1])}


def link_batches(rollout: str, plan: list[tuple[str, list[str]]],
                 chains: Mapping[str, list[Step]], max_fail: Size,
                 on_max_fail: str = "ask") -> Rollout:
    """Link each host's steps (``chains[host]``, in order) into the batches of ``plan``: a
    gate after every batch, the next batch's first steps below it."""
    pairs: list[tuple[Step, Step]] = []
    gates: list[Step] = []
    gate: Step | None = None
    numbered = sum(1 for label, _ in plan if label != "canary")
    for label, batch_hosts in plan:
        host_of: dict[str, str] = {}
        lasts: list[Step] = []
        for host in batch_hosts:
            above = gate
            for step in chains[host]:
                host_of[step.name] = host
                if above is not None:
                    pairs.append((above, step))
                above = step
            assert above is not None, f"no steps for {host}"
            lasts.append(above)
        decide = BatchGate(rollout, label, batch_hosts, host_of, max_fail, on_max_fail,
                           numbered)
        gate = Step(decide, name=decide.name, gate=True, executor="thread",
                    pause_on_fail=False, **batch_tags(rollout, label))
        pairs.extend((last, gate) for last in lasts)
        gates.append(gate)
    assert gate is not None
    return Rollout(pairs, [gate], plan, gates, {host: list(chains[host]) for host in chains})
