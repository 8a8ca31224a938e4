"""The Kubernetes manifests: valid for the API server (offline, strict schemas) and keeping the
rules of issue 6, so that a later change cannot drop one silently."""

from __future__ import annotations

import importlib
import itertools
import re
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
from kubernetes_validate import utils as kv_utils

from chassis import config as cfg
from tests.ops.deployment_files import (
    CONFIG_CLASSES,
    GRPC_SERVICES,
    HTTP_PORT,
    HTTP_SERVER,
    KUBERNETES,
    REPO,
    SECRET_SETTINGS,
    SERVICES,
    WORKLOAD_KINDS,
    Resource,
    app_image,
    config_map_data,
    container_env,
    containers,
    manifests,
    match_labels,
    of_kind,
    one,
    pod_labels,
    pod_spec,
    processes_of,
    secret_data,
    selects,
    settings,
    workloads,
)

NAMESPACE = "comanda"
# The oldest Kubernetes the manifests must load on (native gRPC probes are GA since 1.27;
# minikube's default is newer), and the newest schema kubernetes-validate ships.
KUBERNETES_VERSIONS = ["1.30.0", kv_utils.latest_version()]


def _name(workload: Resource) -> str:
    return pod_labels(workload).get("app.kubernetes.io/name", workload.name)


def _app_workloads() -> list[Resource]:
    return [w for w in workloads() if any(c["image"] == app_image() for c in containers(w))]


def _deployment(service: str) -> Resource:
    return one("Deployment", service)


def _container(service: str) -> dict[str, Any]:
    found = [c for c in containers(_deployment(service)) if c["name"] == service]
    assert len(found) == 1, (
        f"Deployment/{service}: expected one container named {service!r}, found {len(found)}"
    )
    return found[0]


def _grace(service: str) -> float:
    env = container_env(_container(service))
    return float(env.get("SHUTDOWN_GRACE_SECONDS") or settings(service)["SHUTDOWN_GRACE_SECONDS"])


def _port(container: dict[str, Any], name: str) -> int:
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    assert name in ports, (
        f"container {container['name']}: expected a port named {name!r}, found {sorted(ports)}"
    )
    return int(ports[name])


# --- the files ---------------------------------------------------------------------------


