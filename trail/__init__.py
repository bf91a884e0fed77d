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

import logging

from trail.core import Action, Chain, State, Step, topological_while
from trail.errors import (
    CycleError,
    DefinitionError,
    HostUnreachableError,
    InputTimeoutError,
    InstructionNotCompletedError,
    JournalError,
    JournalMismatchError,
    ProtocolError,
    RemoteStepError,
    RunbookError,
    ServerShuttingDownError,
    ShellCommandFailedError,
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
from trail.layer1.events import (
    Event,
    Finished,
    Hello,
    Input,
    Output,
    PauseOnFailChanged,
    Prompt,
    ShuttingDown,
    StateChanged,
    StepEvent,
)
from trail.layer2 import (
    EventStream,
    Instruction,
    InteractiveTrail,
    RemoteCommand,
    ShellCommand,
    StatusMirror,
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
    "Event",
    "Finished",
    "EventStream",
    "Hello",
    "HostUnreachableError",
    "Input",
    "InputTimeoutError",
    "Instruction",
    "InstructionNotCompletedError",
    "InteractiveTrail",
    "JournalError",
    "JournalMismatchError",
    "Output",
    "PauseOnFailChanged",
    "Prompt",
    "ProtocolError",
    "RemoteCommand",
    "RemoteStepError",
    "RunbookError",
    "ShellCommand",
    "ShellCommandFailedError",
    "ShuttingDown",
    "ServerShuttingDownError",
    "SocketInUseError",
    "State",
    "StateChanged",
    "StatusField",
    "StatusMirror",
    "Step",
    "StepError",
    "StepEvent",
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

# The library logs, never prints: without a handler configured by the application, a step's
# failure (logged with its traceback) must not reach stderr through logging's last resort.
logging.getLogger("trail").addHandler(logging.NullHandler())
