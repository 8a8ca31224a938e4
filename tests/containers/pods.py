"""The pods of kubernetes/, run on the container engine as the kubelet would run them, without a
cluster: each container with its manifest's image, command and args, environment (ConfigMaps,
Secrets, the downward API), user and groups, read-only root filesystem, dropped capabilities,
no privilege escalation, memory and CPU limits and volumes, on a network of its own where the
Services' and the StatefulSet pods' DNS names resolve. Probes are run as the kubelet runs them:
gRPC and HTTP from outside the pod (a prober container on the same network), exec inside it.

What it cannot show: scheduling, the NetworkPolicies, the Ingress, the HPAs and PDBs. Volumes
are tmpfs mounts (emptyDir and the volume claims; the engine gives a mount over a directory of
the image that directory's mode) and bind mounts of the ConfigMaps' files.

The Secret `comanda-secrets` gets random values, as docs/operations.md tells an operator to do:
its placeholders are refused by the services' production mode, as they should be
(tests/ops/test_kubernetes.py checks that)."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.containers.engine import docker, docker_succeeds, inspect
from tests.ops.deployment_files import (
    Resource,
    config_map_data,
    containers,
    of_kind,
    pod_labels,
    pod_spec,
    secret_data,
    selects,
)

NAMESPACE = "comanda"
# The Secret whose placeholders production mode refuses: an operator creates it (see above).
OPERATOR_SECRET = "comanda-secrets"

# Run in the prober: one probe, exit code 0 when it passes.
PROBE = r"""
import socket, sys, urllib.request
kind, host, port, extra = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if kind == "grpc":
    import grpc
    from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        reply = g.HealthStub(channel).Check(h.HealthCheckRequest(service=extra), timeout=2)
    sys.exit(0 if reply.status == h.HealthCheckResponse.SERVING else 1)
if kind == "httpGet":
    with urllib.request.urlopen(f"http://{host}:{port}{extra}", timeout=2) as reply:
        sys.exit(0 if 200 <= reply.status < 400 else 1)