def test_there_are_manifests_and_each_file_has_a_numeric_prefix() -> None:
    files = sorted(p.name for p in KUBERNETES.glob("*"))
    assert files, "expected manifests in kubernetes/, found none"
    odd = [f for f in files if not re.fullmatch(r"\d\d-[a-z0-9-]+\.yaml", f)]
    assert not odd, (
        f"expected every file named NN-name.yaml (kubectl applies in lexical order), found {odd}"
    )


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_for_the_api_server_strictly(version: str) -> None:
    problems = []
    for resource in manifests():
        try:
            kubernetes_validate.validate(resource.doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            problems.append(f"{resource.ref}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{resource.ref}: {exc.message}")
    assert not problems, f"expected valid Kubernetes {version} objects, found:\n" + "\n".join(
        problems
    )


def test_the_validator_really_rejects_unknown_fields() -> None:
    deployment = _deployment("orders").doc
    broken = {**deployment, "spec": {**deployment["spec"], "replicaz": 3}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_everything_is_in_the_comanda_namespace_which_comes_first() -> None:
    first = manifests()[0]
    assert (first.kind, first.name) == ("Namespace", NAMESPACE), (
        f"expected the first object applied to be Namespace/{NAMESPACE}, found {first.ref}"
    )
    elsewhere = [r.ref for r in manifests()[1:] if r.doc["metadata"].get("namespace") != NAMESPACE]
    assert not elsewhere, (
        f"expected metadata.namespace={NAMESPACE} on every object, missing on {elsewhere}"
    )


def test_the_namespace_enforces_the_restricted_pod_security_profile() -> None:
    labels = one("Namespace", NAMESPACE).doc["metadata"].get("labels", {})
    found = labels.get("pod-security.kubernetes.io/enforce")
    assert found == "restricted", (
        f"expected pod-security.kubernetes.io/enforce=restricted, found {found!r}"
    )


def test_what_a_workload_refers_to_exists_and_is_applied_before_it() -> None:
    order = {r.file: i for i, r in enumerate(manifests())}
    defined = {(r.kind, r.name): r for r in manifests()}
    problems = []
    for workload in workloads():
        spec = pod_spec(workload)
        refs = [("ServiceAccount", spec.get("serviceAccountName", ""), None)]
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                refs.append(("ConfigMap", volume["configMap"]["name"], None))
            if "secret" in volume:
                refs.append(("Secret", volume["secret"]["secretName"], None))
        for container in containers(workload):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    refs.append(("ConfigMap", source["configMapRef"]["name"], None))
                if "secretRef" in source:
                    refs.append(("Secret", source["secretRef"]["name"], None))
            for var in container.get("env", []):
                ref = var.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    refs.append(("Secret", ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]))
                if "configMapKeyRef" in ref:
                    refs.append(
                        ("ConfigMap", ref["configMapKeyRef"]["name"], ref["configMapKeyRef"]["key"])
                    )
        for kind, name, key in refs:
            target = defined.get((kind, name))
            if target is None:
                problems.append(
                    f"{workload.ref} refers to {kind}/{name}, which no manifest defines"
                )
                continue
            if order[target.file] > order[workload.file]:
                problems.append(f"{workload.ref} refers to {target.ref}, applied after it")
            if key is None:
                continue
            data = secret_data(name) if kind == "Secret" else config_map_data(name)
            if key not in data:
                problems.append(
                    f"{workload.ref} reads key {key!r} of {kind}/{name}, which has {sorted(data)}"
                )
    assert not problems, "\n".join(problems)


# --- images ------------------------------------------------------------------------------


def test_every_image_is_pinned_to_an_explicit_version() -> None:
    problems = []
    for workload in workloads():
        for container in containers(workload):
            image = container["image"]
            _, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
            if "@sha256:" in image:
                continue
            if not tag or tag == "latest" or not re.search(r"\d", tag):
                problems.append(f"{workload.ref} container {container['name']}: {image!r}")
    assert not problems, (
        f"expected images pinned to a version (never untagged or :latest), found {problems}"
    )


def test_the_app_image_is_the_projects_version_and_is_never_pulled_over_a_loaded_one() -> None:
    for workload in _app_workloads():
        for container in containers(workload):
            if container["image"].startswith("comanda:"):
                assert container["image"] == app_image(), (
                    f"{workload.ref}: expected image {app_image()} (pyproject version), "
                    f"found {container['image']}"
                )
                assert container.get("imagePullPolicy") == "IfNotPresent", (
                    f"{workload.ref}: expected imagePullPolicy IfNotPresent (minikube image load), "
                    f"found {container.get('imagePullPolicy')!r}"
                )
    processes = {
        p
        for w in _app_workloads()
        for c in containers(w)
        for p in processes_of(c.get("command", []))
    }
    assert set(SERVICES) <= processes, (
        f"expected the app image to run {SERVICES}, found it running {processes}"
    )


# --- the three services --------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_is_a_deployment_running_its_process(service: str) -> None:
    container = _container(service)
    assert container["command"] == ["python", "-m", service], (
        f"Deployment/{service}: expected command python -m {service}, "
        f"found {container.get('command')}"
    )
    assert "replicas" not in _deployment(service).doc["spec"], (
        f"Deployment/{service}: expected no spec.replicas (its HPA owns it; apply would reset it)"
    )


@pytest.mark.parametrize("service", GRPC_SERVICES)
def test_grpc_services_have_native_grpc_probes_on_their_grpc_port(service: str) -> None:
    container = _container(service)
    port = int(
        container_env(container).get(f"{service.upper()}_GRPC_PORT")
        or settings(service)[f"{service.upper()}_GRPC_PORT"]
    )
    assert _port(container, "grpc") == port, (
        f"{service}: expected container port grpc={port}, found {_port(container, 'grpc')}"
    )
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        found = container.get(probe, {})
        assert found.get("grpc", {}).get("port") == port, (
            f"{service}: expected a grpc {probe} on port {port}, found {found or 'none'}"
        )


def test_the_http_api_is_a_named_container_port_of_its_server() -> None:
    container = _container(HTTP_SERVER)
    port = int(container_env(container)[f"{HTTP_SERVER.upper()}_HTTP_PORT"] or 0)
    assert port == HTTP_PORT and _port(container, "http") == port, (
        f"{HTTP_SERVER}: expected {HTTP_SERVER.upper()}_HTTP_PORT {HTTP_PORT} and container "
        f"port http={HTTP_PORT}, found {port}"
    )


def test_every_long_running_container_has_readiness_and_liveness_probes() -> None:
    missing = [
        f"{w.ref} container {c['name']}: {probe}"
        for w in of_kind("Deployment", "StatefulSet")
        for c in pod_spec(w)["containers"]
        for probe in ("readinessProbe", "livenessProbe")
        if probe not in c
    ]
    assert not missing, f"expected readiness and liveness probes, missing: {missing}"


@pytest.mark.parametrize("service", SERVICES)
def test_termination_grace_is_longer_than_the_servers_shutdown_grace(service: str) -> None:
    spec = pod_spec(_deployment(service))
    grace = _grace(service)
    pre_stop = (
        _container(service)
        .get("lifecycle", {})
        .get("preStop", {})
        .get("exec", {})
        .get("command", [])
    )
    pre_stop_seconds = float(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0.0
    needed = grace + pre_stop_seconds
    found = spec.get("terminationGracePeriodSeconds", 30)
    assert found > needed, (
        f"Deployment/{service}: expected terminationGracePeriodSeconds > "
        f"preStop {pre_stop_seconds:g}s + SHUTDOWN_GRACE_SECONDS {grace:g}s, found {found}"
    )


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_has_a_service_an_hpa_and_a_pdb_selecting_its_pods(service: str) -> None:
    labels = pod_labels(_deployment(service))
    svc = one("Service", service).doc["spec"]
    assert selects(svc["selector"], labels), (
        f"Service/{service}: selector {svc['selector']} misses pods {labels}"
    )
    container = _container(service)
    for port in svc["ports"]:
        target = port.get("targetPort", port["port"])
        number = _port(container, target) if isinstance(target, str) else target
        assert number in [p["containerPort"] for p in container["ports"]], (
            f"Service/{service}: targetPort {target} is no port of the container"
        )
    hpa = one("HorizontalPodAutoscaler", service).doc
    assert hpa["apiVersion"] == "autoscaling/v2", (
        f"HPA/{service}: expected autoscaling/v2, found {hpa['apiVersion']}"
    )
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", service), (
        f"HPA/{service}: targets {target}"
    )
    assert hpa["spec"]["minReplicas"] >= 2, (
        f"HPA/{service}: expected minReplicas >= 2 (HA), found {hpa['spec']['minReplicas']}"
    )
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"], (
        f"HPA/{service}: nothing to scale"
    )
    pdb = one("PodDisruptionBudget", service).doc["spec"]
    assert selects(match_labels(pdb["selector"]), labels), (
        f"PDB/{service}: selector misses pods {labels}"
    )
    assert pdb.get("minAvailable", 0) < hpa["spec"]["minReplicas"] or "maxUnavailable" in pdb, (
        f"PDB/{service}: minAvailable {pdb.get('minAvailable')} would block every drain "
        "at minReplicas"
    )


