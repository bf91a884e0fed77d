"""threadsafe_class: a context that concurrent steps share safely, threads and processes alike.

A step under the process executor runs in a forked copy of the server: a plain context
object changed there is changed only in the copy. A class decorated with
``threadsafe_class`` keeps its one instance in a small server process of its own
(``multiprocessing.managers``, from the standard library) and hands out a proxy; every
attribute read, write and method call goes to that one instance, one at a time under a
lock. So ``context.add(x)`` from ten parallel steps, in threads or processes, adds ten times.

Values cross by pickling: ``context.items.append(x)`` changes a copy. Change shared state
through methods (or by assigning the attribute).
"""

from __future__ import annotations

import multiprocessing
import os
import select
import threading
import time
from multiprocessing.managers import BaseManager, BaseProxy
from typing import Any, TypeVar

T = TypeVar("T")


class _Guarded:
    """The shared instance, behind one lock, as the manager process serves it."""

    def __init__(self, cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._lock = threading.RLock()
        self._target = cls(*args, **kwargs)

    def get(self, name: str) -> Any:
        with self._lock:
            value = getattr(self._target, name)
            return ("method", None) if callable(value) else ("value", value)

    def set(self, name: str, value: Any) -> None:
        with self._lock:
            setattr(self._target, name, value)

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        with self._lock:
            return getattr(self._target, name)(*args, **kwargs)

    def describe(self) -> str:
        with self._lock:
            return repr(self._target)


def _end_with_parent(parent: int) -> None:
    """In the manager process: exit when the process that started it is gone, however it
    ended (a SIGKILLed server included), so no manager outlives its trail."""

    def watch() -> None:
        try:
            pidfd = os.pidfd_open(parent)
        except (AttributeError, OSError):  # no pidfd: look at the parent now and then
            while os.getppid() == parent:
                time.sleep(0.5)
        else:
            select.select([pidfd], [], [])
        os._exit(0)

    if os.getppid() != parent:  # it died before we got here
        os._exit(0)
    threading.Thread(target=watch, name="trail-manager-watch", daemon=True).start()


class SharedProxy(BaseProxy):
    """Stands for the shared instance: attribute access and calls go to it."""

    _exposed_ = ("get", "set", "call", "describe")

    def _call(self, method: str, args: tuple[Any, ...] = ()) -> Any:
        call: Any = self._callmethod  # typeshed says it returns None; it returns the result
        return call(method, args)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        kind, value = self._call("get", (name,))
        if kind == "value":
            return value

        def method(*args: Any, **kwargs: Any) -> Any:
            return self._call("call", (name, args, kwargs))

        method.__name__ = name
        return method

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            self._call("set", (name, value))

    def __repr__(self) -> str:
        return f"<shared {self._call('describe')}>"

    __str__ = __repr__


def threadsafe_class(cls: type[T]) -> type[T]:
    """Decorate a context class so that its instances are shared by every step safely.

    The class gets a manager process of its own, started (by fork, so a class from a
    runbook script, a REPL or a function works) when the first instance is made. The
    manager ends when the process that made it does (a crash included).
    """

    class Manager(BaseManager):
        pass

    def make(*args: Any, **kwargs: Any) -> _Guarded:
        return _Guarded(cls, args, kwargs)

    Manager.register("Guarded", make, proxytype=SharedProxy)
    state: dict[str, Manager] = {}
    lock = threading.Lock()

    class Shared:
        def __new__(klass, *args: Any, **kwargs: Any) -> Any:  # noqa: N804
            with lock:
                if "manager" not in state:
                    manager = Manager(ctx=multiprocessing.get_context("fork"))
                    manager.start(initializer=_end_with_parent, initargs=(os.getpid(),))
                    state["manager"] = manager
            return state["manager"].Guarded(*args, **kwargs)  # type: ignore[attr-defined]

    Shared.__name__ = cls.__name__
    Shared.__qualname__ = cls.__qualname__
    Shared.__doc__ = cls.__doc__
    Shared.__module__ = cls.__module__
    return Shared  # type: ignore[return-value]
