"""Table-driven tests of the kubelet's pure rules: commands, env, downward API, back-off, phase, probes, images."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import pytest

from atoll.api.errors import NotFound
from atoll.cluster.kubelet import environment as envmod
from atoll.cluster.kubelet.images.catalog import ImageCatalog, parse_reference
from atoll.cluster.kubelet.kubelet import qos_class, should_restart
from atoll.cluster.kubelet.limits import cpu_max
from atoll.cluster.kubelet.podstatus import (
    Backoff,
    go_duration,
    keep_transition_times,
    pod_conditions,
    pod_phase,
)
from atoll.cluster.kubelet.probes import ProbeSpec, ResultCounter, resolve_port
from atoll.cluster.kubelet.process import cri_lines

Obj = dict[str, Any]


# -- $(VAR) expansion and command lines ------------------------------------------------------------
@pytest.mark.parametrize(("text", "want"), [
    ("$(A)", "a"),
    ("x-$(A)-$(B)", "x-a-b"),
    ("$$(A)", "$(A)"),                 # escaped
    ("$$$(A)", "$a"),
    ("$(MISSING)", "$(MISSING)"),      # undefined stays as written
    ("$(A", "$(A"),                    # unterminated
    ("$A", "$A"),                      # not a reference
    ("$", "$"),
    ("$()", "$()"),
    ("a$$b", "a$b"),
])
def test_expand(text: str, want: str) -> None:
    assert envmod.expand(text, {"A": "a", "B": "b"}.get) == want


@pytest.mark.parametrize(("container", "want"), [
    ({}, ("/entry", "--default")),                                       # image defaults
    ({"args": ["x", "$(A)"]}, ("/entry", "x", "a")),                     # args replace CMD
    ({"command": ["sh"]}, ("sh",)),                                      # command drops CMD too
    ({"command": ["sh", "-c"], "args": ["echo $(A)"]}, ("sh", "-c", "echo a")),
    ({"command": ["$(A)"], "args": ["$$(A)"]}, ("a", "$(A)")),
])
def test_command_line(container: Obj, want: tuple[str, ...]) -> None:
    assert envmod.command_line(("/entry",), ("--default",), container, {"A": "a"}) == want


POD: Obj = {"metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "web", "tier": "x"},
                         "annotations": {"note": "n"}},
            "spec": {"nodeName": "node-1", "serviceAccountName": "robot"},
            "status": {"podIP": "127.16.0.5", "hostIP": "127.0.0.1", "podIPs": [{"ip": "127.16.0.5"}]}}


@pytest.mark.parametrize(("path", "want"), [
    ("metadata.name", "p"), ("metadata.namespace", "ns"), ("metadata.uid", "u-1"),
    ("metadata.labels['app']", "web"), ("metadata.labels['nope']", ""), ("metadata.annotations['note']", "n"),
    ("metadata.labels", 'app="web"\ntier="x"'),
    ("spec.nodeName", "node-1"), ("spec.serviceAccountName", "robot"),
    ("status.podIP", "127.16.0.5"), ("status.hostIP", "127.0.0.1"), ("status.podIPs", "127.16.0.5"),
])
def test_downward_api(path: str, want: str) -> None:
    assert envmod.field_value(POD, path) == want


def test_downward_api_rejects_unknown_paths() -> None:
    with pytest.raises(envmod.ConfigError):
        envmod.field_value(POD, "spec.containers")


@pytest.mark.parametrize(("resources", "ref", "want"), [
    ({"limits": {"cpu": "500m"}}, {"resource": "limits.cpu"}, "1"),                 # rounded up
    ({"limits": {"cpu": "500m"}}, {"resource": "limits.cpu", "divisor": "1m"}, "500"),
    ({"limits": {"memory": "64Mi"}}, {"resource": "limits.memory", "divisor": "1Mi"}, "64"),
    ({"limits": {"memory": "64Mi"}}, {"resource": "requests.memory"}, str(64 * 2**20)),  # request defaults to limit
    ({}, {"resource": "limits.cpu"}, "4"),                                           # node allocatable
    ({}, {"resource": "requests.cpu"}, "0"),
])
def test_resource_field_ref(resources: Obj, ref: Obj, want: str) -> None:
    assert envmod.resource_value({"resources": resources}, ref, {"cpu": "4", "memory": "16Gi"}) == want


SOURCES: dict[tuple[str, str], Obj] = {
    ("ConfigMap", "cfg"): {"data": {"MODE": "fast", "LEVEL": "3"}},
    ("Secret", "sec"): {"data": {"TOKEN": base64.b64encode(b"s3cret").decode()}},
}


async def read(kind: str, namespace: str, name: str) -> Obj:
    assert namespace == "ns"
    if (kind, name) not in SOURCES:
        raise NotFound(f"{kind} {name} not found")
    return SOURCES[(kind, name)]


@pytest.mark.parametrize(("container", "want"), [
    ({"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "$(A)-$(POD_IP)"}]},
     {"A": "1", "B": "1-127.16.0.5"}),
    ({"env": [{"name": "B", "value": "$(A)"}, {"name": "A", "value": "1"}]}, {"B": "$(A)", "A": "1"}),  # order
    ({"envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}, {"secretRef": {"name": "sec"}}]},
     {"CFG_MODE": "fast", "CFG_LEVEL": "3", "TOKEN": "s3cret"}),
    ({"envFrom": [{"configMapRef": {"name": "cfg"}}], "env": [{"name": "MODE", "value": "slow"}]},
     {"MODE": "slow", "LEVEL": "3"}),                                    # env wins over envFrom
    ({"env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
              {"name": "T", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "TOKEN"}}},
              {"name": "O", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "x", "optional": True}}}]},
     {"N": "web", "T": "s3cret"}),
    ({"envFrom": [{"configMapRef": {"name": "gone", "optional": True}}]}, {}),
    ({"env": [{"name": "POD_IP", "value": "overridden"}]}, {"POD_IP": "overridden"}),
])
async def test_container_env(container: Obj, want: dict[str, str]) -> None:
    ctx = envmod.EnvContext(pod=POD, container=container, base={"POD_IP": "127.16.0.5"}, allocatable={})
    env = await envmod.container_env(ctx, read)
    assert env == {"POD_IP": "127.16.0.5", **want}


@pytest.mark.parametrize(("container", "message"), [
    ({"envFrom": [{"configMapRef": {"name": "gone"}}]}, 'configmap "gone" not found'),
    ({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}]}, 'secret "gone" not found'),
    ({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nokey"}}}]},
     "couldn't find key nokey in ConfigMap ns/cfg"),
])
async def test_container_env_errors(container: Obj, message: str) -> None:
    ctx = envmod.EnvContext(pod=POD, container=container, base={}, allocatable={})
    with pytest.raises(envmod.ConfigError, match=message):
        await envmod.container_env(ctx, read)


# -- back-off ----------------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_backoff_sequence_doubles_to_the_cap_and_resets() -> None:
    clock = Clock()
    b = Backoff(10, 300, clock)
    delays = []
    for _ in range(8):
        finished = clock.t                    # the container just exited
        if b.in_backoff_since("c", finished):
            delays.append(b.get("c"))
            clock.t += b.get("c")             # wait it out
            assert not b.in_backoff_since("c", finished)
        else:
            delays.append(0.0)
        b.next("c", finished)
        clock.t += 1                          # runs for a second, then crashes again
    assert delays == [0, 10, 20, 40, 80, 160, 300, 300]
    # after running for longer than 2 * cap (10 minutes) the back-off starts over
    clock.t += 601
    assert not b.in_backoff_since("c", clock.t)
    assert b.next("c", clock.t) == 10


@pytest.mark.parametrize(("seconds", "text"), [
    (10, "10s"), (20, "20s"), (80, "1m20s"), (160, "2m40s"), (300, "5m0s"), (0.5, "500ms"), (1.5, "1.5s"),
    (3700, "1h1m40s"), (0, "0s"),
])
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


# -- phase and conditions -------------------------------------------------------------------------------
def running(name: str = "c", ready: bool = True) -> Obj:
    return {"name": name, "ready": ready, "state": {"running": {}}}


def exited(name: str = "c", code: int = 0) -> Obj:
    return {"name": name, "ready": False, "state": {"terminated": {"exitCode": code}}}


def waiting(name: str = "c", last: int | None = None) -> Obj:
    st: Obj = {"name": name, "ready": False, "state": {"waiting": {"reason": "X"}}}
    if last is not None:
        st["lastState"] = {"terminated": {"exitCode": last}}
    return st


TWO = {"containers": [{"name": "a"}, {"name": "b"}]}


@pytest.mark.parametrize(("spec", "inits", "statuses", "terminal", "phase"), [
    ({"containers": [{"name": "c"}]}, [], [], False, "Pending"),                      # no status yet: unknown
    ({"containers": [{"name": "c"}]}, [], [waiting()], False, "Pending"),
    ({"containers": [{"name": "c"}]}, [], [running()], False, "Running"),
    ({"containers": [{"name": "c"}]}, [], [waiting(last=1)], False, "Running"),       # CrashLoopBackOff
    ({"containers": [{"name": "c"}]}, [], [exited(code=0)], False, "Running"),        # Always restarts it
    ({"containers": [{"name": "c"}], "restartPolicy": "Never"}, [], [exited(code=0)], False, "Succeeded"),
    ({"containers": [{"name": "c"}], "restartPolicy": "Never"}, [], [exited(code=2)], False, "Failed"),
    ({"containers": [{"name": "c"}], "restartPolicy": "OnFailure"}, [], [exited(code=0)], False, "Succeeded"),
    ({"containers": [{"name": "c"}], "restartPolicy": "OnFailure"}, [], [exited(code=2)], False, "Running"),
    ({**TWO, "restartPolicy": "Never"}, [], [running("a"), exited("b", 1)], False, "Running"),
    ({**TWO, "restartPolicy": "Never"}, [], [exited("a"), exited("b", 1)], False, "Failed"),
    ({"containers": [{"name": "c"}]}, [], [exited(code=0)], True, "Succeeded"),        # deleted, all clean
    ({"containers": [{"name": "c"}]}, [], [exited(code=143)], True, "Failed"),
    ({"containers": [{"name": "c"}], "initContainers": [{"name": "i"}]}, [running("i")], [waiting()], False,
     "Pending"),
    ({"containers": [{"name": "c"}], "initContainers": [{"name": "i"}]}, [exited("i")], [running()], False,
     "Running"),
    ({"containers": [{"name": "c"}], "initContainers": [{"name": "i"}], "restartPolicy": "Never"},
     [exited("i", 1)], [waiting()], False, "Failed"),
    ({"containers": [{"name": "c"}], "initContainers": [{"name": "i"}]}, [waiting("i", last=1)], [waiting()],
     False, "Pending"),
])
def test_pod_phase(spec: Obj, inits: list[Obj], statuses: list[Obj], terminal: bool, phase: str) -> None:
    assert pod_phase(spec, inits, statuses, terminal=terminal) == phase


def _conds(pod: Obj, inits: list[Obj], statuses: list[Obj], phase: str) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", "")) for c in
            pod_conditions(pod, inits, statuses, phase, sandbox_ready=True)}


@pytest.mark.parametrize(("pod", "inits", "statuses", "phase", "want"), [
    ({"spec": TWO}, [], [running("a"), running("b")], "Running",
     {"Ready": ("True", ""), "ContainersReady": ("True", ""), "Initialized": ("True", "")}),
    ({"spec": TWO}, [], [running("a"), running("b", ready=False)], "Running",
     {"Ready": ("False", "ContainersNotReady"), "ContainersReady": ("False", "ContainersNotReady")}),
    ({"spec": {"containers": [{"name": "c"}], "initContainers": [{"name": "i"}]}}, [running("i")], [waiting()],
     "Pending", {"Initialized": ("False", "ContainersNotInitialized"), "Ready": ("False", "ContainersNotReady")}),
    ({"spec": {"containers": [{"name": "c"}], "initContainers": [{"name": "side", "restartPolicy": "Always"}]}},
     [{**running("side", ready=False), "started": True}], [running()], "Running",
     {"Initialized": ("True", ""), "ContainersReady": ("False", "ContainersNotReady")}),  # sidecars count
    ({"spec": {"containers": [{"name": "c"}], "restartPolicy": "Never"}}, [], [exited()], "Succeeded",
     {"Ready": ("False", "PodCompleted"), "ContainersReady": ("False", "PodCompleted")}),
    ({"spec": {"containers": [{"name": "c"}], "readinessGates": [{"conditionType": "example.com/lb"}]}}, [],
     [running()], "Running", {"Ready": ("False", "ReadinessGatesNotReady"), "ContainersReady": ("True", "")}),
    ({"spec": {"containers": [{"name": "c"}], "readinessGates": [{"conditionType": "example.com/lb"}]},
      "status": {"conditions": [{"type": "example.com/lb", "status": "True"}]}}, [], [running()], "Running",
     {"Ready": ("True", "")}),
])
def test_pod_conditions(pod: Obj, inits: list[Obj], statuses: list[Obj], phase: str,
                        want: dict[str, tuple[str, str]]) -> None:
    got = _conds(pod, inits, statuses, phase)
    assert {k: got[k] for k in want} == want


def test_transition_times_move_only_on_change() -> None:
    old = [{"type": "Ready", "status": "False", "lastTransitionTime": "T0"},
           {"type": "PodScheduled", "status": "True", "lastTransitionTime": "T0"},
           {"type": "example.com/gate", "status": "True", "lastTransitionTime": "T0"}]
    new = [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]
    out = {c["type"]: c["lastTransitionTime"] for c in keep_transition_times(new, old, "T1")}
    assert out == {"Ready": "T1", "PodScheduled": "T0", "example.com/gate": "T0"}


@pytest.mark.parametrize(("policy", "code", "restart"), [
    ("Always", 0, True), ("Always", 1, True), ("OnFailure", 0, False), ("OnFailure", 137, True),
    ("Never", 0, False), ("Never", 1, False),
])
def test_should_restart(policy: str, code: int, restart: bool) -> None:
    assert should_restart(policy, code) is restart


@pytest.mark.parametrize(("containers", "qos"), [
    ([{"name": "c"}], "BestEffort"),
    ([{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}], "Guaranteed"),
    ([{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"},
                                  "requests": {"cpu": "1000m", "memory": "1Gi"}}}], "Guaranteed"),
    ([{"name": "c", "resources": {"requests": {"cpu": "100m"}}}], "Burstable"),
    ([{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}, {"name": "d"}], "Burstable"),
])
def test_qos_class(containers: list[Obj], qos: str) -> None:
    assert qos_class({"spec": {"containers": containers}}) == qos


# -- probes ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "success", "failure", "outcomes", "results"), [
    # liveness starts as success; flips after 3 failures in a row; one success resets the run
    ("liveness", 1, 3, [False, False, True, False, False, False], [True, True, True, True, True, False]),
    ("liveness", 1, 1, [False, True], [False, True]),
    # readiness starts as failure; needs successThreshold successes in a row
    ("readiness", 2, 3, [True, False, True, True, False, False, False],
     [False, False, False, True, True, True, False]),
    ("readiness", 1, 3, [True], [True]),
    # successThreshold is forced to 1 for startup and liveness probes; a startup probe starts with no verdict
    ("startup", 5, 2, [True], [True]),
    ("startup", 1, 2, [False, False], [None, False]),
])
def test_probe_result_counting(kind: str, success: int, failure: int, outcomes: list[bool],
                               results: list[bool | None]) -> None:
    spec = ProbeSpec.parse({"successThreshold": success, "failureThreshold": failure}, kind)  # type: ignore[arg-type]
    counter = ResultCounter(spec, initial={"liveness": True, "readiness": False, "startup": None}[kind])
    got = []
    for ok in outcomes:
        counter.observe(ok)
        got.append(counter.result)
    assert got == results


def test_probe_defaults_and_named_ports() -> None:
    spec = ProbeSpec.parse({"httpGet": {"port": 80}}, "readiness")
    assert (spec.period, spec.timeout, spec.success_threshold, spec.failure_threshold, spec.initial_delay) == \
        (10, 1, 1, 3, 0)
    container = {"ports": [{"name": "http", "containerPort": 8080}]}
    assert resolve_port("http", container) == 8080
    assert resolve_port(81, container) == 81 and resolve_port("82", container) == 82
    with pytest.raises(ValueError):
        resolve_port("grpc", container)


# -- images ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("ref", "registry", "repository", "tag", "familiar"), [
    ("nginx", "docker.io", "library/nginx", "latest", "nginx"),
    ("nginx:1.25", "docker.io", "library/nginx", "1.25", "nginx"),
    ("docker.io/library/nginx:1.25", "docker.io", "library/nginx", "1.25", "nginx"),
    ("atoll/echo:1.0", "docker.io", "atoll/echo", "1.0", "atoll/echo"),
    ("ghcr.io/atoll/echo", "ghcr.io", "atoll/echo", "latest", "ghcr.io/atoll/echo"),
    ("localhost:5000/app:v2", "localhost:5000", "app", "v2", "localhost:5000/app"),
    ("registry.k8s.io/pause:3.9", "registry.k8s.io", "pause", "3.9", "registry.k8s.io/pause"),
    ("busybox@sha256:abc", "docker.io", "library/busybox", "", "busybox"),
])
def test_parse_reference(ref: str, registry: str, repository: str, tag: str, familiar: str) -> None:
    r = parse_reference(ref)
    assert (r.registry, r.repository, r.tag, r.familiar) == (registry, repository, tag, familiar)


@pytest.mark.parametrize(("ref", "name"), [
    ("atoll/echo", "atoll/echo"), ("atoll/echo:2.0", "atoll/echo"), ("docker.io/atoll/echo:1", "atoll/echo"),
    ("ghcr.io/atoll/echo:1", "atoll/echo"), ("nginx", "nginx"), ("docker.io/library/nginx:1.25", "nginx"),
    ("busybox:1.36", "busybox"), ("atoll/busybox", "busybox"), ("registry.k8s.io/pause:3.9", "pause"),
    ("atoll/tcp-echo", "atoll/tcp-echo"), ("atoll/static", "atoll/static"), ("example.com/nope", None),
    ("not a reference", None),
])
def test_catalog_lookup(ref: str, name: str | None) -> None:
    image = ImageCatalog().resolve(ref)
    assert (image.name if image else None) == name


def test_catalog_builtins_and_user_file(tmp_path: Path) -> None:
    cat = ImageCatalog()
    echo = cat.resolve("atoll/echo")
    assert echo is not None and echo.entrypoint == (sys.executable, "-m", "atoll.cluster.kubelet.images.echo")
    assert echo.env["PORT"] == "8080" and cat.resolve("nginx").env["PORT"] == "80"  # type: ignore[union-attr]
    assert "atoll/echo" in cat.not_found_message("x") and "busybox" in cat.not_found_message("x")
    f = tmp_path / "images.yaml"
    f.write_text("images:\n"
                 "  myorg/api:\n    command: [/usr/bin/env, python3, -m, http.server]\n    args: ['8000']\n"
                 "    env: {PORT: 8000}\n    workingDir: /srv\n    ports: [8000]\n"
                 "  myorg/api:2.0:\n    module: myorg.api2\n"
                 "  nginx:\n    command: [/usr/sbin/nginx]\n")
    user = ImageCatalog.load(f)
    api = user.resolve("docker.io/myorg/api:1.0")
    assert api is not None and api.entrypoint[-1] == "http.server" and api.cmd == ("8000",)
    assert api.env == {"PORT": "8000"} and api.working_dir == "/srv" and api.ports == (8000,)
    assert user.resolve("myorg/api:2.0").entrypoint == (sys.executable, "-m", "myorg.api2")  # type: ignore[union-attr]
    assert user.resolve("nginx:1.25").entrypoint == ("/usr/sbin/nginx",)  # type: ignore[union-attr]
    bad = tmp_path / "bad.yaml"
    bad.write_text("images: [1, 2]\n")
    with pytest.raises(ValueError):
        ImageCatalog.load(bad)


# -- logs and limits ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("data", "final", "tags", "left"), [
    (b"a\nb\n", False, [("F", b"a"), ("F", b"b")], b""),
    (b"a\npart", False, [("F", b"a")], b"part"),
    (b"a\npart", True, [("F", b"a"), ("F", b"part")], b""),
    (b"x" * 20000 + b"\n", False, [("P", b"x" * 16384), ("F", b"x" * 3616)], b""),
    (b"\n", False, [("F", b"")], b""),
])
def test_cri_log_lines(data: bytes, final: bool, tags: list[tuple[str, bytes]], left: bytes) -> None:
    buf = bytearray(data)
    out = cri_lines("stdout", buf, final=final)
    records = [line.split(b" ", 3) for line in out.split(b"\n")[:-1]]
    assert [(r[2].decode(), r[3]) for r in records] == tags
    assert all(r[1] == b"stdout" and r[0].endswith(b"Z") and len(r[0]) == 30 for r in records)
    assert bytes(buf) == left


@pytest.mark.parametrize(("milli", "value"), [(1000, "100000 100000"), (250, "25000 100000"), (5, "1000 100000")])
def test_cpu_max(milli: int, value: str) -> None:
    assert cpu_max(milli) == value
