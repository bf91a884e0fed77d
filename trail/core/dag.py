"""The trail graph: building it from a definition, numbering it, and walking it.

A trail definition is any of:

- a list of (parent, child) pairs of Steps, as in AutoTrail;
- what ``a >> [b, c] >> d`` builds (a Chain), or a list mixing Chains, pairs and lone Steps;
- a single Step;
- a ``networkx.DiGraph`` whose nodes are Steps.

The graph trail keeps is its own ``TrailGraph``: links and nothing else, in networkx's
layout (``_succ``/``_pred``), with the few methods a run needs. networkx itself is imported
only where its algorithms are wanted (naming a cycle, ``TrailGraph.to_networkx``): its
eager import of every algorithm it has was half of the ``trail`` command's start-up.

``make_trail_graph`` checks it once, and numbers the steps as AutoTrail does: a breadth-first
topological walk (Kahn's, first in first out) from the roots in the order they first appear
in the definition, each step's children in the order their links appear, a step numbered
when the last of its parents has been; so the same definition always gets the same numbers,
and the numbers AutoTrail gave it. The numbers belong to the graph (``n_of``,
``tags_of``), never to the Steps: one Step may sit in two trails with two numbers.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, KeysView
from itertools import chain, compress, repeat
from operator import not_
from typing import TYPE_CHECKING, Any, TypeVar

from trail.core.step import Chain, Step, with_options
from trail.errors import CycleError, DefinitionError

if TYPE_CHECKING:
    import networkx as nx

V = TypeVar("V", bound=Hashable)


def make_trail_graph(definition: Any) -> TrailGraph:
    """Check a trail definition and return its graph, numbered (see ``n_of``).

    Raises DefinitionError for an empty definition or one holding anything but Steps, and
    CycleError (naming the steps on the cycle) for a cycle.
    """
    graph = definition_graph(definition)
    numbers = _breadth_first(graph)
    if len(numbers) < graph.number_of_nodes():  # the walk never reaches a step on a cycle
        raise CycleError(str(parent) for parent, _child in find_cycle(graph))
    graph.graph[_NUMBERS] = numbers
    return graph


def find_cycle(graph: TrailGraph) -> list[tuple[Step, Step]]:
    """The links of a cycle of ``graph`` (networkx's ``find_cycle``), [] if it has none."""
    import networkx as nx  # only here: naming a cycle is an error's work

    try:
        return list(nx.find_cycle(graph.to_networkx()))
    except nx.NetworkXNoCycle:
        return []


def _breadth_first(graph: TrailGraph) -> dict[Step, int]:
    """AutoTrail's numbers: a FIFO walk that queues a child once all its parents are out.

    It reads the graph's adjacency dicts: networkx's views cost a call per step, and a
    trail may have 100,000 steps."""
    succ, pred = graph._succ, graph._pred
    order = list(compress(pred, map(not_, pred.values())))  # the roots
    if max(map(len, pred.values()), default=0) == 1:
        # A forest (a fan, a tree): a step's one parent is its last, its children follow it
        # at once. ``map``s, no Python code per step: each node's children are added to
        # the list as the map reaches the node.
        deque(map(order.extend, map(succ.__getitem__, order)), maxlen=0)
        return dict(zip(order, range(len(order)), strict=True))
    waiting_on = {node: len(parents) for node, parents in pred.items()}
    for node in order:  # the queue: it grows as the walk goes
        children = succ[node]
        if not children:
            continue
        if max(map(waiting_on.__getitem__, children)) == 1:
            order.extend(children)  # their last parent, each (a fan's, a tree's): at once
            continue
        for child in children:
            count = waiting_on[child]
            if count == 1:  # each link is walked once: this was the child's last parent
                order.append(child)
            else:
                waiting_on[child] = count - 1
    return dict(zip(order, range(len(order)), strict=True))


def definition_graph(definition: Any) -> TrailGraph:
    """The graph of a trail definition, its steps in order of first appearance, not checked
    for cycles nor numbered (``make_trail_graph`` does both); a diagram of a cycle uses it.

    Raises DefinitionError for an empty definition or one holding anything but Steps.
    """
    graph = TrailGraph()
    if _is_networkx_graph(definition) or isinstance(definition, TrailGraph):
        for node in definition.nodes:
            _require_step(node, "a node of the trail graph")
        graph.add_nodes_from(definition.nodes)
        graph.add_links(list(definition.edges))
    else:
        _add_items(graph, [definition] if isinstance(definition, (Step, Chain)) else definition)
    if graph.number_of_nodes() == 0:
        raise DefinitionError("the trail definition has no steps")
    return graph


def _is_networkx_graph(value: Any) -> bool:
    networkx = sys.modules.get("networkx")  # not imported: the value cannot be one of its graphs
    return networkx is not None and isinstance(value, networkx.DiGraph)


class TrailGraph:
    """The graph of a trail: its steps and the links between them, nothing else.

    Laid out as networkx lays out a DiGraph: ``_succ`` and ``_pred`` map each step to a
    dict whose keys are its children, its parents (the values are unused, ``None``); the
    steps are in the order they were added. ``graph`` holds what is known of the graph as
    a whole (its numbering). ``to_networkx()`` is a ``networkx.DiGraph`` of the same steps
    and links, for its algorithms.
    """

    def __init__(self) -> None:
        self._succ: dict[Any, dict[Any, None]] = {}
        self._pred: dict[Any, dict[Any, None]] = {}
        self.graph: dict[str, Any] = {}

    @property
    def nodes(self) -> KeysView[Any]:
        """The steps, in the order they were added."""
        return self._succ.keys()

    @property
    def edges(self) -> list[tuple[Any, Any]]:
        """The links, as (parent, child) pairs, parents in the order they were added."""
        return [(parent, child) for parent, children in self._succ.items()
                for child in children]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._succ)

    def __len__(self) -> int:
        return len(self._succ)

    def __contains__(self, node: object) -> bool:
        return node in self._succ

    def number_of_nodes(self) -> int:
        return len(self._succ)

    def is_directed(self) -> bool:
        return True

    def successors(self, node: Any) -> Iterator[Any]:
        """The children of ``node`` (KeyError for a node not in the graph)."""
        return iter(self._succ[node])

    def predecessors(self, node: Any) -> Iterator[Any]:
        """The parents of ``node`` (KeyError for a node not in the graph)."""
        return iter(self._pred[node])

    def in_degree(self, node: Any) -> int:
        return len(self._pred[node])

    def out_degree(self, node: Any) -> int:
        return len(self._succ[node])

    def has_edge(self, parent: Any, child: Any) -> bool:
        return child in self._succ.get(parent, ())

    def add_node(self, node: Any) -> None:
        if node not in self._succ:
            self._succ[node] = {}
            self._pred[node] = {}

    def add_nodes_from(self, nodes: Iterable[Any]) -> None:
        for node in nodes:
            self.add_node(node)

    def add_edge(self, parent: Any, child: Any) -> None:
        self.add_links([(parent, child)])

    def add_edges_from(self, pairs: Iterable[tuple[Any, Any]]) -> None:
        self.add_links(list(pairs))

    def add_links(self, pairs: list[tuple[Any, Any]]) -> None:
        """Add the links, and their steps in order of first appearance, parent before child."""
        succ, pred = self._succ, self._pred
        for node in chain.from_iterable(pairs):
            if node not in succ:
                succ[node] = {}
                pred[node] = {}
        for parent, child in pairs:
            succ[parent][child] = None
            pred[child][parent] = None

    def to_networkx(self) -> nx.DiGraph:
        """A ``networkx.DiGraph`` of the same steps, in the same order, and links."""
        import networkx as nx

        copy = nx.DiGraph()
        copy.add_nodes_from(self._succ)
        copy.add_edges_from(self.edges)
        return copy


