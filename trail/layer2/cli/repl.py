"""InteractiveTrail: every TrailClient call, printed for a person, for use in a Python REPL."""

from __future__ import annotations

import builtins
import inspect
import re
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.text import Text

from trail.errors import TrailError
from trail.layer2.cli.display import affected_text, status_table
from trail.layer2.client import TrailClient

MUTATING = (
    "start", "stop", "pause", "pause_branch", "interrupt", "resume", "resume_branch",
    "next_step", "skip", "unskip", "block", "unblock", "rerun", "set_pause_on_fail",
    "unset_pause_on_fail", "send_message_to_steps",
)
CALLS = ("status", "steps_waiting_for_user_input", "list", "shutdown", *MUTATING)


class InteractiveTrail:
    """Wraps a TrailClient: each call prints its result (a table, the steps affected, a dry
    run marked as such, an error in red) and returns nothing, for a REPL."""

    def __init__(self, trail_client: TrailClient, console: Console | None = None) -> None:
        self.trail_client = trail_client
        self.console = console or Console()

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.trail_client, method)(*args, **kwargs)
        except TrailError as exc:
            self.console.print(Text(f"Error in {method}: {exc}", style="bold red"))
            return None

    def _mutate(self, method: str, *args: Any, **kwargs: Any) -> None:
        result = self._call(method, *args, **kwargs)
        if result is not None:
            dry_run = kwargs.get("dry_run", method != "start")
            self.console.print(affected_text(method, result, dry_run))

    def status(self, fields: builtins.list[str] | None = None,
               states: builtins.list[str] | None = None, **tags: Any) -> None:
        rows = self._call("status", fields=fields, states=states, **tags)
        if rows is not None:
            self.console.print(status_table(rows) if rows else "No step matches.")

    def steps_waiting_for_user_input(self, **tags: Any) -> None:
        rows = self._call("steps_waiting_for_user_input", **tags)
        if rows is not None:
            self.console.print(status_table(rows) if rows else "No step is waiting for input.")

    def list(self, **tags: Any) -> None:
        rows = self._call("list", **tags)
        if rows is not None:
            self.console.print(status_table(rows) if rows else "No step matches.")

    def shutdown(self, dry_run: bool = True) -> None:
        done = self._call("shutdown", dry_run=dry_run)
        if done:
            self.console.print("The trail server is shutting down.")
        elif done is not None:
            self.console.print(Text.assemble(("DRY RUN ", "bold yellow reverse"),
                                             "shutdown(dry_run=False) would stop the server."))

    def start(self, dry_run: bool = False, **tags: Any) -> None:
        self._mutate("start", dry_run=dry_run, **tags)

    def stop(self, dry_run: bool = True, **tags: Any) -> None:
        self._mutate("stop", dry_run=dry_run, **tags)

    def next_step(self, step_count: int = 1, dry_run: bool = True) -> None:
        self._mutate("next_step", step_count=step_count, dry_run=dry_run)

    def send_message_to_steps(self, message: Any, dry_run: bool = True, **tags: Any) -> None:
        self._mutate("send_message_to_steps", message, dry_run=dry_run, **tags)

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name not in MUTATING:
            raise AttributeError(name)

        def call(dry_run: bool = True, **tags: Any) -> None:
            self._mutate(name, dry_run=dry_run, **tags)

        call.__name__ = name
        call.__doc__ = getattr(TrailClient, name).__doc__
        return call

    def __dir__(self) -> builtins.list[str]:
        return sorted({*super().__dir__(), *CALLS})


class Names:
    """Step names as attributes, for completion in a REPL: ``names.deploy_web``."""

    def __init__(self, names: list[str]) -> None:
        for name in names:
            self.__dict__[re.sub(r"^\d|\W", "_", name)] = name

    def __repr__(self) -> str:
        return f"Names({', '.join(sorted(self.__dict__))})"


def interactive(trail_client: TrailClient, namespace: dict[str, Any] | None = None,
                console: Console | None = None) -> InteractiveTrail:
    """Put every call (status, pause, resume, ...) into ``namespace`` as a plain function.

    ``namespace`` defaults to the caller's globals, so in a REPL ``interactive(client)``
    lets you type ``status()`` or ``pause(name="deploy", dry_run=False)``. Also binds
    ``names`` (step names as attributes) and ``trail`` (the InteractiveTrail).
    """
    if namespace is None:
        frame = inspect.currentframe()
        assert frame is not None and frame.f_back is not None
        namespace = frame.f_back.f_globals
    wrapped = InteractiveTrail(trail_client, console)
    for name in CALLS:
        namespace[name] = getattr(wrapped, name)
    namespace["trail"] = wrapped
    try:
        namespace["names"] = Names([str(tags["name"]) for tags in trail_client.list()])
    except TrailError as exc:
        wrapped.console.print(Text(f"Could not list the steps: {exc}", style="bold red"))
    return wrapped
