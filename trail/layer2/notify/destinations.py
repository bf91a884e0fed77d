"""Where notices go: apprise URLs from the server, the command line, TRAIL_NOTIFY and the
user's config file, each with the kinds of notice it takes and a form safe to show."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FAILED = "failed"  # a step failed, or paused on its failure
WAITING = "waiting"  # a step asks a question (or an Instruction) and waits
OVERDUE = "overdue"  # a step runs longer than its warn_after
FINISHED = "finished"  # the run finished with failed or blocked steps
SUCCEEDED = "succeeded"  # the run finished and every step succeeded or was skipped
ESCALATED = "escalated"  # a step waited for a person longer than its escalate_after

KINDS = (FAILED, WAITING, OVERDUE, FINISHED, SUCCEEDED, ESCALATED)
DEFAULT_KINDS = frozenset({FAILED, WAITING, OVERDUE, FINISHED})
ESCALATION_TAG = "escalation"  # a synonym of the kind, as an apprise tag reads better

ENV = "TRAIL_NOTIFY"
CONFIG_NAMES = ("notify.yaml", "notify.yml", "notify.txt", "notify.conf")

# apprise's TEXT config form, accepted on the command line and in TRAIL_NOTIFY too:
# "failed, escalation = mailto://...".
_TAGGED = re.compile(r"^\s*(?P<tags>[\w\s,.-]+?)\s*=\s*(?P<url>[a-z0-9+.-]+://.*)$", re.I)
_DEFAULT_TIMEOUT = 5.0  # seconds to connect and to read, unless the URL sets cto= / rto=


@dataclass(eq=False)
class Destination:
    """One apprise service and what it takes.

    ``kinds`` are the notices it gets (tags naming kinds, or ``on=``; DEFAULT_KINDS when
    none are named). ``names`` are its other tags: a destination with names is a step's
    destination and gets only the notices of steps whose ``notify`` tag lists one of them.
    ``where`` is the URL with its secrets masked, the only form that is logged or
    journaled.
    """

    service: Any = field(repr=False)
    kinds: frozenset[str]
    names: frozenset[str]
    where: str
    explicit_kinds: bool = False

    def takes(self, kind: str, step_names: Iterable[str] = ()) -> bool:
        if kind not in self.kinds:
            return False
        return not self.names or bool(self.names & set(step_names))


class DestinationError(ValueError):
    """A destination apprise cannot use; says which and where it came from."""


def _apprise() -> Any:
    import apprise

    return apprise


def destination(spec: Any, origin: str, *, names: Iterable[str] = ()) -> Destination:
    """A destination from ``spec``: a URL, ``"tag, tag = URL"``, or a mapping with ``url``
    and optionally ``on`` (kinds) and ``tags``. DestinationError says what and where."""
    tags: list[str] = list(names)
    on: list[str] | None = None
    if isinstance(spec, Mapping):
        url = spec.get("url")
        on = _as_list(spec.get("on"), origin) if spec.get("on") is not None else None
        tags += _as_list(spec.get("tags"), origin) if spec.get("tags") is not None else []
        unknown = set(spec) - {"url", "on", "tags"}
        if unknown:
            raise DestinationError(f"{origin}: a destination takes url, on and tags, not "
                                   f"{', '.join(sorted(map(str, unknown)))}")
    else:
        url = spec
    if not isinstance(url, str) or "://" not in url:
        raise DestinationError(f"{origin}: a destination is an apprise URL such as "
                               f"mailto://user:password@host, not {_masked(url)!r}")
    matched = _TAGGED.match(url)
    if matched and "://" not in matched["tags"]:
        tags += [t.strip() for t in matched["tags"].split(",") if t.strip()]
        url = matched["url"].strip()
    service = _apprise().Apprise.instantiate(url, tag=tags or None)
    if service is None:
        raise DestinationError(f"{origin}: apprise cannot use {_masked(url)!r} (unknown "
                               f"service, or a part of it is wrong; `apprise --details` "
                               f"lists what it knows)")
    return _wrap(service, tags, on, origin)


def _wrap(service: Any, tags: Iterable[str], on: Iterable[str] | None,
          origin: str) -> Destination:
    tags = {str(t).strip().lower() for t in tags if str(t).strip()}
    kind_tags = {ESCALATED if t == ESCALATION_TAG else t for t in tags} & set(KINDS)
    names = frozenset(t for t in tags if t not in KINDS and t != ESCALATION_TAG)
    if on is not None:
        wanted = {ESCALATED if str(k) == ESCALATION_TAG else str(k) for k in on}
        bad = wanted - set(KINDS)
        if bad:
            raise DestinationError(f"{origin}: on= takes {', '.join(KINDS)}, not "
                                   f"{', '.join(sorted(bad))}")
        kind_tags |= wanted
    for name in ("socket_connect_timeout", "socket_read_timeout"):
        if getattr(service, name, 0) > _DEFAULT_TIMEOUT:
            setattr(service, name, _DEFAULT_TIMEOUT)
    where = str(service.url(privacy=True))
    remember_secrets(str(service.url(privacy=False)), where)
    return Destination(service, frozenset(kind_tags) or DEFAULT_KINDS, names, where,
                       explicit_kinds=bool(kind_tags))


def _as_list(value: Any, origin: str) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, Iterable):
        return [str(part) for part in value]
    raise DestinationError(f"{origin}: expected a list of names, not {value!r}")


def _masked(url: Any) -> str:
    """A URL that could not be parsed, with everything but its scheme hidden."""
    text = str(url)
    scheme, sep, _ = text.partition("://")
    return f"{scheme}://..." if sep else "..."


def from_environment(environ: Mapping[str, str] | None = None) -> list[Destination]:
    """The destinations of TRAIL_NOTIFY (space-separated) and of the user's config file.
    A bad entry is logged, saying where, and left out: the run goes on."""
    environ = os.environ if environ is None else environ
    found: list[Destination] = []
    for i, spec in enumerate(environ.get(ENV, "").split(), 1):
        try:
            found.append(destination(spec, f"{ENV} entry {i}"))
        except DestinationError as exc:
            log.warning("notifications: %s", exc)
    path = config_file(environ)
    if path is not None:
        found += from_config_file(path)
    return found


def config_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """``$XDG_CONFIG_HOME/trail/notify.yaml`` (or .yml, .txt, .conf), if there is one."""
    environ = os.environ if environ is None else environ
    base = Path(environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "trail"
    for name in CONFIG_NAMES:
        if (base / name).is_file():
            return base / name
    return None


def from_config_file(path: Path) -> list[Destination]:
    """The services of an apprise config file (YAML or TEXT), with their tags."""
    if path.stat().st_mode & 0o077:
        log.warning("notifications: %s is readable by other users; it may hold passwords "
                    "(chmod 600 %s)", path, path)
    apprise = _apprise()
    config = apprise.AppriseConfig()
    if not config.add(str(path)):
        log.warning("notifications: apprise cannot read the config file %s", path)
        return []
    services = (config.services() if hasattr(config, "services")  # apprise 2
                else config.servers())
    if not services:
        log.warning("notifications: the config file %s names no destination apprise can use"
                    " (see the log above for the line)", path)
    found = []
    for i, service in enumerate(services, 1):
        try:
            found.append(_wrap(service, service.tags, None, f"{path} service {i}"))
        except DestinationError as exc:
            log.warning("notifications: %s", exc)
    return found


# --- keeping secrets out of the log ---------------------------------------------------

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
_SPLIT = re.compile(r"[/:@?&=#,]+")


def remember_secrets(url: str, masked: str) -> None:
    """Note the parts of ``url`` its masked form hides (passwords, tokens), so that
    ``redact`` and the log filter take them out of anything apprise or trail logs."""
    shown = set(_SPLIT.split(masked))
    hidden = {part for part in _SPLIT.split(url) if len(part) >= 3 and part not in shown}
    from urllib.parse import unquote

    hidden |= {unquote(part) for part in hidden}
    with _SECRETS_LOCK:
        _SECRETS.update(hidden)
    _install_filter()


def redact(text: str) -> str:
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "****")
    return text


class _Redact(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = _Redact()


def _install_filter() -> None:
    logger = logging.getLogger("apprise")  # trail's own logs show only the masked form
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
