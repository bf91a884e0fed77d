"""InteractiveTrail: every API call, printed for a person; ``interactive``: a REPL with them."""

from __future__ import annotations

import builtins
import code
import inspect
import re
import sys
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, Any, ClassVar

from rich.console import Console
from rich.text import Text

from trail.errors import TrailError
from trail.layer1.calls import SPECS, Call, CallSpec, Result
from trail.layer2.cli.display import call_result
from trail.layer2.client import TrailClient, docstring, dress, signature, wire_arguments


class InteractiveTrail:
    """Wraps a TrailClient: each call prints its result (a table, the steps affected, a dry
    run marked as such, an error in red) and returns nothing, for a REPL.

    The call methods are generated from the table of calls (``add_repl_methods``), with the
    client's signatures. AutoTrail's keyword arguments are taken: ``stdout`` and
    ``stderr`` (streams for results and for errors; the second positional argument may be
    either a stream or a rich Console), and printers that replace trail's display for one
    kind of result, called as AutoTrail calls them: ``status_printer(rows, stdout)``,
    ``step_list_printer(tags, stdout)``, ``affected_steps_printer(call, steps, dry_run,
    stdout)``, ``error_printer(call, message, stderr)``, ``no_result_printer(call,
    stderr)`` (an empty result) and ``generic_printer(call, result, stdout)``.
    """

    call_names: ClassVar[tuple[str, ...]] = ()  # the generated methods, in the table's order

    def __init__(self, trail_client: TrailClient, console: Console | IO[str] | None = None,
                 *, stdout: IO[str] | None = None, stderr: IO[str] | None = None,
                 **printers: Callable[..., Any] | None) -> None:
        unknown = set(printers) - set(PRINTERS)
        if unknown:
            raise TypeError(f"InteractiveTrail got unexpected keyword arguments "
                            f"{', '.join(sorted(unknown))}; printers: {', '.join(PRINTERS)}")
        if console is not None and not isinstance(console, Console):
            stdout = stdout or console  # AutoTrail's second positional argument: stdout
            console = None
        self.trail_client = trail_client
        self.console = console or (Console(file=stdout) if stdout else Console())
        self.error_console = Console(file=stderr, stderr=True) if stderr else self.console
        self.stdout: IO[str] = stdout or self.console.file
        self.stderr: IO[str] = stderr or self.error_console.file
        self.printers = {name: printer for name, printer in printers.items() if printer}

    def show(self, spec: CallSpec, result: Any, dry_run: bool) -> None:
        """Print one call's result: through a printer given for its kind, else trail's way."""
        printer = self.printers.get(_printer_for(spec))
        if not result and "no_result_printer" in self.printers and spec.result is not \
                Result.DONE:
            self.printers["no_result_printer"](spec.name, self.stderr)
        elif printer is not None and spec.result is Result.STEPS:
            printer(spec.name, result, dry_run, self.stdout)
        elif printer is not None and spec.result is Result.ROWS:
            printer(result, self.stdout)
        elif printer is not None:
            printer(spec.name, result, self.stdout)
        else:
            self.console.print(call_result(spec, result, dry_run, spec.name,
                                           "(dry_run=False)", sentences=True))

    def show_error(self, spec: CallSpec, error: TrailError) -> None:
        printer = self.printers.get("error_printer")
        if printer is not None:
            printer(spec.name, str(error), self.stderr)
        else:
            self.error_console.print(Text(f"Error in {spec.name}: {error}", style="bold red"))

    if TYPE_CHECKING:
        # The call methods are generated below; to a type checker each is a callable.
        def __getattr__(self, name: str) -> Callable[..., None]: ...


PRINTERS = ("status_printer", "affected_steps_printer", "step_list_printer", "error_printer",
            "no_result_printer", "generic_printer")


def _printer_for(spec: CallSpec) -> str:
    """Which of AutoTrail's printers shows this call's result."""
    if spec.name == Call.LIST:
        return "step_list_printer"
    if spec.result is Result.ROWS:
        return "status_printer"
    if spec.result is Result.STEPS:
        return "affected_steps_printer"
    return "generic_printer"


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
            self.show_error(spec, exc)
            return
        self.show(spec, result, values.get("dry_run", False))

    return dress(method, spec, owner, f"{docstring(spec)}\n\nPrints the result; returns None.")


add_repl_methods(InteractiveTrail, SPECS)


class Names:
    """Step names as attributes, for completion in a REPL: ``names.deploy_web``."""

    def __init__(self, names: list[str]) -> None:
        for name in names:
            self.__dict__[re.sub(r"^\d|\W", "_", name)] = name

    def __repr__(self) -> str:
        return f"Names({', '.join(sorted(self.__dict__))})"


