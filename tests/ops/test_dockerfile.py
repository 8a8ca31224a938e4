"""The Dockerfile and .dockerignore, read as text (no Docker engine is needed): a hermetic
multi-stage build whose final stage holds the virtualenv and the code, runs as a numeric
non-root user and carries no build tools. `make compose-test` builds and runs the image itself
(tests/containers)."""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib

import pytest

from gateway import comments
from tests.ops.deployment_files import (
    DOCKERFILE,
    DOCKERIGNORE,
    REPO,
    SERVICES,
    Stage,
    dockerfile_stages,
    project_version,
)

BUILD_TOOLS = (
    "gcc",
    "g++",
    "build-essential",
    "make",
    "git",
    "curl",
    "wget",
    "apt-get",
    "pip install",
    "protoc",
)


def _stages() -> list[Stage]:
    return dockerfile_stages()[1]


def _final() -> Stage:
    return _stages()[-1]


def _build() -> Stage:
    return _stages()[0]


def _copies(stage: Stage) -> list[tuple[str | None, list[str], str]]:
    """(from stage or None for the build context, sources, destination) of each COPY."""
    found = []
    for args in stage.lines("COPY"):
        words = shlex.split(args)
        source = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
        paths = [w for w in words if not w.startswith("--")]
        found.append((source, paths[:-1], paths[-1]))
    return found


def test_it_is_a_multi_stage_build_on_a_pinned_slim_python() -> None:
    stages = _stages()
    assert len(stages) >= 2, f"expected a multi-stage build, found {len(stages)} stage(s)"
    bases = {s.base for s in stages}
    assert len(bases) == 1, (
        f"expected every stage on the same base (the venv points at its python), found {bases}"
    )
    base = bases.pop()
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim(-\w+)?", base), (
        f"expected a python:X.Y.Z-slim image pinned to a patch version, found {base!r}"
    )
    python = tuple(int(x) for x in base.split(":")[1].split("-")[0].split(".")[:2])
    with open(REPO / "pyproject.toml", "rb") as f:
        requires = tomllib.load(f)["project"]["requires-python"]
    minimum = tuple(int(x) for x in requires.removeprefix(">=").split("."))
    assert python >= minimum, f"expected python {requires} in the image, found {base}"


def test_the_final_stage_runs_as_a_numeric_non_root_user() -> None:
    users = _final().lines("USER")
    assert users, "expected a USER in the final stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, (
        f"expected a numeric non-zero UID (runAsNonRoot checks it), found {users[-1]!r}"
    )
    k8s_uid = 10001
    assert int(uid) == k8s_uid, f"expected UID {k8s_uid}, as the manifests' runAsUser, found {uid}"


def test_the_final_stage_has_no_build_tools_and_installs_nothing() -> None:
    runs = " ".join(_final().lines("RUN"))
    found = [tool for tool in BUILD_TOOLS if re.search(rf"(^|\W){re.escape(tool)}(\W|$)", runs)]
    assert not found, (
        f"expected no build tools or installs in the final stage, found {found} in: {runs}"
    )


def test_the_final_stage_takes_only_the_venv_and_the_app_from_the_build_stage() -> None:
    copies = _copies(_final())
    assert copies, "expected COPY --from=<build stage> in the final stage"
    from_context = [c for c in copies if c[0] is None]
    assert not from_context, (
        f"expected the final stage to copy nothing from the build context, found {from_context}"
    )
    found = sorted((src, tuple(paths)) for src, paths, _ in copies)
    assert found == [(_build().name, ("/app",)), (_build().name, ("/opt/venv",))], (
        f"expected COPY --from={_build().name} of /opt/venv and /app only, found {found}"
    )


def test_the_build_is_hermetic() -> None:
    text = DOCKERFILE.read_text()
    assert not text.startswith("# syntax="), (
        "expected no syntax directive: it makes BuildKit fetch a frontend image from a registry"
    )
    runs = " ".join(run for stage in _stages() for run in stage.lines("RUN"))
    fetchers = [
        t for t in ("curl", "wget", "apt-get", "git", "protoc") if re.search(rf"\b{t}\b", runs)
    ]
    assert not fetchers, f"expected nothing fetched or generated in the build, found {fetchers}"
    installs = re.findall(r"pip\S*\s+install[^&]*", runs)
    assert installs and all("--no-index" in i for i in installs), (
        f"expected every pip install from the wheelhouse only (--no-index), found {installs}"
    )


