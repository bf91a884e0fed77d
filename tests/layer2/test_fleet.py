"""What a fleet's runbook builds, before anything runs: Hosts' shared options, {host} in
commands, a rollout's batches, tags and links, and the mistakes refused at load time (the
runs themselves are in tests/remote/test_rolling.py, against a real sshd)."""

from __future__ import annotations

import pytest

from trail import Hosts, Step, on_hosts, rolling
from trail.core.dag import make_trail_graph
from trail.layer2.steps.rollout import cut_into_batches, too_many

SIX = [f"web{i}" for i in range(1, 7)]


def test_a_fleet_gives_its_options_once_and_a_call_adds_to_them():
    fleet = Hosts(SIX, user="deploy", ssh_options=["-F", "cfg"], sudo=True, retries=2)
    [step] = fleet.on_hosts("true", name="x", ssh_options={"ConnectTimeout": 3},
                            user="ops")[:1]
    target = step.action_function.target
    assert (target.user, target.sudo_user) == ("ops", "root")
    # The call's ssh options come first: ssh takes the first value it is given.
    assert target.ssh_options == ("-o", "ConnectTimeout=3", "-F", "cfg")
    assert step.retries == 2 and step.tags["host"] == "web1"
    assert [s.name for s in on_hosts(fleet, "true", name="y")] == [f"y@{h}" for h in SIX]
    assert fleet.subset(["web2"]).defaults == fleet.defaults
    with pytest.raises(ValueError, match="not a fleet-wide option"):
        Hosts(SIX, batch=2)
    with pytest.raises(ValueError, match="not hosts of this fleet"):
        fleet.subset(["db9"])
    with pytest.raises(TypeError, match="a list of host names"):
        Hosts("web1")


def test_the_host_is_in_the_command_without_a_lambda():
    def health(trail_env, context, host):
        return ["curl", f"http://{host}:{context['port']}/health"]

    fleet = Hosts(["web1", "web2"])
    context = {"service": "api", "port": 8080}
    [templated, _] = fleet.on_hosts("lb drain {host} --service {service}", name="drain")
    [argv, _] = fleet.on_hosts(["lb", "drain", "{host}"], name="drain2")
    [function, _] = fleet.on_hosts(health, name="check")
    [per_host, _] = fleet.on_hosts(lambda host: f"echo {host} {{service}}", per_host=True,
                                   name="old")
    assert templated.action_function.command(None, context) == "lb drain web1 --service api"
    assert argv.action_function.command(None, context) == ["lb", "drain", "web1"]
    assert function.action_function.command(None, context) == [
        "curl", "http://web1:8080/health"]
    assert per_host.action_function.command(None, context) == "echo web1 api"
    with pytest.raises(AttributeError, match="needs 'nope'"):
        fleet.on_hosts("echo {host} {nope}", name="z")[0].action_function.command(None, {})


def test_batches_canary_percentages_and_ramps():
    assert cut_into_batches(SIX, 4, None) == [("batch 1", SIX[:4]), ("batch 2", SIX[4:])]
    assert cut_into_batches(SIX, "50%", 1) == [
        ("canary", ["web1"]), ("batch 1", SIX[1:4]), ("batch 2", SIX[4:])]
    assert cut_into_batches(SIX, [1, 2, "50%"], None) == [
        ("batch 1", ["web1"]), ("batch 2", SIX[1:3]), ("batch 3", SIX[3:6])]
    assert cut_into_batches(SIX, None, "34%") == [("canary", SIX[:2]), ("batch 1", SIX[2:])]
    assert cut_into_batches(SIX, "1%", None)[0] == ("batch 1", ["web1"])  # at least one
    for bad in (0, "0%", "half", -1, True):
        with pytest.raises(ValueError, match="batch must be"):
            cut_into_batches(SIX, bad, None)
    with pytest.raises(ValueError, match="takes every host"):
        cut_into_batches(SIX, 2, 6)
    assert too_many(2, 10, 1) and not too_many(1, 10, 1)
    assert too_many(3, 10, "20%") and not too_many(2, 10, "20%")
    assert too_many(1, 3, 0) and not too_many(0, 3, "0%")


def test_a_rollout_links_each_host_through_its_phases_and_the_batches_through_gates():
    fleet = Hosts(SIX[:4])
    pre, post = Step(lambda e, c: 1, name="pre"), Step(lambda e, c: 2, name="post")
    rollout = fleet.rolling([("drain", "a"), ("restart", "b", {"timeout": 60, "retries": 1}),
                             ("check", "c")], name="deploy", batch=2, canary=1)
    graph = make_trail_graph(pre >> rollout >> post)
    named = {step.name: step for step in graph.nodes}
    edges = {(a.name, b.name) for a, b in graph.edges}
    assert [g.name for g in rollout.gates] == ["deploy/canary", "deploy/batch1",
                                               "deploy/batch2"]
    assert {("pre", "drain@web1"), ("drain@web1", "restart@web1"),
            ("restart@web1", "check@web1"), ("check@web1", "deploy/canary"),
            ("deploy/canary", "drain@web2"), ("deploy/canary", "drain@web3"),
            ("check@web2", "deploy/batch1"), ("check@web3", "deploy/batch1"),
            ("deploy/batch1", "drain@web4"), ("deploy/batch2", "post")} <= edges
    assert sum(1 for a, b in edges if b == "drain@web2") == 1  # only the gate above
    restart = named["restart@web3"]
    assert restart.tags == {"name": "restart@web3", "host": "web3", "rollout": "deploy",
                            "batch": 1, "phase": "restart", "pause_on_fail": False,
                            "retries": 1, "executor": "thread"}
    assert restart.pause_on_fail is False and restart.action_function.timeout == 60
    assert restart.executor == "thread"  # a thread waits on ssh: no forked server per host
    assert all(step.executor == "process"
               for step in fleet.on_hosts("true", name="forked", executor="process"))
    assert named["deploy/canary"].gate and named["deploy/canary"].tags["batch"] == "canary"
    kept = fleet.rolling({"restart": "b"}, name="r", pause_on_fail=True)
    assert all(s.pause_on_fail for s in kept.host_steps["web1"])
    assert len(kept.gates) == 1  # no batch: every host at once, then the gate


