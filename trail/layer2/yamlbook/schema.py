"""The JSON Schema of a YAML runbook: ``trail schema`` prints it for editors' YAML language
servers, and every file is checked against it (by jsonschema) before it becomes Steps."""

from __future__ import annotations

from typing import Any

NAME_PATTERN = "^[A-Za-z_][A-Za-z0-9_-]*$"

_seconds = {"type": "number", "exclusiveMinimum": 0}
_strings = {"type": "array", "items": {"type": "string"}}
_scalar = {"type": ["string", "number", "boolean", "null"]}
_percent = {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*%\s*$"}
_hosts_size = {"anyOf": [{"type": "integer", "minimum": 1}, _percent]}

STEP_PROPERTIES: dict[str, dict[str, Any]] = {
    "name": {"type": "string", "pattern": NAME_PATTERN,
             "description": "The step's name, unique in the runbook; {name} in later "
                            "steps' templates is its value."},
    "run": {"description": "A command: a string (split into words, no shell unless "
                           "shell: true) or a list of arguments. {key} fills in a value.",
            "anyOf": [{"type": "string", "minLength": 1},
                      {"type": "array", "items": {"type": "string"}, "minItems": 1}]},
    "shell": {"type": "boolean",
              "description": "Run the string command with sh; values are shell-quoted."},
    "raw": {**_strings, "description": "Template keys put into a shell command unquoted."},
    "instruction": {"type": "string", "minLength": 1,
                    "description": "A manual step: shown to the operator, who marks it done."},
    "reply_needed": {"type": "boolean",
                     "description": "An instruction waits to be marked done (default true); "
                                    "false only shows it."},
    "ask": {"type": "string", "minLength": 1,
            "description": "A question; the answer is this step's value."},
    "choices": {"type": "array", "items": _scalar, "minItems": 1,
                "description": "The answers an ask step accepts."},
    "call": {"type": "string", "pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
             "description": "A Python function module:function, called (trail_env, context)."},
    "needs": {**_strings, "description": "Steps that must succeed before this one."},
    "host": {"type": "string", "minLength": 1, "description": "Run the command on this host."},
    "hosts": {"description": "One step per host (name@host), or a host group's name.",
              "anyOf": [{"type": "array", "items": {"type": "string"}, "minItems": 1},
                        {"type": "string", "minLength": 1}]},
    "limit": {"type": "integer", "minimum": 1,
              "description": "At most this many of the hosts' steps at once."},
    "batch": {"description": "A rolling update: hosts per batch (a number, a percentage of "
                             "the hosts such as '20%', or a list of sizes that ramps up); "
                             "the next batch starts when this one is through.",
              "anyOf": [*_hosts_size["anyOf"],
                        {"type": "array", "items": _hosts_size, "minItems": 1}]},
    "canary": {**_hosts_size, "description": "This many hosts (or a percentage) go first, "
                                             "alone; one failing stops the rollout."},
    "max_fail": {"anyOf": [{"type": "integer", "minimum": 0}, _percent],
                 "description": "How many hosts of a batch may fail (or a percentage) before "
                                "the rollout asks the operator (or stops: on_max_fail)."},
    "on_max_fail": {"enum": ["ask", "stop"],
                    "description": "Beyond max_fail: ask the operator whether to go on "
                                   "(default), or stop the rollout."},
    "user": {"type": "string", "description": "The ssh user on the host."},
    "port": {"type": "integer", "minimum": 1, "maximum": 65535,
             "description": "The ssh port on the host."},
    "ssh_options": {"description": "ssh arguments (a list) or -o options (a mapping).",
                    "anyOf": [{"type": "array", "items": {"type": "string"}},
                              {"type": "object", "additionalProperties": _scalar}]},
    "sudo": {"type": "boolean", "description": "Run the command as root through sudo -n."},
    "sudo_user": {"type": "string", "description": "Run the command as this user (sudo -n)."},
    "env": {"type": "object", "additionalProperties": {"type": "string"},
            "description": "Environment variables for the command (values templated)."},
    "cwd": {"type": "string", "description": "The command's working directory."},
    "ok_exit_codes": {"type": "array", "items": {"type": "integer"}, "minItems": 1,
                      "description": "Exit codes that count as success (default [0])."},
    "timeout": {**_seconds, "description": "Seconds before the step is stopped and fails."},
    "kill_grace": {"type": "number", "minimum": 0,
                   "description": "Seconds between SIGTERM and SIGKILL when stopped."},
    "retries": {"type": "integer", "minimum": 0, "description": "Runs again after a failure."},
    "retry_delay": {"type": "number", "minimum": 0, "description": "Seconds before a retry."},
    "backoff": {"type": "number", "minimum": 1, 
                "description": "Each retry waits this times longer."},
    "max_delay": {"type": "number", "minimum": 0, 
                  "description": "The longest wait between retries."},
    "pause_on_fail": {"type": "boolean", "description": "Pause when it fails (default true)."},
    "skip_progeny_on_failure": {"type": "boolean",
                                "description": "Skip the steps below it when it fails."},
    "idempotent": {"type": "boolean", "description": "Safe to run again after a crash."},
    "priority": {"type": "integer", "description": "Higher runs first when slots are short."},
    "pool": {"type": "string", "minLength": 1, "description": "A pool of limited slots."},
    "pool_size": {"type": "integer", "minimum": 1, "description": "The pool's slots."},
    "executor": {"enum": ["process", "thread"], "description": "Where this step runs."},
    "tags": {"type": "object", "additionalProperties": _scalar,
             "description": "More tags to select the step by (trail pause KEY=VALUE)."},
    "when": {"type": "object", "additionalProperties": False,
             "description": "Run only when an earlier step's value (step:) or a context "
                            "value (key:) says so; otherwise do nothing and skip the steps "
                            "below.",
             "properties": {"step": {"type": "string"}, "key": {"type": "string"},
                            "equals": _scalar,
                            "not_equals": _scalar, "in": {"type": "array", "items": _scalar}},
             "minProperties": 2, "maxProperties": 2},
}

# What a phase of a rolling update (a step's phases:) may say: its command and options.
PHASE_KEYS = ("name", "run", "shell", "raw", "sudo", "sudo_user", "env", "cwd",
              "ok_exit_codes", "timeout", "kill_grace", "retries", "retry_delay", "backoff",
              "max_delay", "pause_on_fail", "tags")
STEP_PROPERTIES["phases"] = {
    "type": "array", "minItems": 1,
    "description": "A rolling update's phases, run on each host in order (drain, restart, "
                   "check); the steps are phase@host.",
    "items": {"type": "object", "required": ["name", "run"], "additionalProperties": False,
              "properties": {key: STEP_PROPERTIES[key] for key in PHASE_KEYS}}}
HOST_OPTIONS = ("user", "port", "ssh_options", "sudo", "sudo_user")

TOP_PROPERTIES: dict[str, dict[str, Any]] = {
    "name": {"type": "string", "minLength": 1, "description": "The trail's name."},
    "description": {"type": "string"},
    "context": {"type": "object", "description": "Values steps template with {key}."},
    "max_parallel": {"type": "integer", "minimum": 1,
                     "description": "At most this many steps at once."},
    "executor": {"enum": ["process", "thread"], "description": "Where steps run."},
    "answers": {"type": "object", "additionalProperties": _scalar,
                "description": "Step name -> reply, for trail run --auto-answer."},
    "host_groups": {"type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"},
                                             "minItems": 1},
                    "description": "Named lists of hosts, for a step's hosts:."},
    "host_options": {"type": "object", "additionalProperties": False,
                     "properties": {key: STEP_PROPERTIES[key] for key in HOST_OPTIONS},
                     "description": "Options of every step on a host (a step's own win; "
                                    "its ssh_options add to these)."},
    "steps": {"type": "array", "minItems": 1,
              "items": {"type": "object", "required": ["name"],
                        "properties": STEP_PROPERTIES, "additionalProperties": False}},
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "trail YAML runbook",
    "type": "object",
    "required": ["steps"],
    "properties": TOP_PROPERTIES,
    "additionalProperties": False,
}

KINDS = ("run", "instruction", "ask", "call", "phases")
