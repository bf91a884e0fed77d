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

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from trail._lazy import lazy_names
from trail.errors import (
    CycleError,
    DagFileMismatchError,
    DefinitionError,
    HostUnreachableError,
    InputTimeoutError,
    InstructionNotCompletedError,
    JournalError,
    JournalMismatchError,
    MatchTrailsException,
    ProtocolError,
    RemoteStepError,
    RolloutStoppedError,
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

__version__ = "0.1.0"

__all__ = [
    "Action",
    "Chain",
    "CycleError",
    "DagFileMismatchError",
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
    "MatchTrailsException",
    "Output",
    "PauseOnFailChanged",
    "Prompt",
    "ProtocolError",
    "Hosts",
    "RemoteCommand",
    "Rollout",
    "RemoteStepError",
    "RolloutStoppedError",
    "RunbookError",
    "ShellCommand",
    "ShellCommandFailedError",
    "ShellResult",
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
    "bind_calls",
    "create_conditional_step",
    "definition_dot",
    "extraction_wrapper",
    "interactive",
    "live_dot",
    "make_context_attribute_based_templating_function",
    "make_simple_templating_function",
    "monitor_trail",
    "on_hosts",
    "rolling",
    "render",
    "threadsafe_class",
    "topological_while",
    "trail_manager",
    "write_trail_definition_as_dot",
]

# Names load from their modules when first used (PEP 562): a runbook's ``from trail import
# Step, RemoteCommand`` does not pay for the REPL, diagrams, monitor or the web page.
_LAZY: dict[str, str] = {
    "Action": "trail.core",
    "Chain": "trail.core",
    "Event": "trail.layer1.events",
    "EventStream": "trail.layer2",
    "Finished": "trail.layer1.events",
    "Hello": "trail.layer1.events",
    "Hosts": "trail.layer2",
    "Input": "trail.layer1.events",
    "Instruction": "trail.layer2",
    "InteractiveTrail": "trail.layer2",
    "Output": "trail.layer1.events",
    "PauseOnFailChanged": "trail.layer1.events",
    "Prompt": "trail.layer1.events",
    "RemoteCommand": "trail.layer2",
    "Rollout": "trail.layer2",
    "ShellCommand": "trail.layer2",
    "ShellResult": "trail.layer2",
    "ShuttingDown": "trail.layer1.events",
    "State": "trail.core",
    "StateChanged": "trail.layer1.events",
    "StatusField": "trail.layer1",
    "StatusMirror": "trail.layer2",
    "Step": "trail.core",
    "StepEvent": "trail.layer1.events",
    "TrailClient": "trail.layer2",
    "TrailEnvironment": "trail.layer1",
    "TrailServer": "trail.layer2",
    "accepts_context": "trail.layer2",
    "accepts_environment": "trail.layer2",
    "accepts_nothing": "trail.layer2",
    "bind_calls": "trail.layer2",
    "create_conditional_step": "trail.layer2",
    "definition_dot": "trail.layer2",
    "extraction_wrapper": "trail.layer2",
    "interactive": "trail.layer2",
    "live_dot": "trail.layer2",
    "make_context_attribute_based_templating_function": "trail.layer2",
    "make_simple_templating_function": "trail.layer2",
    "monitor_trail": "trail.layer2",
    "on_hosts": "trail.layer2",
    "render": "trail.layer2",
    "rolling": "trail.layer2",
    "threadsafe_class": "trail.layer2",
    "topological_while": "trail.core",
    "trail_manager": "trail.layer1",
    "write_trail_definition_as_dot": "trail.layer2",
}


__getattr__, __dir__ = lazy_names(globals(), _LAZY)


if TYPE_CHECKING:
    from trail.core import Action, Chain, State, Step, topological_while
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
        Hosts,
        Instruction,
        InteractiveTrail,
        RemoteCommand,
        Rollout,
        ShellCommand,
        ShellResult,
        StatusMirror,
        TrailClient,
        TrailServer,
        accepts_context,
        accepts_environment,
        accepts_nothing,
        bind_calls,
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
        rolling,
        threadsafe_class,
        write_trail_definition_as_dot,
    )

# The library logs, never prints: without a handler configured by the application, a step's
# failure (logged with its traceback) must not reach stderr through logging's last resort.
logging.getLogger("trail").addHandler(logging.NullHandler())
