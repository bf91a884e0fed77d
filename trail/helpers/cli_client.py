"""An argparse command line for a trail, generated from the table of calls, with the public
names of AutoTrail's ``autotrail.helpers.cli_client``.

A tool builds its parser from the trail's own tags, then makes the call::

    client = InteractiveTrail(TrailClient(socket_file))
    tags_seen = get_tag_keys_and_values(client.trail_client.list())
    substitutions = {
        CLIArgs.DRY_RUN: [extract_args_and_kwargs("--submit", dest="dry_run",
                                                  action="store_false")],
        CLIArgs.TAGS: list(cli_args_for_tag_keys_and_values(tags_seen)),
    }
    parser = ArgumentParser()
    setup_cli_args_for_trail_client(parser, substitutions)
    arguments = parser.parse_args()
    make_api_call(arguments, get_tags_from_namespace(tags_seen, arguments), client)

Every call of ``trail.layer1.calls`` is a sub-command (AutoTrail's twenty, and trail's
``info``, ``graph`` and ``rerun``); a call's own arguments are ``--options``
(``status --field State --state Failed``, ``next_step --step-count 2``,
``send_message_to_steps --message yes``). ``start`` acts at once, as in AutoTrail; every
other changing call is a dry run unless the DRY_RUN switch (``--submit`` above) says not.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from trail.layer1.calls import SPECS, Argument, CallSpec, json_or_text

log = logging.getLogger(__name__)

ArgsAndKwargs = tuple[tuple[Any, ...], dict[str, Any]]


def extract_args_and_kwargs(*args: Any, **kwargs: Any) -> ArgsAndKwargs:
    """``(args, kwargs)`` as given: one ``parser.add_argument`` call, written as data."""
    return args, kwargs


class CLIArgs:
    """Place-holders in ``METHODS_CLI_SWITCH_MAPPING`` for switches the tool chooses:
    how a dry run is turned off, and which tags select steps."""

    DRY_RUN = "DRY_RUN"
    TAGS = "TAGS"


def _boolean(text: str) -> bool:
    word = text.strip().lower()
    if word in ("true", "yes", "1"):
        return True
    if word in ("false", "no", "0"):
        return False
    raise ValueError(f"not true or false: {text!r}")


# How ``send_message_to_steps --type`` reads its ``--message``.
MESSAGE_TYPE_CONVERSION_MAPPING: dict[str, Callable[[str], Any]] = {
    "str": str,
    "int": int,
    "bool": _boolean,
}


# Where AutoTrail's parser put an argument under another name than the call's.
_AUTOTRAILS_DEST = {"states": "state"}


def _dest(argument: Argument) -> str:
    return _AUTOTRAILS_DEST.get(argument.name, argument.name)


def _switch(spec: CallSpec, argument: Argument) -> ArgsAndKwargs:
    """The ``--option`` for one of a call's own arguments."""
    flag = "--" + argument.name.replace("_", "-")
    options: dict[str, Any] = {"dest": _dest(argument), "help": argument.help or None}
    choices = getattr(argument.check, "choices", None)
    if argument.option:  # a repeatable option making a list: --field, --state
        flag = argument.cli
        options.update(action="append", type=str, default=argument.default)
        if choices:
            options["choices"] = choices
    elif argument.required:
        options.update(required=True, type=str)
    else:
        options.update(type=argument.from_text, default=argument.default)
    return extract_args_and_kwargs(flag, **options)


def _switches(spec: CallSpec) -> list[Any]:
    switches: list[Any] = [_switch(spec, argument) for argument in spec.arguments]
    if spec.name == "send_message_to_steps":
        switches.append(extract_args_and_kwargs(
            "--type", choices=list(MESSAGE_TYPE_CONVERSION_MAPPING), default=None,
            help="read the message as this type (default: JSON when it is JSON, else text)"))
    if spec.mutating and spec.dry_run_default:
        switches.append(CLIArgs.DRY_RUN)
    if spec.selects:
        switches.append(CLIArgs.TAGS)
    return switches


# call name -> (help, [(args, kwargs) for add_argument, or a CLIArgs place-holder]).
METHODS_CLI_SWITCH_MAPPING: dict[str, tuple[str, list[Any]]] = {
    spec.name: (spec.summary, _switches(spec)) for spec in SPECS
}


def _extractor(spec: CallSpec) -> Callable[[argparse.Namespace, dict[str, Any]], ArgsAndKwargs]:
    """How one call's keyword arguments come out of the parsed command line."""

    def extract(namespace: argparse.Namespace, tags: dict[str, Any]) -> ArgsAndKwargs:
        kwargs = {argument.name: getattr(namespace, _dest(argument), argument.default)
                  for argument in spec.arguments}
        if "message" in kwargs:
            kind = getattr(namespace, "type", None)
            read = MESSAGE_TYPE_CONVERSION_MAPPING[kind] if kind else json_or_text
            kwargs["message"] = read(kwargs["message"])
        if spec.mutating and spec.dry_run_default:
            kwargs["dry_run"] = getattr(namespace, "dry_run", True)
        if spec.selects:
            kwargs.update(tags)
        return (), kwargs

    return extract


# call name -> function(namespace, tags) -> (args, kwargs) for the client's method.
PARAMETER_EXTRACTOR_MAPPING: dict[
    str, Callable[[argparse.Namespace, dict[str, Any]], ArgsAndKwargs]
] = {spec.name: _extractor(spec) for spec in SPECS}