def test_rollouts_refuse_what_they_cannot_run():
    with pytest.raises(ValueError, match="max_fail applies to a rolling update"):
        on_hosts(SIX, "true", name="x", max_fail=1)
    with pytest.raises(ValueError, match="max_fail must be"):
        rolling(SIX, {"x": "true"}, name="x", batch=2, max_fail=-1)
    with pytest.raises(ValueError, match="two phases are named 'x'"):
        rolling(SIX, [("x", "a"), ("x", "b")], name="r")
    with pytest.raises(ValueError, match="a phase is"):
        rolling(SIX, ["x"], name="r")  # type: ignore[list-item]
    with pytest.raises(ValueError, match="more than once"):
        rolling(["a", "a"], {"x": "true"}, name="r")


# --- the same in a YAML runbook ------------------------------------------------------------

def load(tmp_path, text: str):
    from trail.layer2.runbook import load_runbook

    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    return path, load_runbook(path)


def test_a_yaml_rollout_is_the_same_plan_with_the_fleets_options_given_once(tmp_path):
    _, book = load(tmp_path, """\
context: {service: api}
host_groups: {web: [web1, web2, web3, web4, web5]}
host_options: {user: deploy, ssh_options: ["-F", "cfg"]}
steps:
  - name: pre
    run: [echo, hi]
  - name: deploy
    hosts: web
    batch: 2
    canary: 1
    max_fail: "20%"
    needs: [pre]
    ssh_options: {ConnectTimeout: 3}
    phases:
      - name: drain
        run: "lb drain {host} {service}"
      - name: restart
        run: [systemctl, restart, "{service}"]
        sudo: true
        retries: 1
  - name: post
    run: [echo, "{deploy}"]
    needs: [deploy]
""")
    graph = make_trail_graph(book.trail)
    named = {step.name: step for step in graph.nodes}
    parents = {name: sorted(p.name for p in graph.predecessors(step))
               for name, step in named.items()}
    assert parents["drain@web1"] == ["pre"] and parents["restart@web1"] == ["drain@web1"]
    assert parents["deploy/canary"] == ["restart@web1"]
    assert parents["drain@web2"] == parents["drain@web3"] == ["deploy/canary"]
    assert parents["deploy/batch1"] == ["restart@web2", "restart@web3"]
    assert parents["post"] == ["deploy/batch2"]
    drain = named["drain@web2"].action_function
    assert drain.command(None, {"service": "api"}) == ["lb", "drain", "web2", "api"]
    assert (drain.target.user, drain.target.ssh_options) == (
        "deploy", ("-o", "ConnectTimeout=3", "-F", "cfg"))
    restart = named["restart@web4"]
    assert restart.action_function.target.sudo_user == "root" and restart.retries == 1
    assert {k: restart.tags[k] for k in ("rollout", "batch", "phase")} == {
        "rollout": "deploy", "batch": 2, "phase": "restart"}
    assert named["deploy/batch1"].gate


def test_yaml_rollout_mistakes_are_named_at_their_lines(tmp_path):
    from trail.errors import YamlRunbookError

    with pytest.raises(YamlRunbookError) as caught:
        load(tmp_path, """\
host_groups: {web: [web1, web2]}
host_options: {usr: deploy}
steps:
  - name: a
    run: [echo, "{host}"]
    batch: 2
  - name: b
    run: "echo {host}"
    hosts: web
    max_fail: 1
  - name: c
    hosts: web
    canary: 2
    on_max_fail: maybe
    phases:
      - name: a
        run: "x {nope}"
      - name: d
        run: "y"
        hosts: [z]
""")
    path = str(tmp_path / "fleet.yaml")
    assert [str(p)[len(path) + 1:] for p in caught.value.problems] == [
        "2:16: host_options: unknown host_options key 'usr' (did you mean 'user'?)",
        "5:17: steps[0].run[1]: the template names 'host', which only a step with host or "
        "hosts has",
        "6:5: steps[0].batch: 'batch' applies to a step with hosts (a rolling update)",
        "10:5: steps[1].max_fail: 'max_fail' applies to a rolling update: give batch, canary "
        "or phases too",
        "13:13: steps[2].canary: canary=2 takes every host (2): leave some for the batches, "
        "or give batch= alone",
        "14:18: steps[2].on_max_fail: 'maybe' is not one of ['ask', 'stop']",
        "16:15: steps[2].phases[0].name: the phase 'a' has the name of a step: in templates "
        "{a} would mean both",
        "17:14: steps[2].phases[0].run: the template names 'nope', which is neither a context "
        "key nor a step this one needs",
        "20:9: steps[2].phases[1]: unknown phase key 'hosts'",
    ]


def test_export_names_a_rolling_update_it_cannot_write_yet():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).parents[2]
    result = subprocess.run(
        [sys.executable, "-m", "trail", "export", "--yaml", str(root / "examples" / "fleet.py")],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(root)})
    assert result.returncode != 0
    assert ("step 'deploy': a rolling update, which export does not write yet: in YAML it is "
            "a step with hosts, batch (canary, max_fail) and phases") in result.stderr
