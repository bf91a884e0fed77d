"""``trail logs STEP``: a step's full output from its step log file, live or past, with
``-f`` to follow it until the step ends."""

from __future__ import annotations

import codecs
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from trail.core.states import State
from trail.errors import TrailError
from trail.layer1.journal import Journal, default_journal_path
from trail.layer1.sockets import is_live
from trail.layer1.steplogs import ROTATED, directory_to_read, prefix_for
from trail.layer2.cli.commands import SOCKET, Failure, connect, main, speaking
from trail.layer2.cli.display import visible
from trail.layer2.client import TrailClient

CHUNK = 1 << 20
POLL = 0.2  # seconds between looks at a followed file
FOLLOWED = {State.RUNNING.value, State.WAITING.value}  # a followed step has not ended yet


def pick_step(step: str, steps: list[tuple[int, str]]) -> int:
    """STEP (a number or a name) as the step's n."""
    numbers = {n for n, _ in steps}
    if step.isdigit():
        if int(step) not in numbers:
            raise Failure(f"no step {step} in this trail (its steps are numbered "
                          f"{min(numbers)} to {max(numbers)})")
        return int(step)
    named = [n for n, name in steps if name == step]
    if not named:
        raise Failure(f"no step named {step!r} in this trail")
    if len(named) > 1:
        raise Failure(f"several steps are named {step!r} ({', '.join(map(str, named))}); "
                      f"give its number")
    return named[0]


class Reader:
    """Reads a step's log file from where it left off; notices a rotation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.inode: int | None = None
        self.offset = 0
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def first(self) -> None:
        """Show the rotated file, then the current one."""
        _show_file(Path(str(self.path) + ROTATED))
        self.more()

    def more(self) -> None:
        """Show what was added since the last look (from the start of a new file)."""
        inode = _inode(self.path)
        if inode is None:
            return
        if inode != self.inode:
            self.inode, self.offset = inode, 0
        try:
            with open(self.path, "rb") as file:
                if os.fstat(file.fileno()).st_ino != self.inode:
                    return  # replaced between the looks; the next look starts it
                file.seek(self.offset)
                while data := file.read(CHUNK):
                    self.offset += len(data)
                    _out(self.decoder.decode(data))
        except FileNotFoundError:
            return


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def _show_file(path: Path) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    try:
        with open(path, "rb") as file:
            while data := file.read(CHUNK):
                _out(decoder.decode(data))
    except FileNotFoundError:
        pass
    _out(decoder.decode(b"", final=True))


def _out(text: str) -> None:
    if text:
        sys.stdout.write(visible(text))
        sys.stdout.flush()


def _state(client: TrailClient | None, n: int) -> str | None:
    """The step's state, or None when no server answers (it ended, or never was)."""
    if client is None:
        return None
    try:
        rows: list[dict[str, Any]] = client.status(fields=["State"], n=n)
    except (TrailError, OSError):
        return None
    return rows[0]["State"] if rows else None


@main.command()
@click.argument("step")
@SOCKET
@click.option("--run", "run_id", type=click.IntRange(1, 2**63 - 1),
              help="A run of the journal (live or past) rather than the trail at --socket.")
@click.option("--journal", metavar="PATH",
              help="The journal file, with --run (default: "
                   "$XDG_STATE_HOME/trail/journal.sqlite3).")
@click.option("--follow", "-f", is_flag=True,
              help="Keep printing new output until the step ends, like tail -f.")
@click.pass_context
def logs(ctx: click.Context, step: str, socket: str | None, run_id: int | None,
         journal: str | None, follow: bool) -> None:
    """A step's full output (STEP is its n or name), from its step log file: more than
    status keeps (its newest lines), up to the cap (TRAIL_STEP_LOG_BYTES, default 10 MiB a
    step). Control characters are shown, not obeyed.

    \b
    Examples:
      trail logs 3
      trail logs deploy -f
      trail logs 3 --run 12
    """
    with speaking(ctx.obj["debug"]):
        client: TrailClient | None = None
        if run_id is not None:
            path = Path(journal) if journal else default_journal_path()
            if not path.exists():
                raise Failure(f"no journal at {path}")
            book = Journal(path, verify=False)
            try:
                run = book.run(run_id)
            finally:
                book.close()
            if run is None:
                raise Failure(f"no run {run_id} in {path}")
            steps = [(int(n), str(name)) for n, name in run["shape"]["steps"]]
            directory = directory_to_read(path)
            prefix = prefix_for(run_id)
            if follow and run["ended"] is None and run["socket"]:
                try:
                    if is_live(run["socket"]):
                        client = TrailClient(run["socket"], timeout=ctx.obj["timeout"])
                except OSError:
                    client = None
        else:
            client = connect(ctx, socket)
            info = client.info()
            if not info.get("step_logs"):
                raise Failure("this trail keeps no step log files (its step_log_bytes is 0)")
            directory = Path(info["step_logs"])
            prefix = prefix_for(info.get("run"))
            steps = [(row["n"], row["Name"]) for row in client.status(fields=[])]
        n = pick_step(step, steps)
        reader = Reader(directory / f"{prefix}{n}.log")
        reader.first()
        if not follow:
            return
        while True:
            state = _state(client, n)
            reader.more()
            if state not in FOLLOWED:
                break
            time.sleep(POLL)
        reader.more()