@pytest.mark.parametrize("service", SERVICES)
def test_pods_carry_prometheus_scrape_annotations_matching_the_metrics_port(service: str) -> None:
    annotations = _deployment(service).doc["spec"]["template"]["metadata"].get("annotations", {})
    env = container_env(_container(service))
    if service == "gateway":
        port = int(env.get("GATEWAY_HTTP_PORT") or settings(service)["GATEWAY_HTTP_PORT"])
    else:
        port = int(env.get(f"{service.upper()}_METRICS_PORT") or 0)
        assert port == 9090, (
            f"{service}: expected {service.upper()}_METRICS_PORT=9090, "
            f"found {port or 'unset (disabled)'}"
        )
        assert _port(_container(service), "metrics") == port
    expected = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": "/metrics",
    }
    found = {k: annotations.get(k) for k in expected}
    assert found == expected, (
        f"Deployment/{service}: expected annotations {expected}, found {found}"
    )


# --- every workload -----------------------------------------------------------------------


def test_every_container_has_cpu_and_memory_requests_and_limits() -> None:
    missing = []
    for workload in workloads():
        for container in containers(workload):
            resources = container.get("resources", {})
            for part, resource in itertools.product(("requests", "limits"), ("cpu", "memory")):
                if resource not in resources.get(part, {}):
                    missing.append(
                        f"{workload.ref} container {container['name']}: {part}.{resource}"
                    )
    assert not missing, f"expected requests and limits for cpu and memory, missing: {missing}"


def _mebibytes(quantity: str) -> float:
    units = {
        "Ki": 1 / 1024,
        "Mi": 1,
        "Gi": 1024,
        "K": 1e3 / 2**20,
        "M": 1e6 / 2**20,
        "G": 1e9 / 2**20,
    }
    number, unit = re.fullmatch(r"([\d.]+)([A-Za-z]*)", quantity).groups()  # type: ignore[union-attr]
    return float(number) * units[unit] if unit else float(number) / 2**20


@pytest.mark.parametrize("service", SERVICES)
def test_services_fit_the_memory_budget(service: str) -> None:
    resources = _container(service)["resources"]
    limit, request = (
        _mebibytes(resources["limits"]["memory"]),
        _mebibytes(resources["requests"]["memory"]),
    )
    assert 150 <= limit <= 256, (
        f"{service}: expected a memory limit above the 150 MB budget and at most 256Mi, "
        f"found {limit}Mi"
    )
    assert request <= limit, f"{service}: request {request}Mi above limit {limit}Mi"


