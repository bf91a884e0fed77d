"""A runbook of manual instructions: the operator does each and marks it done.

    python examples/runbook.py       # a Python prompt: runbook() shows what to do next,
                                     # runbook(2) marks instruction 2 done
    trail run examples/runbook.py    # or with the live view

Each Instruction waits for a reply: True (or yes/done) marks it done, False fails it.
"""

from __future__ import annotations

from dataclasses import dataclass

from trail import (
    Instruction,
    InteractiveTrail,
    StatusField,
    Step,
    TrailClient,
    TrailServer,
    interactive,
    make_simple_templating_function,
)


@dataclass
class Ticket:
    number: str
    host: str
    disk: str


def instruction(name: str, text: str, **options) -> Step:
    return Step(Instruction(name, make_simple_templating_function(text), **options))


announce = instruction("announce", "Post in #ops: starting {number}, disk swap on {host}")
drain = instruction("drain", "Drain {host} from the load balancer")
swap_disk = instruction("swap_disk", "Replace {disk} on {host} and wait for the rebuild")
check_logs = instruction("check_logs", "Look for disk errors in {host}'s kernel log")
undrain = instruction("undrain", "Put {host} back into the load balancer")
close = instruction("close", "Close {number}", reply_needed=False)

#                                  |--> swap_disk --> undrain --> close
# announce --> drain ------------->|
#                                  |--> check_logs
trail = [
    (announce, drain),
    (drain, swap_disk),
    (drain, check_logs),
    (swap_disk, undrain),
    (undrain, close),
]
context = Ticket("OPS-1234", "web7", "/dev/sdb")


if __name__ == "__main__":
    server = TrailServer(trail, delay=0.1, context=context)
    server.serve(threaded=True)
    runbook_trail = TrailClient(server.socket_file)
    shown = InteractiveTrail(runbook_trail)
    runbook_trail.start()

    def runbook(n: int | None = None) -> None:
        """Show the instructions waiting to be done; ``runbook(n)`` first marks n done."""
        if n is not None:
            done = runbook_trail.send_message_to_steps(True, dry_run=False, n=n)
            print(f"Instruction {n} marked done." if len(done) == 1
                  else f"Instruction {n} is not waiting to be done.")
        shown.status(fields=[StatusField.UNREPLIED_PROMPT_MESSAGE], states=[Step.RUN])

    interactive(globals(), trail=runbook_trail, prompt="Runbook Trail>")
    shown.stop(dry_run=False)
    shown.shutdown(dry_run=False)
