"""trail: a runbook engine. Run a DAG of steps and steer it while it runs.

General layout (imports point down only):

- ``trail.core``: pure data and algorithms: Step, the trail graph, topological_while,
  states and the transition table.
- ``trail.layer1``: the engine: the trail manager's event loop, executors, API handlers,
  the wire protocol, sockets.
- ``trail.layer2``: what users touch: TrailServer, TrailClient, step helpers (ShellCommand,
  Instruction, conditional steps, templating, a shared context), InteractiveTrail,
  monitor_trail, diagrams, the ``trail`` command.

An AutoTrail runbook moves over by changing ``autotrail`` to ``trail`` in its imports.
"""

from trail.core import Action, Chain, State, Step, topological_while
from trail.errors import (
    CycleError,
    DefinitionError,
    InputTimeoutError,
    ProtocolError,
    RemoteStepError,
    SocketInUseError,
    StepError,
    StepInterruptedError,
    StepProcessError,
    StepTimeoutError,
    TrailClientError,
    TrailConnectionError,
    TrailError,
    TransitionError,
)
from trail.layer1 import StatusField, TrailEnvironment, trail_manager
from trail.layer2 import (
    EventStream,
    HostUnreachableError,
    Instruction,
    InstructionNotCompletedError,
    InteractiveTrail,
    RemoteCommand,
    ShellCommand,
    ShellCommandFailedError,
    TrailClient,
    TrailServer,
    accepts_context,
    accepts_environment,
    accepts_nothing,
    create_conditional_step,
    definition_dot,
    extraction_wrapper,
    interactive,
    live_dot,
    make_context_attribute_based_templating_function,
    make_simple_templating_function,
    monitor_trail,
    on_hosts,
    render,
    threadsafe_class,
    write_trail_definition_as_dot,
)

__version__ = "0.1.0"

__all__ = [
    "Action",
    "Chain",
    "CycleError",
    "DefinitionError",
    "EventStream",
    "HostUnreachableError",
    "InputTimeoutError",
    "Instruction",
    "InstructionNotCompletedError",
    "InteractiveTrail",
    "ProtocolError",
    "RemoteCommand",
    "RemoteStepError",
    "ShellCommand",
    "ShellCommandFailedError",
    "SocketInUseError",
    "State",
    "StatusField",
    "Step",
    "StepError",
    "StepInterruptedError",
    "StepProcessError",
    "StepTimeoutError",
    "TrailClient",
    "TrailClientError",
    "TrailConnectionError",
    "TrailEnvironment",
    "TrailError",
    "TrailServer",
    "TransitionError",
    "accepts_context",
    "accepts_environment",
    "accepts_nothing",
    "create_conditional_step",
    "definition_dot",
    "extraction_wrapper",
    "interactive",
    "live_dot",
    "make_context_attribute_based_templating_function",
    "make_simple_templating_function",
    "monitor_trail",
    "on_hosts",
    "render",
    "threadsafe_class",
    "topological_while",
    "trail_manager",
    "write_trail_definition_as_dot",
]