def test_every_pod_and_container_is_locked_down() -> None:
    problems = []
    for workload in workloads():
        spec = pod_spec(workload)
        pod = spec.get("securityContext", {})
        if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{workload.ref}: pod seccompProfile is not RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{workload.ref}: pod automountServiceAccountToken is not false")
        for container in containers(workload):
            where = f"{workload.ref} container {container['name']}"
            sc = container.get("securityContext", {})
            if sc.get("runAsNonRoot", pod.get("runAsNonRoot")) is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if sc.get("runAsUser", pod.get("runAsUser", 1)) == 0:
                problems.append(f"{where}: runs as UID 0")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem is not true")
            if sc.get("privileged"):
                problems.append(f"{where}: privileged")
            if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("capabilities", {}).get(
                "add"
            ):
                problems.append(f"{where}: capabilities are not drop [ALL] with nothing added")
            if (
                sc.get("seccompProfile", pod.get("seccompProfile", {})).get("type")
                != "RuntimeDefault"
            ):
                problems.append(f"{where}: seccompProfile is not RuntimeDefault")
    assert not problems, "expected restricted pods and containers, found:\n" + "\n".join(problems)


def test_app_containers_get_a_writable_tmp_on_their_read_only_root() -> None:
    problems = []
    for workload in _app_workloads():
        volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
        for container in containers(workload):
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            volume = volumes.get(mounts.get("/tmp", ""), {})
            if "emptyDir" not in volume:
                problems.append(f"{workload.ref} container {container['name']}")
    assert not problems, f"expected an emptyDir mounted at /tmp, missing in {problems}"


def test_every_workload_has_a_service_account_of_its_own_without_a_token() -> None:
    accounts = {r.name: r.doc for r in of_kind("ServiceAccount")}
    used: dict[str, list[str]] = {}
    for workload in workloads():
        name = pod_spec(workload).get("serviceAccountName")
        assert name and name != "default", (
            f"{workload.ref}: expected a serviceAccountName, found {name!r}"
        )
        used.setdefault(name, []).append(workload.ref)
        assert name in accounts, f"{workload.ref}: ServiceAccount {name} is not defined"
        assert accounts[name].get("automountServiceAccountToken") is False, (
            f"ServiceAccount/{name}: expected automountServiceAccountToken: false"
        )
    shared = {name: refs for name, refs in used.items() if len(refs) > 1}
    assert not shared, f"expected one ServiceAccount per workload, found shared ones: {shared}"


# --- configuration ------------------------------------------------------------------------


def test_app_containers_set_only_settings_their_process_reads() -> None:
    problems = []
    for workload in _app_workloads():
        for container in containers(workload):
            processes = processes_of(container.get("command", []) + container.get("args", []))
            assert processes, (
                f"{workload.ref}: cannot tell which process {container.get('command')} runs"
            )
            known = set().union(*(settings(p) for p in processes))
            unknown = sorted(set(container_env(container)) - known)
            if unknown:
                problems.append(f"{workload.ref} ({', '.join(processes)}): {unknown}")
    assert not problems, (
        "expected only settings the code reads (chassis.config.describe), found unknown:\n"
        + "\n".join(problems)
    )


def _env_values(container: dict[str, Any], strong_secrets: bool = True) -> dict[str, str]:
    """The container's variables with their values, Secret keys included: the placeholders,
    or (`strong_secrets`) what an operator puts there (random, long), keeping URLs as they are."""
    env = {k: v for k, v in container_env(container).items() if v is not None}
    for var in container.get("env", []):
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            value = secret_data(ref["name"])[ref["key"]]
            if strong_secrets and "://" not in value:
                value = f"{ref['key']}-" + "7" * 40
            env[var["name"]] = value
    return env


def test_every_process_accepts_its_configuration() -> None:
    problems = []
    for workload in _app_workloads():
        for container in containers(workload):
            command = container.get("command", []) + container.get("args", [])
            serving = "migrate" not in " ".join(command)  # only serving needs the secrets
            for process in processes_of(command):
                module, cls = CONFIG_CLASSES[process]
                try:
                    config_class = getattr(importlib.import_module(module), cls)
                    cfg.load(config_class, _env_values(container), whole=serving)
                except cfg.ConfigError as exc:
                    problems.append(f"{workload.ref} python -m {process}: {exc}")
    assert not problems, "expected every process to accept its environment, found:\n" + "\n".join(
        problems
    )


