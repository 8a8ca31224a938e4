"""What a pod of kubernetes/ would run, on the images built here and without a cluster
(tests/containers/pods.py says how, and what it cannot show): every workload starts with its
manifest's command, user, read-only root filesystem and limits; the migration Jobs complete;
every probe passes; the services stop gracefully within their grace period."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest

from tests.containers.engine import ComposeStack, Steps, docker, docker_succeeds, inspect
from tests.containers.pods import Cluster, Pod
from tests.ops.deployment_files import containers, of_kind, workloads
from tests.support.waiting import wait_for

PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def _passes(cluster: Cluster, pod: Pod, kind: str, timeout: float) -> None:
    for name in pod.containers:
        probe = pod.container_spec(name).get(kind)
        if probe is None:
            continue
        try:
            wait_for(partial(cluster.probe, pod, name, probe), timeout, f"{pod.name} {kind}", 0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{cluster.logs(pod)}") from None


def _startup_budget(pod: Pod) -> float:
    """What the kubelet allows before restarting the container (capped: a test has to end)."""
    probe = next(iter(c.get("startupProbe") for c in containers(pod.workload)), None) or {}
    return min(probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3), 120)


@pytest.fixture(scope="module")
def cluster(stack: ComposeStack) -> Iterator[Cluster]:
    images = {**stack.local_images(), stack.image: stack.image_id}
    cluster = Cluster(stack.project, images)
    print()
    steps = Steps()
    try:
        cluster.start_network(stack.image_id)
        with steps.step("StatefulSets (kubernetes/2x)") as note:
            pods = [p for w in of_kind("StatefulSet") for p in cluster.start(w)]
            for pod in pods:
                _passes(cluster, pod, "startupProbe", _startup_budget(pod))
            note.append(", ".join(p.name for p in pods) + " started")
        with steps.step("Jobs (kubernetes/30)") as note:
            jobs = [p for w in of_kind("Job") for p in cluster.start(w)]
            for pod in jobs:
                for name, cid in pod.containers.items():
                    code = docker("wait", cid, timeout=180)
                    assert code == "0", f"Job {pod.name}/{name} exited {code}\n{cluster.logs(pod)}"
            note.append(", ".join(p.name for p in jobs) + " completed")
        with steps.step("Deployments (kubernetes/4x)") as note:
            pods = [p for w in of_kind("Deployment") for p in cluster.start(w)]
            for pod in pods:
                _passes(cluster, pod, "startupProbe", _startup_budget(pod))
            note.append(", ".join(p.name for p in pods) + " started")
        yield cluster
    finally:
        cluster.remove()


def _pods(cluster: Cluster, workload: str) -> list[Pod]:
    pods = [p for p in cluster.pods.values() if p.workload.name == workload]
    assert pods, f"no pod of {workload} was started"
    return pods


LONG_RUNNING = [w.name for w in workloads() if w.kind != "Job"]


@pytest.mark.parametrize("workload", LONG_RUNNING)
def test_every_probe_passes(cluster: Cluster, workload: str) -> None:
    for pod in _pods(cluster, workload):
        for kind in PROBES:
            _passes(cluster, pod, kind, 60)


@pytest.mark.parametrize("workload", [w.name for w in workloads()])
def test_pods_run_as_their_manifests_say(cluster: Cluster, workload: str) -> None:
    for pod in _pods(cluster, workload):
        for name, cid in pod.containers.items():
            spec = pod.container_spec(name)
            security = spec.get("securityContext", {})
            non_root = security.get(
                "runAsNonRoot", pod.spec.get("securityContext", {}).get("runAsNonRoot")
            )
            config = inspect(cid, "{{json .Config}}")
            user = config["User"] or inspect(config["Image"], "{{.Config.User}}")
            uid = user.split(":")[0]
            if non_root:
                # The kubelet refuses to start a runAsNonRoot container whose user is not a
                # non-zero number.
                assert uid.isdigit() and int(uid) != 0, f"{pod.name}/{name}: user {user!r}"
            if security.get("readOnlyRootFilesystem"):
                assert inspect(cid, "{{.HostConfig.ReadonlyRootfs}}") == "true"
            state = inspect(cid, "{{json .State}}")
            if workload in [j.name for j in of_kind("Job")]:
                assert state["ExitCode"] == 0, f"{pod.name}/{name}: {state}"
            else:
                assert state["Running"] and not state["OOMKilled"], (
                    f"{pod.name}/{name}: expected running within its limits, found {state}"
                )
                assert docker("exec", cid, "id", "-u") == uid, f"{pod.name}/{name}: not uid {uid}"


def _stop(cluster: Cluster, pod: Pod) -> str:
    """preStop, then SIGTERM, as the kubelet deletes a pod: what happened, or a failure."""
    grace = pod.spec.get("terminationGracePeriodSeconds", 30)
    outcome = []
    for name, cid in pod.containers.items():
        began = time.monotonic()
        pre_stop = pod.container_spec(name).get("lifecycle", {}).get("preStop", {})
        if "exec" in pre_stop and not docker_succeeds(
            "exec", cid, *pre_stop["exec"]["command"], timeout=grace
        ):
            return f"FAILED: {pod.name}/{name}: preStop {pre_stop['exec']['command']} failed"
        docker("stop", "--time", str(grace), cid, timeout=grace + 30)
        took = time.monotonic() - began
        code = inspect(cid, "{{.State.ExitCode}}")
        if code != "0" or took >= grace:
            return (
                f"FAILED: {pod.name}/{name}: exit {code} after {took:.1f}s (grace {grace}s); "
                f"its last lines:\n{_last_lines(cid)}"
            )
        outcome.append(f"{pod.name} exit 0 in {took:.1f} s of {grace} s")
    return ", ".join(outcome)


def _last_lines(cid: str, count: int = 15) -> str:
    """A container's last log lines, stdout and stderr as they interleaved."""
    done = subprocess.run(
        ["docker", "logs", "--tail", str(count), cid],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout.strip()


def test_services_stop_gracefully_within_their_grace_period(cluster: Cluster, steps: Steps) -> None:
    pods = [p for p in cluster.pods.values() if p.workload.kind == "Deployment"]
    with steps.step("preStop and SIGTERM") as note:
        with ThreadPoolExecutor(len(pods)) as pool:
            outcomes = list(pool.map(lambda p: _stop(cluster, p), pods))
        note.extend(outcomes)
    failed = [o for o in outcomes if o.startswith("FAILED")]
    assert not failed, "\n".join(failed)