socket.create_connection((host, port), timeout=2).close()
"""


def _quantity_bytes(value: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return int(float(value[: -len(suffix)]) * factor)
    return int(value)


def _cpus(value: str) -> str:
    return str(int(value[:-1]) / 1000) if value.endswith("m") else value


@dataclass
class Pod:
    """One pod of a workload, as containers on the engine."""

    name: str
    workload: Resource
    aliases: list[str]
    containers: dict[str, str] = field(default_factory=dict)  # container name -> engine id

    @property
    def spec(self) -> dict[str, Any]:
        return pod_spec(self.workload)

    def container_spec(self, name: str) -> dict[str, Any]:
        return next(c for c in containers(self.workload) if c["name"] == name)

    def user(self, container: dict[str, Any]) -> tuple[int | None, int | None]:
        pod = self.spec.get("securityContext", {})
        own = container.get("securityContext", {})
        return (
            own.get("runAsUser", pod.get("runAsUser")),
            own.get("runAsGroup", pod.get("runAsGroup")),
        )


class Cluster:
    """The manifests' workloads on one engine network. `images` maps the manifests' image names
    to the ones this machine has (the local stand-ins of the public base images)."""

    def __init__(self, project: str, images: dict[str, str]) -> None:
        self.project = project
        self.images = images
        self.network = f"{project}-kubernetes"
        self.label = f"comanda.compose-test={project}"
        self.files = Path(tempfile.mkdtemp(prefix="comanda-pods-"))
        self.pods: dict[str, Pod] = {}
        self.prober = ""
        self.secrets = {
            key: secrets.token_hex(32) for key in secret_data(OPERATOR_SECRET)
        }  # what an operator would put in comanda-secrets

    def secret(self, name: str) -> dict[str, str]:
        return dict(self.secrets) if name == OPERATOR_SECRET else secret_data(name)

    # --- life cycle ---

    def start_network(self, probe_image: str) -> None:
        docker("network", "create", "--label", self.label, self.network)
        self.prober = docker(
            "run", "--detach", "--label", self.label, "--network", self.network,
            "--name", f"{self.network}-prober", "--read-only", "--cap-drop", "ALL",
            "--entrypoint", "sleep", probe_image, "infinity",
        )  # fmt: skip

    def remove(self) -> None:
        ids = docker("ps", "-aq", "--filter", f"label={self.label}").split()
        if ids:
            docker("rm", "-fv", *ids)
        docker("network", "rm", self.network, check=False)
        shutil.rmtree(self.files, ignore_errors=True)

    def pod_names(self, workload: Resource) -> list[str]:
        if workload.kind == "StatefulSet":
            return [f"{workload.name}-{i}" for i in range(workload.doc["spec"].get("replicas", 1))]
        if workload.kind == "Deployment":
            return [f"{workload.name}-0"]  # one replica shows what each would run
        return [workload.name]

    def aliases(self, workload: Resource, pod: str) -> list[str]:
        """The DNS names that reach the pod: the Services selecting it, and for a StatefulSet
        pod its own name under the governing Service."""
        names = [
            s.name
            for s in of_kind("Service")
            if s.doc["spec"].get("selector")
            and selects(s.doc["spec"]["selector"], pod_labels(workload))
        ]
        if workload.kind == "StatefulSet":
            names.append(f"{pod}.{workload.doc['spec']['serviceName']}")
        return [
            f"{name}{suffix}"
            for name in names
            for suffix in ("", f".{NAMESPACE}", f".{NAMESPACE}.svc")
        ]

    def start(self, workload: Resource) -> list[Pod]:
        started = []
        for name in self.pod_names(workload):
            pod = Pod(name, workload, self.aliases(workload, name))
            for container in containers(workload):
                args = self._run_args(pod, container)
                pod.containers[container["name"]] = docker("run", "--detach", *args)
            self.pods[name] = pod
            started.append(pod)
        return started

    # --- what the kubelet would do ---

    def env(self, pod: Pod, container: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                env.update(config_map_data(source["configMapRef"]["name"]))
            if "secretRef" in source:
                env.update(self.secret(source["secretRef"]["name"]))
        for var in container.get("env", []):
            ref = var.get("valueFrom", {})
            if "value" in var:
                env[var["name"]] = str(var["value"])
            elif "secretKeyRef" in ref:
                env[var["name"]] = self.secret(ref["secretKeyRef"]["name"])[
                    ref["secretKeyRef"]["key"]
                ]
            elif "configMapKeyRef" in ref:
                key = ref["configMapKeyRef"]
                env[var["name"]] = config_map_data(key["name"])[key["key"]]
            elif "fieldRef" in ref:
                fields = {"metadata.name": pod.name, "metadata.namespace": NAMESPACE}
                env[var["name"]] = fields[ref["fieldRef"]["fieldPath"]]
        return env

    def _volumes(self, pod: Pod, container: dict[str, Any]) -> list[str]:
        volumes = {v["name"]: v for v in pod.spec.get("volumes", [])}
        args = []
        for mount in container.get("volumeMounts", []):
            volume = volumes.get(mount["name"], {})  # absent: a volumeClaimTemplate
            if "configMap" in volume:
                directory = self.files / pod.name / mount["name"]
                directory.mkdir(parents=True)
                for key, value in config_map_data(volume["configMap"]["name"]).items():
                    (directory / key).write_text(value)
                    (directory / key).chmod(0o644)
                directory.chmod(0o755)
                args += ["--volume", f"{directory}:{mount['mountPath']}:ro"]
            else:
                size = volume.get("emptyDir", {}).get("sizeLimit")
                options = ",".join(
                    ["mode=1777", *([f"size={_quantity_bytes(size)}"] if size else [])]
                )
                args += ["--tmpfs", f"{mount['mountPath']}:{options}"]
        return args

    def _run_args(self, pod: Pod, container: dict[str, Any]) -> list[str]:
        security = container.get("securityContext", {})
        pod_security = pod.spec.get("securityContext", {})
        uid, gid = pod.user(container)
        args = [
            "--name", f"{self.project}-{pod.name}-{container['name']}",
            "--label", self.label,
            "--network", self.network,
            "--hostname", pod.name,
            "--stop-timeout", str(pod.spec.get("terminationGracePeriodSeconds", 30)),
        ]  # fmt: skip
        for alias in pod.aliases:
            args += ["--network-alias", alias]
        if uid is not None:
            args += ["--user", f"{uid}:{gid if gid is not None else uid}"]
        if "fsGroup" in pod_security:
            args += ["--group-add", str(pod_security["fsGroup"])]
        if security.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        for capability in security.get("capabilities", {}).get("drop", []):
            args += ["--cap-drop", capability]
        if security.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        limits = container.get("resources", {}).get("limits", {})
        if "memory" in limits:
            args += ["--memory", str(_quantity_bytes(str(limits["memory"])))]
        if "cpu" in limits:
            args += ["--cpus", _cpus(str(limits["cpu"]))]
        for key, value in self.env(pod, container).items():
            args += ["--env", f"{key}={value}"]
        args += self._volumes(pod, container)
        command, extra = container.get("command"), container.get("args", [])
        image = self.images.get(container["image"], container["image"])
        if command:
            return [*args, "--entrypoint", command[0], image, *command[1:], *extra]
        return [*args, image, *extra]

    def logs(self, pod: Pod) -> str:
        return "\n".join(
            f"--- {pod.name}/{name}:\n" + docker("logs", "--tail", "15", cid, check=False)
            for name, cid in pod.containers.items()
        )

    def probe(self, pod: Pod, name: str, probe: dict[str, Any]) -> bool:
        """Whether the probe passes now."""
        container = pod.container_spec(name)
        if "exec" in probe:
            uid, gid = pod.user(container)
            user = ["--user", f"{uid}:{gid if gid is not None else uid}"] if uid is not None else []
            return docker_succeeds("exec", *user, pod.containers[name], *probe["exec"]["command"])
        networks = inspect(pod.containers[name], "{{json .NetworkSettings.Networks}}")
        ip = networks[self.network]["IPAddress"]
        ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        for kind in ("grpc", "httpGet", "tcpSocket"):
            if kind in probe:
                port = ports.get(probe[kind]["port"], probe[kind]["port"])
                extra = (
                    probe[kind].get("service", "")
                    if kind == "grpc"
                    else probe[kind].get("path", "/")
                )
                return docker_succeeds(
                    "exec", self.prober, "python", "-c", PROBE, kind, ip, str(port), extra
                )
        raise AssertionError(f"{pod.name}/{name}: a probe of a kind not known here: {probe}")