_NUMBERS = "trail numbering"  # the graph attribute: Step -> n


def n_of(graph: TrailGraph, step: Step) -> int:
    """The number of ``step`` in a trail graph made by ``make_trail_graph``."""
    return int(graph.graph[_NUMBERS][step])


def first_step(graph: TrailGraph) -> Step:
    """The step numbered 0 in a trail graph made by ``make_trail_graph``."""
    return next(iter(graph.graph[_NUMBERS]))  # numbered in order: the first is 0


def numbers_of(graph: TrailGraph) -> dict[Step, int]:
    """Every step's n in a trail graph made by ``make_trail_graph`` (do not change it)."""
    return graph.graph[_NUMBERS]  # type: ignore[no-any-return]


def tags_of(graph: TrailGraph, step: Step) -> dict[str, Any]:
    """A step's tags in this trail: its own, and its ``n`` here."""
    return {**step.tags, "n": n_of(graph, step)}


def numbered_edges(graph: TrailGraph) -> list[tuple[int, int]]:
    """The edges as (parent n, child n) pairs, sorted."""
    number, succ = graph.graph[_NUMBERS].__getitem__, graph._succ
    # From the adjacency dicts with ``map``s (no Python code per link): each parent as many
    # times as it has children, beside its children.
    parents = chain.from_iterable(map(repeat, succ, map(len, succ.values())))
    children = chain.from_iterable(succ.values())
    return sorted(zip(map(number, parents), map(number, children), strict=True))


