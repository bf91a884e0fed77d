import networkx as nx
import pytest

from trail.core import Chain, Frontier, Step, make_trail_graph, steps_in_order, topological_while
from trail.core.dag import n_of, strict_progeny, tags_of
from trail.errors import CycleError, DefinitionError


def noop(trail_env, context):
    return None


def steps(names):
    return [Step(noop, name=name) for name in names]


def diamond():
    a, b, c, d, e, f, g = steps("abcdefg")
    pairs = [(a, b), (b, c), (c, d), (d, g), (a, e), (e, f), (f, g)]
    return (a, b, c, d, e, f, g), pairs


def test_pairs_number_steps_in_a_topological_order():
    (a, b, c, d, e, f, g), pairs = diamond()
    graph = make_trail_graph(pairs)
    order = steps_in_order(graph)
    assert [n_of(graph, s) for s in order] == list(range(7))
    for parent, child in pairs:
        assert n_of(graph, parent) < n_of(graph, child)
    assert order[0] is a and order[-1] is g


def test_numbering_is_stable_for_the_same_definition():
    numbers = []
    for _ in range(5):
        (a, b, c, d, e, f, g), pairs = diamond()
        graph = make_trail_graph(pairs)
        numbers.append([n_of(graph, s) for s in (a, b, c, d, e, f, g)])
    assert all(n == numbers[0] for n in numbers)
    # AutoTrail's breadth-first numbering: a, then its children b and e (in the order of
    # their links), then c (b's child), f (e's child), d, and the join g last.
    assert numbers[0] == [0, 1, 3, 5, 2, 4, 6]


def test_numbering_is_autotrails_for_its_own_diamond():
    # AutoTrail's example writes both of a's links first: a, b, e, c, f, d, g there.
    a, b, c, d, e, f, g = steps("abcdefg")
    graph = make_trail_graph([(a, b), (a, e), (b, c), (c, d), (d, g), (e, f), (f, g)])
    assert [s.name for s in steps_in_order(graph)] == list("abecfdg")


def test_a_join_is_numbered_after_its_last_parent():
    a, b, c, d = steps("abcd")
    graph = make_trail_graph([(a, b), (b, c), (a, d), (c, d)])
    assert [s.name for s in steps_in_order(graph)] == list("abcd")


def test_several_roots_are_walked_in_the_order_they_appear():
    a, b, x, y = steps("abxy")
    graph = make_trail_graph([(x, y), (a, b), (a, y)])
    assert [s.name for s in steps_in_order(graph)] == list("xaby")


def test_rshift_builds_the_same_graph_as_pairs():
    a, b, c, d = steps("abcd")
    graph = make_trail_graph(a >> [b, c] >> d)
    assert set(graph.edges) == {(a, b), (a, c), (b, d), (c, d)}
    assert [s.name for s in steps_in_order(graph)] == ["a", "b", "c", "d"]


def test_rshift_from_a_list_and_chains_of_chains():
    a, b, c, d, e = steps("abcde")
    chain = [a, b] >> c >> (d >> e)
    assert isinstance(chain, Chain)
    graph = make_trail_graph(chain)
    assert set(graph.edges) == {(a, c), (b, c), (c, d), (d, e)}


def test_a_networkx_graph_is_a_definition():
    a, b = steps("ab")
    g = nx.DiGraph()
    g.add_edge(a, b)
    graph = make_trail_graph(g)
    assert n_of(graph, a) == 0 and n_of(graph, b) == 1
    assert list(graph.edges) == [(a, b)]


def test_a_trail_graph_is_the_same_graph_to_networkx_s_algorithms():
    a, b, c, d = steps("abcd")
    graph = make_trail_graph(a >> [b, c] >> d)
    copy = graph.to_networkx()
    assert isinstance(copy, nx.DiGraph)
    assert list(copy.nodes) == list(graph.nodes) == [a, b, c, d]
    assert sorted(map(str, copy.edges)) == sorted(map(str, graph.edges))
    assert list(nx.topological_sort(copy))[0] == a and nx.descendants(copy, b) == {d}
    assert set(graph.successors(a)) == {b, c} and set(graph.predecessors(d)) == {b, c}
    assert graph.in_degree(d) == 2 and graph.out_degree(d) == 0
    assert graph.has_edge(a, b) and not graph.has_edge(b, a)
    assert make_trail_graph(graph).edges == graph.edges  # a trail graph is a definition too