def test_every_config_map_key_is_a_setting_of_some_process() -> None:
    known = set().union(*(settings(p) for p in SERVICES))
    for config_map in of_kind("ConfigMap"):
        if config_map.name == "nats-config":
            continue
        unknown = sorted(set(config_map.doc.get("data", {})) - known)
        assert not unknown, (
            f"{config_map.ref}: expected setting names, found unknown keys {unknown}"
        )


def test_secret_settings_come_from_secrets_only() -> None:
    for config_map in of_kind("ConfigMap"):
        leaked = sorted(SECRET_SETTINGS & set(config_map.doc.get("data", {})))
        assert not leaked, f"{config_map.ref}: expected no secrets in a ConfigMap, found {leaked}"
    for workload in _app_workloads():
        for container in containers(workload):
            for var in container.get("env", []):
                if var["name"] in SECRET_SETTINGS:
                    assert "secretKeyRef" in var.get("valueFrom", {}), (
                        f"{workload.ref}: expected {var['name']} from a secretKeyRef, found {var}"
                    )


@pytest.mark.parametrize(
    ("workload", "needed"),
    [
        (
            "orders",
            {
                "ORDERS_DATABASE_URL",
                "NATS_URL",
                "JWT_SECRET",
                "JETSTREAM_REPLICAS",
                "ORDERS_HTTP_PORT",
                "GATEWAY_PAYMENT_TARGET",
            },
        ),
        (
            "payment",
            {
                "PAYMENT_DATABASE_URL",
                "NATS_URL",
                "JWT_SECRET",
                "JETSTREAM_REPLICAS",
                "PAYMENT_WEBHOOK_SECRET",
            },
        ),
    ],
)
def test_services_get_the_settings_that_have_no_usable_default_in_a_cluster(
    workload: str, needed: set[str]
) -> None:
    missing = sorted(needed - set(container_env(_container(workload))))
    assert not missing, f"Deployment/{workload}: expected {sorted(needed)} set, missing {missing}"


@pytest.mark.parametrize("service", GRPC_SERVICES)
def test_database_urls_point_at_the_services_own_database_with_its_password(service: str) -> None:
    secret = secret_data(f"{service}-db")
    url = urlsplit(secret["database-url"])
    db = one("StatefulSet", f"{service}-db")
    env = {v["name"]: v for v in pod_spec(db)["containers"][0]["env"]}
    assert url.hostname == f"{service}-db", (
        f"Secret/{service}-db: expected host {service}-db, found {url.hostname}"
    )
    one("Service", f"{service}-db")
    assert url.path == f"/{env['POSTGRES_DB']['value']}", (
        f"database-url names {url.path}, the server creates {env['POSTGRES_DB']}"
    )
    assert url.username == env["POSTGRES_USER"]["value"], (
        f"database-url user {url.username} != POSTGRES_USER"
    )
    assert url.password == secret["password"], (
        f"Secret/{service}-db: database-url and password disagree"
    )
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{service}-db",
        "key": "password",
    }


def test_the_http_api_reaches_the_other_services_through_their_headless_services() -> None:
    env = container_env(_container(HTTP_SERVER))
    for service in GRPC_SERVICES:
        if service == HTTP_SERVER:  # called in-process
            continue
        target = str(env[f"GATEWAY_{service.upper()}_TARGET"])
        host, _, port = target.rpartition(":")
        svc = one("Service", host).doc["spec"]
        assert int(port) in [p["port"] for p in svc["ports"]], (
            f"{HTTP_SERVER}'s HTTP API target {target}: Service/{host} has no port {port}"
        )
        assert svc.get("clusterIP") == "None", (
            f"Service/{host}: expected headless (the HTTP API balances gRPC calls over every "
            "pod with round_robin)"
        )


# --- NATS, databases, migrations, ingress ----------------------------------------------------


