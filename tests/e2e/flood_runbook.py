"""A runbook that floods its output: MB megabytes in 100-byte lines from a command, one
MB-megabyte line from a command, one MB-megabyte output() from a Python step."""

import os

from trail import ShellCommand, Step

MB = int(os.environ.get("FLOOD_MB", "10"))
SIZE = MB * 1_000_000


def big_output(trail_env, context):
    trail_env.output("z" * SIZE)
    trail_env.output("the end of big_output")
    return "done"


many = ShellCommand("many_lines", f"head -c {SIZE} /dev/zero | tr '\\0' x | fold -w 99; "
                                  "echo the end of many_lines", shell=True)
one = ShellCommand("one_line", f"head -c {SIZE} /dev/zero | tr '\\0' y; echo; "
                               "echo the end of one_line", shell=True)
def hold(trail_env, context):
    return trail_env.input("looked enough?")  # keeps the run (and `trail run`) going


flood = [Step(many, name="many_lines"), Step(one, name="one_line"), Step(big_output)]
end = Step(hold)
trail = [(step, end) for step in flood]