def _add_items(graph: TrailGraph, items: Any) -> None:
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise DefinitionError(
            f"a trail definition is a list of (parent, child) pairs of Steps, a Step, "
            f"a >> chain or a networkx DiGraph, not {items!r}"
        )
    pairs: list[tuple[Step, Step]] = []  # added in one go, before anything else is added
    for index, item in enumerate(items):
        if type(item) is tuple and len(item) == 2 and isinstance(item[0], Step) \
                and isinstance(item[1], Step):
            pairs.append(item)  # the common case, checked at once
            continue
        where = f"item {index} of the trail definition"
        if isinstance(item, (tuple, list)) and len(item) == 2:
            parent, child = item
            _require_step(parent, f"the parent in {where}")
            _require_step(child, f"the child in {where}")
            pairs.append((parent, child))
            continue
        graph.add_links(pairs)
        pairs.clear()
        if isinstance(item, Step):
            graph.add_node(item)
        elif isinstance(item, Chain):
            graph.add_nodes_from(item.steps)
            graph.add_links(item.pairs)
        else:
            raise DefinitionError(f"{where} is not a (parent, child) pair of Steps: {item!r}")
    graph.add_links(pairs)


def _require_step(value: Any, where: str) -> None:
    if not isinstance(value, Step):
        raise DefinitionError(f"{where} is not a Step: {value!r}")


def steps_in_order(graph: TrailGraph) -> list[Step]:
    """The steps of a numbered trail graph, by ``n``."""
    return list(graph.graph[_NUMBERS])  # numbered in order


def optioned(graph: TrailGraph) -> list[Step]:
    """The steps of a trail graph that set an option (see ``with_options``), by n in a
    graph made by ``make_trail_graph``; found once per graph."""
    found = graph.graph.get(_OPTIONED)
    if found is None:
        found = graph.graph[_OPTIONED] = with_options(graph.graph.get(_NUMBERS) or graph)
    return found  # type: ignore[no-any-return]


_OPTIONED = "trail optioned steps"  # the graph attribute: the steps that set an option


def pool_sizes(graph: TrailGraph) -> dict[str, int]:
    """The pool sizes the trail's steps declare (``Step(pool=..., pool_size=...)``).

    Raises DefinitionError naming the steps when two steps of one pool disagree.
    """
    sizes: dict[str, tuple[int, Step]] = {}
    for step in optioned(graph):
        if step.pool_size is None:
            continue
        pool = str(step.tags["pool"])
        seen = sizes.setdefault(pool, (step.pool_size, step))
        if seen[0] != step.pool_size:
            raise DefinitionError(
                f"steps {seen[1].name!r} and {step.name!r} of pool {pool!r} disagree on its "
                f"size: {seen[0]} vs {step.pool_size}"
            )
    return {pool: size for pool, (size, _) in sizes.items()}


def progeny(graph: TrailGraph, roots: Iterable[V]) -> set[V]:
    """The roots and every step below them."""
    found: set[V] = set()
    for root in roots:
        if root not in found:
            found.add(root)
            queue = deque([root])
            while queue:
                for child in graph.successors(queue.popleft()):
                    if child not in found:
                        found.add(child)
                        queue.append(child)
    return found