def test_nats_is_a_three_server_jetstream_cluster_with_persistent_storage() -> None:
    nats = one("StatefulSet", "nats").doc["spec"]
    replicas = nats["replicas"]
    assert replicas == 3, f"StatefulSet/nats: expected 3 replicas, found {replicas}"
    assert nats["volumeClaimTemplates"], (
        "StatefulSet/nats: expected a volumeClaimTemplate for the JetStream store"
    )
    conf = config_map_data("nats-config")["nats.conf"]
    routes = re.findall(r"nats://(nats-\d+)\.(\S+?)\.", conf)
    assert sorted(r[0] for r in routes) == [f"nats-{i}" for i in range(replicas)], (
        f"expected a route to every server, found {routes}"
    )
    headless = one("Service", nats["serviceName"]).doc["spec"]
    assert (
        headless.get("clusterIP") == "None" and headless.get("publishNotReadyAddresses") is True
    ), (
        f"Service/{nats['serviceName']}: expected headless with publishNotReadyAddresses, "
        f"found {headless}"
    )
    assert {r[1] for r in routes} == {nats["serviceName"]}, (
        f"routes must use the headless Service, found {routes}"
    )
    assert "jetstream" in conf and "store_dir: /data" in conf, (
        "expected JetStream with its store on /data"
    )
    mounts = {
        m["mountPath"]: m["name"]
        for m in pod_spec(one("StatefulSet", "nats"))["containers"][0]["volumeMounts"]
    }
    assert mounts.get("/data") == nats["volumeClaimTemplates"][0]["metadata"]["name"], (
        f"/data is not the PVC: {mounts}"
    )
    stream_replicas = int(config_map_data("comanda-messaging")["JETSTREAM_REPLICAS"])
    assert stream_replicas == replicas, (
        f"expected JETSTREAM_REPLICAS={replicas} (one per server), found {stream_replicas}"
    )
    nats_url = urlsplit(config_map_data("comanda-messaging")["NATS_URL"])
    client = one("Service", str(nats_url.hostname)).doc["spec"]
    assert nats_url.port in [p["port"] for p in client["ports"]], (
        f"NATS_URL port {nats_url.port} not on the Service"
    )
    assert one("PodDisruptionBudget", "nats").doc["spec"].get("maxUnavailable") == 1, (
        "expected the NATS PDB to keep quorum"
    )


@pytest.mark.parametrize("service", GRPC_SERVICES)
def test_each_service_database_is_a_statefulset_with_storage(service: str) -> None:
    db = one("StatefulSet", f"{service}-db").doc["spec"]
    image = db["template"]["spec"]["containers"][0]["image"]
    assert image.startswith("postgres:16."), (
        f"StatefulSet/{service}-db: expected postgres:16.x, found {image}"
    )
    assert db["volumeClaimTemplates"], f"StatefulSet/{service}-db: expected a volumeClaimTemplate"


@pytest.mark.parametrize("service", GRPC_SERVICES)
def test_each_database_is_migrated_by_a_job(service: str) -> None:
    job = one("Job", f"{service}-migrate")
    commands = [" ".join(c.get("command", []) + c.get("args", [])) for c in containers(job)]
    assert any(f"python -m {service} migrate" in c for c in commands), (
        f"{job.ref}: expected it to run python -m {service} migrate, found {commands}"
    )


def _ingress_paths() -> list[dict[str, Any]]:
    ingress = one("Ingress", "api").doc["spec"]
    return [p for rule in ingress["rules"] for p in rule["http"]["paths"]]


def _exposed(path: str) -> bool:
    for rule in _ingress_paths():
        prefix = rule["path"]
        if rule["pathType"] == "Exact" and path == prefix:
            return True
        if rule["pathType"] == "Prefix" and (
            prefix == "/" or path == prefix.rstrip("/") or path.startswith(prefix.rstrip("/") + "/")
        ):
            return True
    return False


def test_the_ingress_routes_to_the_http_api() -> None:
    backends = [p["backend"]["service"] for p in _ingress_paths()]
    assert backends and all(b["name"] == HTTP_SERVER for b in backends), (
        f"expected {HTTP_SERVER} backends (it serves the HTTP API), found {backends}"
    )
    ports = {p["name"]: p["port"] for p in one("Service", HTTP_SERVER).doc["spec"]["ports"]}
    assert all(ports.get(b["port"].get("name")) == HTTP_PORT for b in backends), (
        f"Ingress ports {backends} not the HTTP port {HTTP_PORT} of Service/{HTTP_SERVER} {ports}"
    )


def test_the_ingress_exposes_the_api_but_not_the_fake_checkout_nor_operations() -> None:
    http_paths = {
        re.sub(r"\{[^}]+\}", "some-id", match)
        for proto in (REPO / "protos").rglob("*.proto")
        for match in re.findall(r'(?:get|post|put|patch|delete): "([^"]+)"', proto.read_text())
    }
    assert http_paths, "expected google.api.http paths in protos/"
    free = sorted(p for p in http_paths if p.startswith("/v1/fake-checkout/"))
    assert free, "expected the fake checkout's routes in protos/"
    screens = ["/kiosk", "/monitor", "/kitchen", "/screens/common.js"]
    public = [
        *sorted(http_paths - set(free)),
        *["/openapi.json", "/docs", "/docs/docs.js", "/", *screens],
    ]
    hidden = [p for p in public if not _exposed(p)]
    assert not hidden, (
        f"expected the Ingress to expose the public API, found these unrouted: {hidden}"
    )
    internal = [p for p in ("/metrics", "/healthz", "/readyz", *free) if _exposed(p)]
    assert not internal, (
        f"expected operational endpoints and the fake checkout kept off the Ingress, found "
        f"{internal}"
    )