def test_the_build_stage_installs_runtime_dependencies_pinned_by_constraints() -> None:
    runs = " ".join(_build().lines("RUN"))
    assert re.search(r"install .*--find-links /wheels .*-c constraints\.txt", runs), (
        f"expected an install from /wheels pinned by constraints.txt, found: {runs}"
    )
    assert "['project']['dependencies']" in runs, (
        "expected the runtime dependencies of pyproject.toml"
    )
    assert "[dev]" not in runs, (
        "expected the dev extra (tools, embedded servers) kept out of the image"
    )
    copied = {(tuple(paths), dest) for _, paths, dest in _copies(_build())}
    assert ((".build/wheelhouse",), "/wheels") in copied, (
        f"expected the wheelhouse of scripts/build_image.sh copied to /wheels, found {copied}"
    )


def test_the_image_takes_the_code_generated_by_make_proto() -> None:
    copies = {dest: paths for _, paths, dest in _copies(_build())}
    assert copies.get("/app/comanda") == ["comanda"], (
        f"expected COPY comanda /app/comanda (scripts/gen_protos.sh's output), found {copies}"
    )
    descriptor_set = comments.BUILT_SET.relative_to(REPO)
    assert comments.BUILT_SET.exists() and _sent(str(descriptor_set)), (
        f"expected {descriptor_set} (the comments of the OpenAPI document) generated and sent"
    )


def test_every_runtime_package_is_in_the_image() -> None:
    with open(REPO / "pyproject.toml", "rb") as f:
        include = tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in include} - {"devstack", "comanda"}  # dev only; generated
    copied = {
        dest.removeprefix("/app/") for _, _, dest in _copies(_build()) if dest.startswith("/app/")
    }
    assert packages <= copied, (
        f"expected {sorted(packages)} copied into /app, missing {sorted(packages - copied)}"
    )


def test_the_image_runs_a_service_by_default_from_the_app_directory() -> None:
    final = _final()
    cmd = final.lines("CMD")
    assert cmd, "expected a CMD"
    words = re.findall(r'"([^"]*)"', cmd[-1])
    assert words[:2] == ["python", "-m"] and words[2] in SERVICES, (
        f"expected CMD python -m <service>, found {cmd[-1]}"
    )
    env = " ".join(final.lines("ENV"))
    assert "PYTHONPATH=/app" in env and "PATH=/opt/venv/bin:" in env, (
        f"expected the venv on PATH and /app on PYTHONPATH, found {env}"
    )
    assert final.lines("WORKDIR") == ["/app"], (
        f"expected WORKDIR /app, found {final.lines('WORKDIR')}"
    )
    assert "SIGTERM" in final.lines("STOPSIGNAL"), "expected STOPSIGNAL SIGTERM (graceful shutdown)"


def test_the_image_runs_in_production_mode_by_default() -> None:
    env = " ".join(_final().lines("ENV"))
    assert "COMANDA_ENV=production" in env, f"expected COMANDA_ENV=production, found {env}"


def test_the_image_labels_the_project_version() -> None:
    labels = " ".join(_final().lines("LABEL"))
    version = project_version()
    assert f'org.opencontainers.image.version="{version}"' in labels, (
        f"expected the version label {version} (pyproject.toml), found {labels}"
    )


# --- .dockerignore -------------------------------------------------------------------------


def _patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _matches(pattern: str, path: str) -> bool:
    parts = path.split("/")
    pattern = pattern.rstrip("/")
    if pattern.startswith("**/"):
        return any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts)
    return any(fnmatch.fnmatchcase("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1))


def _sent(path: str) -> bool:
    """Whether Docker sends `path` in the build context (last matching pattern wins)."""
    excluded = False
    for pattern in _patterns():
        negated = pattern.startswith("!")
        if _matches(pattern.lstrip("!"), path):
            excluded = not negated
    return not excluded


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "constraints.txt",
        ".build/wheelhouse/pip-26.3-py3-none-any.whl",
        "comanda/orders/v1/orders_pb2.py",
        "comanda/descriptor_set.binpb",
        "chassis/alembic/env.py",
        "orders/migrations/0001_initial.py",
        "payment/app.py",
        "gateway/static/docs.js",
    ],
)
def test_the_build_context_holds_what_the_dockerfile_copies(path: str) -> None:
    assert _sent(path), f"expected {path} in the build context, .dockerignore leaves it out"


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        ".data/postgres/PG_VERSION",
        ".build/base-images.env",
        "comanda/orders/v1/orders_pb2.pyi",
        "comanda/.generated",
        "protos/comanda/orders/v1/orders.proto",
        "tests/conftest.py",
        "orders/__pycache__/app.cpython-311.pyc",
        "docs/operations.md",
        "kubernetes/40-orders.yaml",
    ],
)
def test_the_build_context_leaves_out_local_state(path: str) -> None:
    assert not _sent(path), f"expected {path} kept out of the build context by .dockerignore"


def test_every_copy_source_is_in_the_build_context() -> None:
    sources = [p for src, paths, _ in _copies(_build()) if src is None for p in paths]
    missing = [p for p in sources if not _sent(p)]
    assert not missing, (
        f"expected every COPY source sent to the builder, .dockerignore drops {missing}"
    )
