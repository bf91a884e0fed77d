"""InteractiveTrail: every API call, printed for a person, for use in a Python REPL."""

from __future__ import annotations

import builtins
import inspect
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from rich.console import Console
from rich.text import Text

from trail.errors import TrailError
from trail.layer1.calls import SPECS, CallSpec
from trail.layer2.cli.display import call_result
from trail.layer2.client import TrailClient, docstring, dress, signature, wire_arguments


class InteractiveTrail:
    """Wraps a TrailClient: each call prints its result (a table, the steps affected, a dry
    run marked as such, an error in red) and returns nothing, for a REPL.

    The call methods are generated from the table of calls (``add_repl_methods``), with the
    client's signatures.
    """

    call_names: ClassVar[tuple[str, ...]] = ()  # the generated methods, in the table's order

    def __init__(self, trail_client: TrailClient, console: Console | None = None) -> None:
        self.trail_client = trail_client
        self.console = console or Console()

    if TYPE_CHECKING:
        # The call methods are generated below; to a type checker each is a callable.
        def __getattr__(self, name: str) -> Callable[..., None]: ...


def add_repl_methods(cls: type[InteractiveTrail], specs: Iterable[CallSpec]) -> None:
    """Give ``cls`` a printing method per call in ``specs``."""
    specs = builtins.list(specs)
    for spec in specs:
        if hasattr(cls, spec.name):
            raise TypeError(f"{cls.__name__} already has an attribute {spec.name!r}")
        setattr(cls, spec.name, _method(spec, cls.__name__))
    cls.call_names = (*cls.call_names, *(spec.name for spec in specs))


def _method(spec: CallSpec, owner: str) -> Callable[..., None]:
    shape = signature(spec)

    def method(self: InteractiveTrail, *args: Any, **kwargs: Any) -> None:
        for key in kwargs:  # state="Running" would select by a tag nobody has
            if f"{key}s" in shape.parameters and key not in shape.parameters:
                self.console.print(Text(f"Error in {spec.name}: it takes {key}s=[...], a "
                                        f"list, not {key}= (which would be a tag)",
                                        style="bold red"))
                return
        values = wire_arguments(spec, shape.bind(self, *args, **kwargs))
        try:
            result = self.trail_client.call(spec.name, **values)
        except TrailError as exc:
            self.console.print(Text(f"Error in {spec.name}: {exc}", style="bold red"))
            return
        self.console.print(call_result(spec, result, values.get("dry_run", False), spec.name,
                                       "(dry_run=False)", sentences=True))

    return dress(method, spec, owner, f"{docstring(spec)}\n\nPrints the result; returns None.")


add_repl_methods(InteractiveTrail, SPECS)


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
    for name in wrapped.call_names:
        namespace[name] = getattr(wrapped, name)
    namespace["trail"] = wrapped
    try:
        namespace["names"] = Names([str(tags["name"]) for tags in trail_client.list()])
    except TrailError as exc:
        wrapped.console.print(Text(f"Could not list the steps: {exc}", style="bold red"))
    return wrapped