def test_production_mode_without_the_fake_checkout() -> None:
    shared = config_map_data("comanda-messaging")
    assert shared.get("COMANDA_ENV") == "production", "the manifests run in production mode"
    for workload in _app_workloads():
        for container in containers(workload):
            env = container_env(container)
            assert env.get("COMANDA_ENV", "production") == "production", workload.ref
            for name in ("PAYMENT_FAKE_CHECKOUT", "FAKE_PROVIDER_AUTO_APPROVE_SECONDS"):
                assert name not in env, f"{workload.ref}: {name} is for development only"


def test_the_placeholder_secrets_are_refused_in_production() -> None:
    """As shipped, orders and payment refuse to start until real secrets replace the
    placeholders (they accept the same settings with strong secrets: see above)."""
    for service in GRPC_SERVICES:
        env = _env_values(_container(service), strong_secrets=False)
        module, cls = CONFIG_CLASSES[service]
        with pytest.raises(cfg.ConfigError) as refused:
            cfg.load(getattr(importlib.import_module(module), cls), env)
        assert "COMANDA_ENV=production" in str(refused.value)
        assert "JWT_SECRET" in str(refused.value)


# --- NetworkPolicies ---------------------------------------------------------------------

Endpoint = tuple[str, str, dict[str, str]]  # (name, namespace, pod labels)
OUTSIDE: list[Endpoint] = [
    ("ingress-controller", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}),
    ("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}),
    ("kube-dns", "kube-system", {"k8s-app": "kube-dns"}),
    ("stranger", "default", {"app.kubernetes.io/name": "orders"}),
]
PORTS = [53, 4222, 5432, 6222, 8080, 8222, 9090, 50051, 50052]
EXPECTED_PATHS = {
    ("ingress-controller", "orders", 8080),
    ("prometheus", "orders", 8080),
    ("prometheus", "orders", 9090),
    ("prometheus", "payment", 9090),
    ("orders", "payment", 50052),
    ("orders", "orders-db", 5432),
    ("orders", "nats", 4222),
    ("payment", "payment-db", 5432),
    ("payment", "nats", 4222),
    ("orders-worker", "orders-db", 5432),
    ("orders-worker", "nats", 4222),
    ("payment-worker", "payment-db", 5432),
    ("payment-worker", "nats", 4222),
    ("prometheus", "orders-worker", 9090),
    ("prometheus", "payment-worker", 9090),
    ("orders-migrate", "orders-db", 5432),
    ("payment-migrate", "payment-db", 5432),
    ("nats", "nats", 6222),
}


def _inside() -> list[Endpoint]:
    return [(_name(w), NAMESPACE, pod_labels(w)) for w in workloads()]


def _peer_matches(peer: dict[str, Any], other: Endpoint) -> bool:
    _, namespace, labels = other
    if "namespaceSelector" in peer:
        if not selects(
            match_labels(peer["namespaceSelector"]), {"kubernetes.io/metadata.name": namespace}
        ):
            return False
    elif namespace != NAMESPACE:
        return False
    return "podSelector" not in peer or selects(match_labels(peer["podSelector"]), labels)


def _rule_allows(
    rule: dict[str, Any], peers_key: str, other: Endpoint, port: int, protocol: str
) -> bool:
    peers = rule.get(peers_key)
    ports = rule.get("ports")
    peer_ok = not peers or any(_peer_matches(p, other) for p in peers)
    port_ok = not ports or any(
        p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports
    )
    return peer_ok and port_ok


