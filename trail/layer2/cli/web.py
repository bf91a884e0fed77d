"""``trail web``: serve the dashboard of this user's trails and past runs to a browser."""

from __future__ import annotations

import getpass
import ipaddress
import logging
import os
import secrets
import socket
from pathlib import Path

import click

from trail.layer1.journal import default_journal_path
from trail.layer2.cli.commands import live_sockets, speaking

log = logging.getLogger(__name__)

TOKEN_ENV = "TRAIL_WEB_TOKEN"


def read_token(token_file: str | None) -> str:
    """The access token: from ``--token-file``, else $TRAIL_WEB_TOKEN, else a new one."""
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise click.UsageError(f"cannot read the token file {token_file}: "
                                   f"{exc.strerror}") from exc
        if not token:
            raise click.UsageError(f"the token file {token_file} is empty")
        return token
    return os.environ.get(TOKEN_ENV, "").strip() or secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command(name="web")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (loopback unless you say otherwise).")
@click.option("--port", default=8765, show_default=True, help="Port (0: any free one).")
@click.option("--socket", "-s", "sockets", multiple=True, metavar="PATH",
              help="Show only these trails (repeatable; default: every trail of yours, as "
                   "`trail ls` finds them, new ones as they start).")
@click.option("--journal", metavar="PATH",
              help="The journal whose past runs to show (default: "
                   "$XDG_STATE_HOME/trail/journal.sqlite3).")
@click.option("--user", metavar="NAME",
              help="Whose changes these are, in the journal: web:NAME (default: your login).")
@click.option("--token-file", metavar="PATH",
              help=f"Read the access token from this file (else ${TOKEN_ENV}, else a new "
                   f"random one).")
@click.pass_context
def web(ctx: click.Context, host: str, port: int, sockets: tuple[str, ...],
        journal: str | None, user: str | None, token_file: str | None) -> None:
    """Watch and steer your trails from a browser.

    Prints the URL to open, with its access token; every page and API call needs it.
    Stopping this command never touches a run.

    \b
    Example:
      trail web --port 8765
    """
    with speaking(ctx.obj["debug"]):
        import uvicorn

        from trail.layer2.web.app import create_app
        from trail.layer2.web.hub import Hub

        token = read_token(token_file)
        journal_path = Path(journal) if journal else default_journal_path()
        given = [os.path.abspath(path) for path in sockets]

        def find() -> list[str]:
            return given or [path for path, _alive in live_sockets()]

        hub = Hub(find, journal_path, timeout=ctx.obj["timeout"],
                  by=f"web:{user or getpass.getuser()}")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
        listener.set_inheritable(True)
        bound = listener.getsockname()[1]
        if not is_loopback(host):
            click.echo(f"trail web: listening on {host}, not only this machine: anyone who "
                       f"can reach it and has the token can steer your trails", err=True)
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"trail web: http://{shown}:{bound}/?token={token}")
        config = uvicorn.Config(create_app(hub, token, journal_path), log_level="warning",
                                access_log=False,  # request lines carry ?token=
                                timeout_graceful_shutdown=1)
        uvicorn.Server(config).run(sockets=[listener])
