"""A runbook of manual instructions: the operator does each and marks it done.

    trail run examples/runbook.py

Each Instruction waits for a reply: True (or yes/done) marks it done, False fails it.
"""

from __future__ import annotations

from dataclasses import dataclass

from trail import Instruction, Step


@dataclass
class Ticket:
    number: str
    host: str
    disk: str


trail = (
    Step(Instruction("announce", "Post in #ops: starting {number}, disk swap on {host}"))
    >> Step(Instruction("drain", "Drain {host} from the load balancer"))
    >> Step(Instruction("swap_disk", "Replace {disk} on {host} and wait for the rebuild"))
    >> Step(Instruction("undrain", "Put {host} back into the load balancer"))
    >> Step(Instruction("close", "Close {number}", reply_needed=False))
)
context = Ticket("OPS-1234", "web7", "/dev/sdb")
