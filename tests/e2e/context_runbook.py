"""The runbook the context crash tests kill: A stores a value in the context, W waits for
an answer (the server is killed while it waits), B reports what the context holds.

CONTEXT_KIND: "plain" (an object), "dict", or "shared" (a threadsafe_class);
CONTEXT_EXECUTOR: the executor every step runs on."""

import os
import uuid

from trail import Step, threadsafe_class


class Notes:
    def __init__(self) -> None:
        self.made = uuid.uuid4().hex  # differs at every import: a take-up must restore it
        self.value = ""
        self.seen: list[str] = []


def store(trail_env, context):
    token = uuid.uuid4().hex
    if isinstance(context, dict):
        context["value"] = token
        context["seen"].append("A")  # changed in place: saved all the same
        return {"value": token, "made": context["made"]}
    context.value = token
    context.seen = [*context.seen, "A"]
    return {"value": token, "made": context.made}


def wait(trail_env, context):
    return trail_env.input("go on?")


def report(trail_env, context):
    if isinstance(context, dict):
        return {"value": context["value"], "seen": context["seen"], "made": context["made"]}
    return {"value": context.value, "seen": list(context.seen), "made": context.made}


KIND = os.environ.get("CONTEXT_KIND", "plain")
executor = os.environ.get("CONTEXT_EXECUTOR", "process")
if KIND == "shared":
    context = threadsafe_class(Notes)()
elif KIND == "dict":
    context = {"made": uuid.uuid4().hex, "value": "", "seen": []}
else:
    context = Notes()

a = Step(store, name="A")
w = Step(wait, name="W")
b = Step(report, name="B")
trail = [(a, w), (w, b)]