def gates_of(graph: TrailGraph) -> frozenset[Step]:
    """The trail's gate steps (``Step(gate=True)``), found once per graph."""
    gates = graph.graph.get(_GATES)
    if gates is None:
        gates = graph.graph[_GATES] = frozenset(step for step in optioned(graph) if step.gate)
    return gates  # type: ignore[no-any-return]


_GATES = "trail gates"  # the graph attribute: its gate steps


def below_failures(graph: TrailGraph, failed: Iterable[V]) -> set[V]:
    """What failed steps hold up: them and every step below them, but a gate step (which
    runs whatever its parents' end) stops the walk from a failed step above it: what is
    below the gate is not held up by that failure.

    A failed gate holds up everything below it, gates included.
    """
    gates = gates_of(graph)
    failed = list(failed)
    if not gates:
        return progeny(graph, failed)
    found: set[V] = progeny(graph, [step for step in failed if step in gates])
    queue = deque(step for step in failed if step not in found)
    found.update(queue)
    while queue:
        for child in graph.successors(queue.popleft()):
            if child not in found and child not in gates:
                found.add(child)
                queue.append(child)
    return found


def strict_progeny(graph: TrailGraph, roots: Iterable[V]) -> set[V]:
    """The roots and the steps below them that have no parent outside that set.

    A join step that also waits on a step outside the branch is left out, and so is
    everything below it: pausing a branch must not hold up another branch's join.
    """
    found: set[V] = set(roots)
    queue = deque(found)
    while queue:
        node = queue.popleft()
        for child in graph.successors(node):
            if child not in found and all(p in found for p in graph.predecessors(child)):
                found.add(child)
                queue.append(child)
    return found


def topological_while(
    graph: Any, done_check: Callable[[V], bool], ignore_check: Callable[[V], bool]
) -> Iterator[V]:
    """Walk the graph in topological order, yielding each vertex until it is done or ignored.

    A vertex is yielded only once all its parents are done (``done_check``). It is yielded
    again on later turns until ``done_check`` or ``ignore_check`` says otherwise; an ignored
    vertex is dropped with everything below it. The walk ends when nothing is left to yield.
    This is AutoTrail's loop driver; the manager uses the incremental ``Frontier`` instead,
    which answers the same question without a full walk per wake-up.
    """
    queue: deque[V] = deque(v for v in graph.nodes if graph.in_degree(v) == 0)
    queued: set[V] = set(queue)
    while queue:
        vertex = queue.popleft()
        yield vertex
        if done_check(vertex):
            for child in graph.successors(vertex):
                if child not in queued and all(done_check(p) for p in graph.predecessors(child)):
                    queued.add(child)
                    queue.append(child)
        elif not ignore_check(vertex):
            queue.append(vertex)


class Frontier:
    """Which vertices have every parent done, kept up to date as vertices get done.

    ``done`` is monotone in a trail (nothing leaves Succeeded or Skipped), so a count of
    parents not yet done per vertex is all it takes: ``mark_done`` is O(children). The
    counts are kept by the trail's numbering when the graph has one (a list and a byte
    per vertex rather than two hash tables: a trail may have 100,000 steps).
    """

    def __init__(self, graph: TrailGraph) -> None:
        self._graph = graph
        self._index: dict[Any, int] = graph.graph.get(_NUMBERS) or {
            vertex: i for i, vertex in enumerate(graph)}
        # Each vertex's parents, by its index (its number): the graph's own dicts of them.
        self._waiting_on = list(map(len, map(graph._pred.__getitem__, self._index)))
        self._done = bytearray(len(self._index))

    def reached(self, vertex: Any) -> bool:
        """Every parent of ``vertex`` is done."""
        return self._waiting_on[self._index[vertex]] == 0

    def mark_done(self, vertex: Any) -> list[Any]:
        """Record ``vertex`` as done; return the children this leaves with every parent done."""
        i = self._index[vertex]
        if self._done[i]:
            return []
        self._done[i] = 1
        reached = []
        index, waiting_on = self._index, self._waiting_on
        for child in self._graph.successors(vertex):
            c = index[child]
            waiting_on[c] -= 1
            if waiting_on[c] == 0:
                reached.append(child)
        return reached