def bind_calls(trail_client: TrailClient, namespace: dict[str, Any] | None = None,
               console: Console | None = None) -> InteractiveTrail:
    """Put every call (status, pause, resume, ...) into ``namespace`` as a plain function.

    ``namespace`` defaults to the caller's globals, so in a REPL ``bind_calls(client)``
    lets you type ``status()`` or ``pause(name="deploy", dry_run=False)``. Also binds
    ``names`` (step names as attributes) and ``trail`` (the InteractiveTrail). This is what
    ``trail attach`` offers.
    """
    if namespace is None:
        frame = inspect.currentframe()
        assert frame is not None and frame.f_back is not None
        namespace = frame.f_back.f_globals
    wrapped = InteractiveTrail(trail_client, console)
    _bind(wrapped, namespace, replace=True)
    return wrapped


def _bind(wrapped: InteractiveTrail, namespace: dict[str, Any], replace: bool) -> None:
    calls = {name: getattr(wrapped, name) for name in wrapped.call_names}
    calls["trail"] = wrapped
    try:
        calls["names"] = Names([str(tags["name"]) for tags in wrapped.trail_client.list()])
    except TrailError as exc:
        wrapped.error_console.print(Text(f"Could not list the steps: {exc}", style="bold red"))
    for name, value in calls.items():
        if replace or name not in namespace:
            namespace[name] = value


def interactive(namespace_dict: dict[str, Any] | TrailClient,
                trail: InteractiveTrail | TrailClient | dict[str, Any] | None = None,
                prompt: str | Console = "trail>", console: Console | None = None) -> Any:
    """Start a Python REPL on a copy of ``namespace_dict`` (AutoTrail's ``interactive``).

    ``interactive(globals(), prompt='Ops>')`` gives the person at the prompt every name the
    script defined, with Tab completion, until Ctrl-D; it returns None then. The calls of
    the trail (``trail``, or else the one InteractiveTrail or TrailClient the namespace
    holds) are there too as functions that print, ``status()``, ``pause(n=3,
    dry_run=False)``, ... unless the script already uses the name, and ``names`` completes
    step names. The REPL's names do not leak back into ``namespace_dict``.

    ``interactive(trail_client, namespace=None, console=None)``, a TrailClient first, is
    ``bind_calls``: it binds the calls into ``namespace`` and returns at once.
    """
    if isinstance(namespace_dict, TrailClient):
        bound = trail if isinstance(trail, dict) else None
        if bound is None:
            frame = inspect.currentframe()
            assert frame is not None and frame.f_back is not None
            bound = frame.f_back.f_globals
        if isinstance(prompt, Console):  # interactive(client, namespace, console)
            console = prompt
        return bind_calls(namespace_dict, bound, console)
    if not isinstance(namespace_dict, dict):
        raise TypeError(f"interactive() takes a namespace dict (globals()) or a TrailClient, "
                        f"not {namespace_dict!r}")
    namespace = dict(namespace_dict)
    wrapped = _the_trail(namespace, trail, console)
    if wrapped is not None:
        _bind(wrapped, namespace, replace=False)
    _completion(namespace)
    old_prompt = getattr(sys, "ps1", None)
    sys.ps1 = f"{prompt} "
    try:
        code.InteractiveConsole(namespace).interact(
            banner="trail REPL: the script's names are here" + (
                "; status(), start(), pause(n=..., dry_run=False), help(trail) for the rest"
                if wrapped is not None else "") + ". Ctrl-D leaves.", exitmsg="")
    finally:
        if old_prompt is None:
            del sys.ps1
        else:
            sys.ps1 = old_prompt
    return None


def _the_trail(namespace: dict[str, Any], trail: Any,
               console: Console | None) -> InteractiveTrail | None:
    """The trail whose calls the REPL offers: ``trail``, or the one the namespace holds."""
    if trail is None:
        for kind in (InteractiveTrail, TrailClient):
            found = {id(v): v for v in namespace.values() if isinstance(v, kind)}
            if len(found) == 1:
                trail = next(iter(found.values()))
                break
    if isinstance(trail, InteractiveTrail):
        return trail
    if isinstance(trail, TrailClient):
        return InteractiveTrail(trail, console)
    if trail is not None:
        raise TypeError(f"interactive()'s trail must be a TrailClient or InteractiveTrail, "
                        f"not {trail!r}")
    return None


def _completion(namespace: dict[str, Any]) -> None:
    """Tab completes the namespace's names, where readline is available."""
    try:
        import readline
        import rlcompleter
    except ImportError:  # no readline (Windows, some builds): the REPL works without
        return
    readline.set_completer(rlcompleter.Completer(namespace).complete)
    readline.parse_and_bind("tab: complete")
