"""The durable context: what steps put in the context, saved attribute by attribute.

A context is saved as its parts: an object's attributes (``vars``), a dict's items, or,
for a ``threadsafe_class`` context, its shared instance's attributes (fetched from its
manager process through ``__trail_state__``). Each part is pickled on its own, so one part
that cannot be pickled (a lock, an open connection) is named once at the start and left
out, and the rest is still saved.

Where it flows:
- thread executor: steps change the server's own context; the run saves it when a step
  ends, in the same journal transaction as the step's end.
- process executor: a step runs in a forked copy of the server; the child compares the
  context's parts before and after the action and sends the changed ones back with its
  result (``Outcome.context``); the server applies them to its context, so the next step
  sees them, whatever executor it runs on. Two parallel steps that change the same part:
  the last to end wins (a ``threadsafe_class`` context is shared live instead).
- take-up after a crash: the saved parts are put back into the freshly made context
  before any step runs.
"""

from __future__ import annotations

import logging
import pickle
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trail.layer1.journal import JournalRun

log = logging.getLogger(__name__)

Parts = dict[str, bytes]  # part name -> pickled value


def _shared(context: Any) -> bool:
    return hasattr(type(context), "__trail_state__")


def parts_of(context: Any) -> dict[str, Any] | None:
    """The context's parts by name, or None for a context that has none (None, an int)."""
    if context is None:
        return None
    if _shared(context):
        return dict(context.__trail_state__())
    if isinstance(context, dict):
        source: Any = context
    elif hasattr(context, "__dict__"):
        source = vars(context)
    else:
        return None
    for _ in range(5):  # a step's thread may change it while it is copied
        try:
            return {str(name): value for name, value in source.items()
                    if not str(name).startswith("__")}
        except RuntimeError:
            continue
    return None


def problems(context: Any) -> list[str]:
    """One line per part of the context that cannot be saved: which and why."""
    if hasattr(type(context), "__trail_unsaveable__"):
        return [f"context attribute {name!r} cannot be saved ({why}); it will not survive "
                f"a crash" for name, why in context.__trail_unsaveable__().items()]
    parts = parts_of(context)
    if parts is None:
        if context is None or isinstance(context, (int, float, str, bytes, bool, tuple)):
            return []
        return [f"the context ({type(context).__name__}) cannot be saved: it has no "
                f"attributes to save (use an object, a dict or a threadsafe_class)"]
    found = []
    for name, value in parts.items():
        try:
            pickle.loads(pickle.dumps(value))
        except Exception as exc:
            found.append(f"context attribute {name!r} cannot be saved ({exc}); it will not "
                         f"survive a crash")
    return found


def snapshot(context: Any) -> Parts:
    """The parts that can be saved, pickled."""
    saved: Parts = {}
    for name, value in (parts_of(context) or {}).items():
        try:
            saved[name] = pickle.dumps(value)
        except Exception:
            continue  # named at the start (problems)
    return saved


# A part a step deleted (``del context.x``): no pickle is empty.
DELETED = b""


def changed(before: Parts, after: Parts) -> Parts:
    """The parts that differ, a deleted one as DELETED (so it is deleted from the journal
    too: a take-up must not bring it back)."""
    parts = {name: data for name, data in after.items() if before.get(name) != data}
    parts.update({name: DELETED for name in before if name not in after})
    return parts


def apply(context: Any, parts: Parts) -> None:
    """Put saved (or sent back) parts into the context; a DELETED part is removed."""
    if not parts or context is None:
        return
    loaded = {name: pickle.loads(data) for name, data in parts.items() if data != DELETED}
    gone = [name for name, data in parts.items() if data == DELETED]
    if _shared(context):
        context.__trail_restore__(loaded)  # shared live: a deletion there is seen already
    elif isinstance(context, dict):
        context.update(loaded)
        for name in gone:
            context.pop(name, None)
    else:
        for name, value in loaded.items():
            setattr(context, name, value)
        for name in gone:
            if name in vars(context):
                delattr(context, name)


def after_fork(context: Any) -> None:
    """In a forked step: let a shared context drop what it shares with the server."""
    if hasattr(type(context), "__trail_after_fork__"):
        context.__trail_after_fork__()


def tracked(context: Any) -> bool:
    """Whether a forked step must send back what it changed (not so for a shared one)."""
    return context is not None and not _shared(context) and parts_of(context) is not None


class DurableContext:
    """A run's context and what of it the journal holds: the parts saved, and whether a
    step may have changed it since (``dirty``: saved at the next ``save``)."""

    def __init__(self, context: Any, journal: JournalRun | None) -> None:
        self.context = context
        self.journal = journal
        self.dirty = False
        self._saved: Parts = {}

    def save_from_start(self) -> list[str]:
        """A new run: save the whole context at the next commit; return what of it cannot
        be saved."""
        self.dirty = True
        return problems(self.context)

    def restore(self, cause: str) -> None:
        """A run taken up: put back what the steps had put in the context."""
        if self.journal is None:
            return
        saved = self.journal.saved_context()
        apply(self.context, saved)
        self._saved = dict(saved)
        self.dirty = True  # parts the new context has and the old did not
        if saved:
            log.info("context restored (%s): %s", cause, ", ".join(sorted(saved)))

    def changed(self, parts: Parts) -> None:
        """A step in a copy of the context (a forked process) changed these parts."""
        apply(self.context, parts)
        self.dirty = True

    def save(self) -> None:
        """Journal the parts changed since the last save (in the wake-up's transaction)."""
        if not self.dirty:
            return
        self.dirty = False
        if self.journal is not None:
            now = snapshot(self.context)
            self.journal.save_context(changed(self._saved, now))
            self._saved = now
