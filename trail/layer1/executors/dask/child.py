"""A step's process on a Dask worker: forked by the worker's agent before its step is known.

It waits on its input pipe for the job (a flag byte, whether to capture what it prints, and
the cloudpickled step), runs the step, sends the outcome and ends. Its output pipe carries
frames tagged M (a Message for the trail) or G (a process group it adopted, which the agent
stops with it); its input pipe, after the job, the operator's replies.
"""

from __future__ import annotations

import os
import pickle
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

from trail.layer1.executors.base import Kind, TrailEnvironment
from trail.layer1.executors.process import (
    PipeChannel,
    _write_all,
    become_step_process,
    call_step,
    end_child,
    frame,
    outcome_frame,
    redirect_output,
    unframe,
)


@dataclass
class Spare:
    """A forked process waiting for its step: the job, then replies, come on ``in_w``."""

    pid: int
    in_w: int
    out_r: int
    print_r: int


def fork_spare() -> Spare:
    """Fork a step's process that waits for its step."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    print_r, print_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(in_r, out_w, print_w)
    for fd in (in_r, out_w, print_w):
        os.close(fd)
    os.set_blocking(out_r, False)
    os.set_blocking(print_r, False)
    return Spare(pid, in_w, out_r, print_r)


def take_spare(spare: Spare | None) -> Spare:
    """The process forked ahead of time, if it is still there; else one forked now."""
    if spare is not None and os.waitpid(spare.pid, os.WNOHANG)[0] == 0:
        return spare
    if spare is not None:  # someone killed it
        for fd in (spare.in_w, spare.out_r, spare.print_r):
            os.close(fd)
    return fork_spare()


def job(payload: bytes, capture: bool) -> bytes:
    """The frame that hands a spare its step."""
    return frame((b"1" if capture else b"0") + payload)


class _ChildChannel(PipeChannel):
    """The step's end: frames tagged M (a message for the trail) or G (a process group the
    agent stops with the step, and the seconds it waits first, if the step stops it
    itself first)."""

    def send(self, kind: str, payload: Any) -> None:
        if kind == Kind.GROUP:  # the agent stops it with the step (the group is here)
            pgid, after = payload if isinstance(payload, tuple) else (payload, None)
            text = str(int(pgid)) if after is None else f"{int(pgid)} {float(after)}"
            _write_all(self._out, frame(b"G" + text.encode()))
            if after is not None:  # the step stops it itself first: the trail waits so long
                _write_all(self._out, frame(b"M" + pickle.dumps((kind, (None, after)))))
        else:
            _write_all(self._out, frame(b"M" + pickle.dumps((kind, payload))))


def _child(in_r: int, out_w: int, print_w: int) -> NoReturn:
    """A step's process, forked before its step is known: waits for the job, runs it, and
    never returns."""

    def body() -> None:
        become_step_process()
        _close_all_but(in_r, out_w, print_w)
        null = os.open(os.devnull, os.O_RDONLY)  # not the agent's stdin (the worker's pipe)
        os.dup2(null, 0)
        os.close(null)
        buffer = bytearray()
        while not (job := unframe(buffer)):
            chunk = os.read(in_r, 1 << 16)
            if not chunk:
                return  # the agent went away before handing a step over
            buffer += chunk
        if job[0][:1] == b"1":
            redirect_output(print_w)
        else:
            os.close(print_w)
        channel = _ChildChannel(out_w, in_r)
        channel._buffer = buffer  # replies that came with the job
        outcome = call_step(_load, (job[0][1:], channel), {})
        if outcome.ok:
            function, args, kwargs = outcome.value
            outcome = call_step(function, args, kwargs)
        _write_all(out_w, frame(b"M" + outcome_frame(outcome)[4:]))

    end_child(body)


def _load(payload: bytes, channel: _ChildChannel) -> tuple[Any, Any, dict[str, Any]]:
    """The step's function and arguments, its ``trail_env`` talking through ``channel``."""
    import cloudpickle

    function, args, kwargs = cloudpickle.loads(payload)
    if args and isinstance(args[0], TrailEnvironment):
        args = (TrailEnvironment(channel), *args[1:])
    kwargs = {k: TrailEnvironment(channel) if isinstance(v, TrailEnvironment) else v
              for k, v in kwargs.items()}
    return function, args, kwargs


def _close_all_but(*keep: int) -> None:
    """Close every inherited descriptor (the links, the tasks' sockets) but ``keep`` and the
    standard three."""
    # Ranges between the kept ones: one close_range call each where the kernel has it.
    low = 3
    for fd in sorted(fd for fd in keep if fd >= low):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))