def _allowed(src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> bool:
    """Whether the NetworkPolicies of the comanda namespace let src open port on dst."""

    def side(
        pod: Endpoint, policy_type: str, rules_key: str, peers_key: str, other: Endpoint
    ) -> bool:
        if pod[1] != NAMESPACE:
            return True  # not governed by these policies
        policies = [
            p.doc["spec"]
            for p in of_kind("NetworkPolicy")
            if selects(match_labels(p.doc["spec"]["podSelector"]), pod[2])
            and policy_type in p.doc["spec"].get("policyTypes", ["Ingress"])
        ]
        if not policies:
            return True
        return any(
            _rule_allows(r, peers_key, other, port, protocol)
            for p in policies
            for r in p.get(rules_key, [])
        )

    return side(src, "Egress", "egress", "to", dst) and side(dst, "Ingress", "ingress", "from", src)


def test_a_default_deny_policy_covers_every_pod() -> None:
    deny = [
        p
        for p in of_kind("NetworkPolicy")
        if p.doc["spec"]["podSelector"] == {}
        and set(p.doc["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p.doc["spec"].get("ingress")
        and not p.doc["spec"].get("egress")
    ]
    assert deny, "expected a NetworkPolicy denying all ingress and egress to every pod by default"


def test_every_workload_has_a_network_policy_of_its_own() -> None:
    for workload in workloads():
        own = [
            p
            for p in of_kind("NetworkPolicy")
            if p.doc["spec"]["podSelector"] != {}
            and selects(match_labels(p.doc["spec"]["podSelector"]), pod_labels(workload))
        ]
        assert own, f"{workload.ref}: expected a NetworkPolicy selecting its pods"


def test_network_policies_allow_exactly_the_paths_of_the_design() -> None:
    endpoints = _inside() + OUTSIDE
    allowed = {
        (src[0], dst[0], port)
        for src, dst in itertools.product(endpoints, endpoints)
        for port in PORTS
        if src[0] != dst[0] or src[0] == "nats"
        if not (src[1] != NAMESPACE and dst[1] != NAMESPACE)
        if port != 53 and _allowed(src, dst, port)
    }
    assert not (EXPECTED_PATHS - allowed), (
        f"expected these paths open, found them blocked: {sorted(EXPECTED_PATHS - allowed)}"
    )
    assert not (allowed - EXPECTED_PATHS), (
        f"expected these paths blocked, found them open: {sorted(allowed - EXPECTED_PATHS)}"
    )


def test_every_pod_may_resolve_names_and_only_through_cluster_dns() -> None:
    dns = next(e for e in OUTSIDE if e[0] == "kube-dns")
    stranger = next(e for e in OUTSIDE if e[0] == "stranger")
    for pod in _inside():
        for protocol in ("UDP", "TCP"):
            assert _allowed(pod, dns, 53, protocol), (
                f"{pod[0]}: expected DNS ({protocol} 53) to kube-dns allowed"
            )
        assert not _allowed(pod, stranger, 53, "UDP"), (
            f"{pod[0]}: expected port 53 elsewhere blocked"
        )


def test_policy_selectors_match_real_pods() -> None:
    labels = [pod_labels(w) for w in workloads()]
    for policy in of_kind("NetworkPolicy"):
        spec = policy.doc["spec"]
        selectors = [spec["podSelector"]] + [
            peer["podSelector"]
            for rule in spec.get("ingress", []) + spec.get("egress", [])
            for peer in rule.get("from", []) + rule.get("to", [])
            if "podSelector" in peer and "namespaceSelector" not in peer
        ]
        for selector in selectors:
            assert any(selects(match_labels(selector), pod) for pod in labels), (
                f"{policy.ref}: selector {selector} matches no pod of any workload (typo?)"
            )


def test_workload_kinds_are_the_ones_the_checks_know() -> None:
    kinds = {r.kind for r in manifests()}
    unknown = kinds & {"DaemonSet", "ReplicaSet", "CronJob", "Pod"}
    assert not unknown, f"tests/ops checks {WORKLOAD_KINDS}; extend it before adding {unknown}"


@pytest.mark.parametrize("service", GRPC_SERVICES)
def test_each_service_has_a_worker_deployment_scaled_on_its_own(service: str) -> None:
    """The saga's work (`python -m <service> worker`) runs in pods of its own, with its own
    HPA and PDB, probed on the gRPC health its port serves; no Service sends it calls."""
    name = f"{service}-worker"
    worker = one("Deployment", name)
    (container,) = [c for c in containers(worker) if c["name"] == name]
    assert container["command"] == ["python", "-m", service, "worker"], container["command"]
    assert "replicas" not in worker.doc["spec"], f"Deployment/{name}: its HPA owns replicas"
    port = int(
        container_env(container).get(f"{service.upper()}_GRPC_PORT")
        or settings(service)[f"{service.upper()}_GRPC_PORT"]
    )
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container.get(probe, {}).get("grpc", {}).get("port") == port, (name, probe)
    labels = pod_labels(worker)
    hpa = one("HorizontalPodAutoscaler", name).doc["spec"]
    assert hpa["scaleTargetRef"]["name"] == name and hpa["minReplicas"] >= 2
    assert selects(match_labels(one("PodDisruptionBudget", name).doc["spec"]["selector"]), labels)
    assert not [s for s in of_kind("Service") if selects(s.doc["spec"].get("selector", {}), labels)]
    assert not selects(pod_labels(_deployment(service)), labels), "server and worker pods apart"
