"""trail's core: pure data and algorithms (steps, the trail graph, states). Imports no layer."""

from trail.core.dag import (
    Frontier,
    make_trail_graph,
    progeny,
    steps_in_order,
    strict_progeny,
    topological_while,
)
from trail.core.states import (
    DONE_STATES,
    IGNORE_STATES,
    TRANSITIONS,
    Action,
    State,
    states_for,
    transition,
)
from trail.core.step import Chain, Step

__all__ = [
    "DONE_STATES",
    "IGNORE_STATES",
    "TRANSITIONS",
    "Action",
    "Chain",
    "Frontier",
    "State",
    "Step",
    "make_trail_graph",
    "progeny",
    "states_for",
    "steps_in_order",
    "strict_progeny",
    "topological_while",
    "transition",
]
