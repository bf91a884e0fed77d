"""Each step's full output in a file of its own, capped and rotated, for ``trail logs``.

Status, events and the journal keep a bounded tail of what a step said; the whole of it is
written here as it arrives: ``<dir>/<prefix><n>.log`` (0600, in a 0700 directory). When
the file would grow past half the cap it becomes ``<prefix><n>.log.1`` (replacing the one
before) and a new file begins, so a step takes at most the cap on disk and ``trail logs``
shows at least the newest half of it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from trail.layer1 import forks, values
from trail.layer1.sockets import ensure_private_dir

log = logging.getLogger(__name__)

DEFAULT_STEP_LOG_BYTES = 10 << 20  # 10 MiB per step, its one rotated file included
STEP_LOG_BYTES_ENV = "TRAIL_STEP_LOG_BYTES"
ROTATED = ".1"
FLUSH_AFTER = 0.2  # seconds: what a step said reaches its file (and `trail logs -f`) by then


def step_log_bytes(value: int | None = None) -> int:
    """The cap: ``value``, else ``$TRAIL_STEP_LOG_BYTES``, else 10 MiB; 0 writes no files."""
    if value is None:
        text = os.environ.get(STEP_LOG_BYTES_ENV, "").strip()
        if not text:
            return DEFAULT_STEP_LOG_BYTES
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{STEP_LOG_BYTES_ENV} must be a number of bytes, not "
                             f"{text!r}") from None
    if value < 0:
        raise ValueError(f"step_log_bytes must be 0 (no step logs) or more: {value!r}")
    return value


DEFAULT_JOURNAL_NAME = "journal.sqlite3"


def directory_for(journal: str | Path | None, socket_file: str) -> Path:
    """Where a run's step logs go: beside the journal, ``steps/`` for the default journal
    (``journal.sqlite3``) and ``<file name>.steps/`` for any other, so that two journals in
    one directory, each with its run 1, never write to the same files; without a journal,
    ``<socket>.steps``."""
    if journal is not None:
        path = Path(journal)
        if path.name == DEFAULT_JOURNAL_NAME:
            return path.parent / "steps"
        return path.parent / f"{path.name}.steps"
    return Path(socket_file + ".steps")


def directory_to_read(journal: str | Path) -> Path:
    """Where a journal's step logs are: ``directory_for``'s, or ``steps/`` for a journal of
    another name whose runs were written before each journal had its own."""
    directory = directory_for(journal, "")
    legacy = Path(journal).parent / "steps"
    return legacy if not directory.exists() and legacy.exists() else directory


def prefix_for(run_id: int | None) -> str:
    """File names are ``run<id>-<n>.log`` for a journaled run, ``<n>.log`` otherwise."""
    return f"run{run_id}-" if run_id is not None else ""


def remove_run_logs(directory: Path, run_id: int) -> int:
    """Delete a journaled run's step log files; return how many there were."""
    removed = 0
    for path in directory.glob(f"{prefix_for(run_id)}*.log*"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed


def files_of(directory: Path, prefix: str, n: int) -> list[Path]:
    """A step's log files, oldest first (those that exist)."""
    current = directory / f"{prefix}{n}.log"
    return [path for path in (Path(str(current) + ROTATED), current) if path.exists()]


class StepLogs:
    """The step log files of one run, written by the server's loop as output arrives."""

    def __init__(self, directory: Path, prefix: str, cap: int,
                 call_later: Callable[[float, Callable[[], None]], Any] | None = None) -> None:
        self.directory = directory
        self._real_directory: str | None = None
        self.prefix = prefix
        self.cap = cap
        # Writes are buffered and flushed FLUSH_AFTER later (one system call per batch, not
        # per message); without a timer, at once.
        self._call_later = call_later
        self._flush_due = False
        self._files: dict[int, tuple[IO[bytes], int]] = {}  # n -> (file, its size)
        self._broken = False
        if cap:
            ensure_private_dir(directory)

    def path(self, n: int) -> Path:
        return self.directory / f"{self.prefix}{n}.log"

    def _real(self, n: int) -> str:
        """The path the kernel shows for step ``n``'s file (the directory resolved once)."""
        if self._real_directory is None:
            self._real_directory = os.path.realpath(self.directory)
        return os.path.join(self._real_directory, f"{self.prefix}{n}.log")

    def write(self, n: int, message: Any) -> None:
        """Add one output message of step ``n`` (a line)."""
        if not self.cap or self._broken:
            return
        # A message is any shown value (a list, a number): the file holds its JSON text.
        text = message if isinstance(message, str) else values.dumps(message)
        data = (text if text.endswith("\n") else text + "\n").encode("utf-8", "replace")
        half = max(self.cap // 2, 1)
        if len(data) > half:  # one message bigger than a file: its end is what is kept
            data = data[-half:]
        try:
            file, size = self._files.get(n) or self._open(n)
            if size and size + len(data) > half:
                file.close()
                os.replace(self.path(n), str(self.path(n)) + ROTATED)
                file, size = self._open(n, fresh=True)
            file.write(data)
            self._files[n] = (file, size + len(data))
        except OSError as exc:  # a full disk must not stop the run; the tail is still kept
            self._give_up(n, exc)
            return
        if self._call_later is None:
            self.flush()
        elif not self._flush_due:
            self._flush_due = True
            self._call_later(FLUSH_AFTER, self.flush)

    def flush(self) -> None:
        """Write out what is buffered."""
        self._flush_due = False
        for n, (file, _) in list(self._files.items()):
            try:
                file.flush()
            except OSError as exc:
                self._give_up(n, exc)
                return

    def _give_up(self, n: int, exc: OSError) -> None:
        log.warning("cannot write step %s's output to %s (no more step logs for this run): "
                    "%s", n, self.path(n), exc)
        self._broken = True
        for entry, _ in self._files.values():
            with contextlib.suppress(OSError):
                entry.close()
        forks.forget([self._real(k) for k in self._files], resolved=True)
        self._files.clear()

    def _open(self, n: int, fresh: bool = False) -> tuple[IO[bytes], int]:
        path = str(self.path(n))
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(path, flags | (os.O_TRUNC if fresh else 0), 0o600)
        os.fchmod(fd, 0o600)
        file = os.fdopen(fd, "ab", buffering=1 << 16)
        forks.server_files([self._real(n)], resolved=True)
        return file, os.fstat(fd).st_size

    def ended(self, n: int) -> None:
        """Step ``n``'s run ended: its file is closed (a rerun appends to it)."""
        entry = self._files.pop(n, None)
        if entry is not None:
            try:
                entry[0].close()
            except OSError as exc:
                self._give_up(n, exc)
            forks.forget([self._real(n)], resolved=True)

    def close(self) -> None:
        for n in list(self._files):
            self.ended(n)