def get_tag_keys_and_values(list_of_tags: Iterable[dict[str, Any]]) -> dict[str, list[Any]]:
    """Every tag key the steps have, with its distinct values in order of first appearance
    (``client.list()`` -> ``{'n': [0, 1], 'name': [...], 'foo': ['bar']}``)."""
    seen: dict[str, list[Any]] = {}
    for tags in list_of_tags:
        for key, value in tags.items():
            values = seen.setdefault(key, [])
            if value not in values:
                values.append(value)
    return seen


def _reader(values: list[Any]) -> Callable[[str], Any]:
    """Reads a typed word as the tag value it spells (so ``--n 3`` is 3, ``--on true`` True)."""
    by_text = {str(value): value for value in values}
    by_text.update({str(value).lower(): value for value in values if isinstance(value, bool)})

    def read(text: str) -> Any:
        return by_text.get(text, by_text.get(text.lower(), text))

    read.__name__ = "tag value"
    return read


def cli_args_for_tag_keys_and_values(
        tag_keys_and_values: dict[str, list[Any]]) -> Iterator[ArgsAndKwargs]:
    """One ``--KEY`` switch per tag key, its choices the values the steps have."""
    for key, values in tag_keys_and_values.items():
        yield extract_args_and_kwargs(f"--{key}", dest=key, choices=values, type=_reader(values),
                                      help=f"select the steps whose tag {key!r} is this")


def get_tags_from_namespace(tag_keys_and_values: dict[str, list[Any]],
                            namespace: argparse.Namespace) -> dict[str, Any]:
    """The tags given on the command line; a value no step has is a ValueError naming it."""
    tags = {}
    for key, values in tag_keys_and_values.items():
        value = getattr(namespace, key, None)
        if value is None:
            continue
        if value not in values:
            raise ValueError(f"no step has the tag {key}={value!r}")
        tags[key] = value
    return tags


def substitute_cli_switches(methods_cli_switch_mapping: dict[str, tuple[str, list[Any]]],
                            substitution_mapping: dict[str, list[ArgsAndKwargs]]) -> None:
    """Replace each place-holder (``CLIArgs.DRY_RUN``, ...) in the mapping, in place, by the
    switches ``substitution_mapping`` gives for it; one it does not name stays as it is."""
    for method, (help_text, switches) in methods_cli_switch_mapping.items():
        replaced: list[Any] = []
        for switch in switches:
            if isinstance(switch, str) and switch in substitution_mapping:
                replaced.extend(substitution_mapping[switch])
            else:
                replaced.append(switch)
        methods_cli_switch_mapping[method] = (help_text, replaced)


def add_arguments_to_parser(parser: Any, args_and_kwargs_iterable: Iterable[ArgsAndKwargs]) -> None:
    """``parser.add_argument(*args, **kwargs)`` for each pair."""
    for args, kwargs in args_and_kwargs_iterable:
        parser.add_argument(*args, **kwargs)


def setup_cli_args_for_trail_client(
        parser: argparse.ArgumentParser,
        substitution_mapping: dict[str, list[ArgsAndKwargs]],
        methods_cli_switch_mapping: dict[str, tuple[str, list[Any]]] | None = None) -> None:
    """Add a sub-command per call to ``parser`` (its name lands in ``namespace.method``).

    ``status --state`` lands in ``namespace.state``, as in AutoTrail. The place-holders are
    replaced in a copy of ``methods_cli_switch_mapping`` (the table's
    by default), so the module's mapping can serve several parsers.
    """
    mapping = dict(methods_cli_switch_mapping or METHODS_CLI_SWITCH_MAPPING)
    # A place-holder the tool gives nothing for adds no switch (not a positional argument).
    substitute_cli_switches(mapping, {CLIArgs.DRY_RUN: [], CLIArgs.TAGS: [],
                                      **substitution_mapping})
    methods = parser.add_subparsers(help="the call to make", dest="method", required=True)
    for method, (help_text, switches) in mapping.items():
        add_arguments_to_parser(methods.add_parser(method, help=help_text,
                                                   description=help_text), switches)


def make_api_call(namespace: argparse.Namespace, tags: dict[str, Any], client: Any,
                  parameter_extractor_mapping: dict[
                      str, Callable[[argparse.Namespace, dict[str, Any]], ArgsAndKwargs]
                  ] | None = None) -> Any:
    """Call ``client.<namespace.method>`` with the parsed arguments and ``tags``; return
    what it returns (an InteractiveTrail prints it and returns None)."""
    extract = (parameter_extractor_mapping or PARAMETER_EXTRACTOR_MAPPING)[namespace.method]
    args, kwargs = extract(namespace, tags)
    log.info("calling %s(*%r, **%r)", namespace.method, args, kwargs)
    return getattr(client, namespace.method)(*args, **kwargs)


__all__ = [
    "MESSAGE_TYPE_CONVERSION_MAPPING",
    "METHODS_CLI_SWITCH_MAPPING",
    "PARAMETER_EXTRACTOR_MAPPING",
    "CLIArgs",
    "add_arguments_to_parser",
    "cli_args_for_tag_keys_and_values",
    "extract_args_and_kwargs",
    "get_tag_keys_and_values",
    "get_tags_from_namespace",
    "make_api_call",
    "setup_cli_args_for_trail_client",
    "substitute_cli_switches",
]