def test_a_step_in_two_trails_keeps_each_trails_numbering():
    a, b, c = steps("abc")
    first = make_trail_graph(a >> b)
    second = make_trail_graph(c >> a)
    assert n_of(first, a) == 0 and n_of(second, a) == 1
    assert tags_of(first, a) == {"name": "a", "n": 0}
    assert "n" not in a.tags  # the Step itself is never changed by building a trail
    assert n_of(first, a) == 0  # building the second trail did not renumber the first


def test_single_step_and_several_roots():
    (a,) = steps("a")
    assert list(make_trail_graph(a).nodes) == [a]
    x, y, z = steps("xyz")
    graph = make_trail_graph([(x, z), (y, z)])
    assert {s.name for s in graph.nodes if graph.in_degree(s) == 0} == {"x", "y"}


def test_a_cycle_is_an_error_that_names_its_steps():
    a, b, c, d = steps("abcd")
    with pytest.raises(CycleError) as caught:
        make_trail_graph([(d, a), (a, b), (b, c), (c, a)])
    assert set(caught.value.steps) == {"a", "b", "c"}
    assert "a -> b -> c -> a" in str(caught.value) or "cycle" in str(caught.value)
    with pytest.raises(CycleError, match="a -> a"):
        make_trail_graph([(a, a)])


@pytest.mark.parametrize(
    "definition, message",
    [
        ([], "no steps"),
        ([(1, 2)], "is not a Step"),
        ([("a", "b", "c")], "not a \\(parent, child\\) pair"),
        ("ab", "a list of \\(parent, child\\) pairs"),
        (42, "a list of \\(parent, child\\) pairs"),
    ],
)
def test_bad_definitions_say_what_is_wrong(definition, message):
    with pytest.raises(DefinitionError, match=message):
        make_trail_graph(definition)


def test_rshift_refuses_non_steps():
    (a,) = steps("a")
    with pytest.raises(TypeError, match="only Steps"):
        a >> 3  # noqa: B018


def test_topological_while_yields_until_done():
    (a, b, c, d, e, f, g), pairs = diamond()
    graph = make_trail_graph(pairs)
    done: set = set()
    seen = []
    for vertex in topological_while(graph, lambda v: v in done, lambda v: False):
        seen.append(vertex.name)
        if seen.count(vertex.name) == 2:  # each vertex is done on its second turn
            done.add(vertex)
    assert set(seen) == set("abcdefg")
    assert all(seen.count(name) == 2 for name in "abcdefg")
    for parent, child in pairs:  # a child first shows after its parent is done
        assert seen.index(child.name) > len(seen) - 1 - seen[::-1].index(parent.name)


def test_topological_while_drops_ignored_branches():
    (a, b, c, d, e, f, g), pairs = diamond()
    graph = make_trail_graph(pairs)
    seen = []
    for vertex in topological_while(
        graph, lambda v: v in seen and v is not e, lambda v: v is e
    ):
        seen.append(vertex)
    assert "f" not in {v.name for v in seen} and "g" not in {v.name for v in seen}
    assert {"a", "b", "c", "d", "e"} <= {v.name for v in seen}


def test_frontier_reaches_a_join_only_when_every_parent_is_done():
    (a, b, c, d, e, f, g), pairs = diamond()
    graph = make_trail_graph(pairs)
    frontier = Frontier(graph)
    assert frontier.reached(a) and not frontier.reached(b)
    assert frontier.mark_done(a) == [b, e]
    for step in (b, c, d):
        frontier.mark_done(step)
    assert not frontier.reached(g)
    frontier.mark_done(e)
    assert frontier.mark_done(f) == [g]
    assert frontier.mark_done(f) == []  # idempotent


def test_strict_progeny_leaves_joins_with_outside_parents():
    (a, b, c, d, e, f, g), pairs = diamond()
    graph = make_trail_graph(pairs)
    assert strict_progeny(graph, [e]) == {e, f}
    assert strict_progeny(graph, [a]) == {a, b, c, d, e, f, g}
    assert strict_progeny(graph, [e, b]) == {b, c, d, e, f, g}
