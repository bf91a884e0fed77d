"""Diagrams of a trail (DOT, SVG, PNG) with the graphviz package and the real ``dot``.

A definition draws its shape; a live run (through a TrailClient) also colours each step by
its state, with a legend. Nodes are named by n and labelled ``n: name``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import IO, Any

import graphviz

from trail.core.dag import (
    TrailGraph,
    definition_graph,
    find_cycle,
    make_trail_graph,
    numbered_edges,
    steps_in_order,
    tags_of,
)
from trail.core.states import State
from trail.errors import CycleError, TrailError

STATE_COLOURS: dict[str, str] = {
    State.READY.value: "white",
    State.WAITING.value: "lightcyan",
    State.RUNNING.value: "deepskyblue",
    State.SUCCEEDED.value: "palegreen",
    State.FAILED.value: "red",
    State.SKIPPED.value: "honeydew",
    State.BLOCKED.value: "orangered",
    State.PAUSED.value: "gold",
    State.INTERRUPTED.value: "violet",
    State.PAUSED_ON_FAIL.value: "tomato",
    State.TO_SKIP.value: "azure",
    State.TO_BLOCK.value: "mistyrose",
    State.TO_PAUSE.value: "lightyellow",
}


def trail_dot(
    steps: list[dict[str, Any]],
    edges: list[tuple[int, int]] | list[list[int]],
    states: dict[int, str] | None = None,
    name: str = "trail",
    conditional: set[int] | None = None,
) -> graphviz.Digraph:
    """A Digraph of steps (tag dicts with n and name) and edges (parent n, child n);
    with ``states`` (n -> state), coloured by state and with a legend (the state is in the
    colour and the tooltip, not a label beside the box that edges would cross).
    ``conditional`` steps (by n) are hexagons labelled "if": False skips their branch."""
    dot = graphviz.Digraph(name, graph_attr={"rankdir": "TB"},
                           node_attr={"shape": "box", "style": "rounded,filled",
                                      "fillcolor": "white", "fontname": "Helvetica"})
    for tags in steps:
        n = int(tags["n"])
        tooltip = ", ".join(f"{k}={v}" for k, v in tags.items())
        attrs = {}
        label = f"{n}: {tags['name']}"
        if states is not None and n in states:
            attrs["fillcolor"] = STATE_COLOURS.get(states[n], "white")
            tooltip = f"{states[n]}; {tooltip}"
        if conditional and n in conditional:
            attrs["shape"] = "hexagon"
            label = f"if {label}"
        dot.node(str(n), label, tooltip=tooltip, **attrs)
    for parent, child in edges:
        dot.edge(str(parent), str(child))
    if states:
        with dot.subgraph(name="cluster_legend") as legend:
            legend.attr(label="States", fontname="Helvetica", style="dashed")
            shown = [s.value for s in State if s.value in set(states.values())]
            for state in shown:
                legend.node(f"legend {state}", state, fillcolor=STATE_COLOURS[state])
            for left, right in zip(shown, shown[1:], strict=False):
                legend.edge(f"legend {left}", f"legend {right}", style="invis")
    return dot


def definition_dot(trail_definition: Any, name: str = "trail") -> graphviz.Digraph:
    """The Digraph of a trail definition (checked and numbered as a server would).

    A definition with a cycle, which no server would run, is drawn too, so that a person
    can see the cycle (as AutoTrail's ``write_trail_definition_as_dot`` lets them): its
    steps are numbered in the order they first appear and the cycle's links drawn in red.
    """
    try:
        graph = make_trail_graph(trail_definition)
    except CycleError as cycle:
        return _cycle_dot(definition_graph(trail_definition), cycle, name)
    ordered = steps_in_order(graph)
    steps = [tags_of(graph, step) for step in ordered]
    edges = numbered_edges(graph)
    conditional = {int(tags["n"]) for step, tags in zip(ordered, steps, strict=True)
                   if step.conditional}
    return trail_dot(steps, edges, name=name, conditional=conditional)


def _cycle_dot(graph: TrailGraph, cycle: CycleError, name: str) -> graphviz.Digraph:
    order = {step: n for n, step in enumerate(graph.nodes)}
    steps = [{**step.tags, "n": n} for step, n in order.items()]
    dot = trail_dot(steps, [], name=name)
    looped = {(order[parent], order[child]) for parent, child in find_cycle(graph)}
    for parent, child in graph.edges:
        edge = (order[parent], order[child])
        attrs = {"color": "red", "penwidth": "2"} if edge in looped else {}
        dot.edge(str(edge[0]), str(edge[1]), **attrs)
    dot.attr(label=str(cycle), fontcolor="red", labelloc="t")
    return dot


def live_dot(trail_client: Any, name: str = "trail") -> graphviz.Digraph:
    """The Digraph of a running trail, each step coloured by its current state."""
    shape = trail_client.graph()
    states = {row["n"]: row["State"] for row in trail_client.status(fields=["State"])}
    return trail_dot(shape["steps"], shape["edges"], states, name=name)


def write_trail_definition_as_dot(trail_definition: Any, to: str | Path | IO[str]) -> str:
    """Write a definition's diagram as DOT to a path or a text stream; return the DOT."""
    source = definition_dot(trail_definition).source
    _write_text(source, to)
    return source


def render(dot: graphviz.Digraph, path: str | Path) -> Path:
    """Write ``dot`` to ``path``: DOT source for .dot/.gv, else rendered by ``dot`` in the
    format the suffix names (.svg, .png, .pdf)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt in ("dot", "gv"):
        path.write_text(dot.source)
        return path
    if fmt not in ("svg", "png", "pdf"):
        raise TrailError(f"cannot write a diagram as {path.suffix or 'no suffix'}: "
                         f"use .dot, .svg, .png or .pdf")
    if shutil.which("dot") is None:
        raise TrailError("rendering needs graphviz's `dot` program: install graphviz "
                         "(apt-get install graphviz), or write .dot instead")
    path.write_bytes(dot.pipe(format=fmt))
    return path


def _write_text(text: str, to: str | Path | IO[str]) -> None:
    if isinstance(to, (str, Path)):
        Path(to).write_text(text)
    else:
        to.write(text)
