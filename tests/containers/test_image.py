"""What the image promises, checked on the built image and on the running stack: a numeric
non-root user, a read-only root filesystem that is enough, no build tools or installers, and
a small size."""

from __future__ import annotations

import pytest

from tests.containers.engine import ComposeStack, Steps, docker, inspect
from tests.ops.deployment_files import app_image, compose_services

# The long-running processes of the image in the compose file (a new one is checked as it comes).
PROCESSES = [
    name
    for name, service in compose_services().items()
    if service.get("image") == app_image() and str(service.get("restart")) != "no"
]

# What the image must not carry: compilers, linkers, build drivers, installers, protoc.
BUILD_TOOLS = ("gcc", "cc", "c++", "g++", "clang", "ld", "as", "make", "cmake", "pip", "pip3")
BUILD_MODULES = ("pip", "setuptools", "wheel", "grpc_tools")
# What the project adds to its base image (the virtualenv and the code); today about 90 MB.
MAX_ADDED_MB = 130


def _run(image: str, *command: str) -> str:
    return docker(
        "run", "--rm", "--network", "none", "--entrypoint", command[0], image, *command[1:]
    )


def test_the_image_runs_as_a_numeric_non_root_user(stack: ComposeStack, steps: Steps) -> None:
    with steps.step("user") as note:
        images = {s: inspect(stack.container(s), "{{.Image}}") for s in PROCESSES}
        assert set(images.values()) == {stack.image_id}, (
            f"expected the stack on the image just built, {stack.image_id}, found {images}"
        )
        user = inspect(stack.image_id, "{{.Config.User}}")
        assert user == "10001:10001", f"expected USER 10001:10001 in the image, found {user!r}"
        running = {s: docker("exec", stack.container(s), "id", "-u") for s in PROCESSES}
        assert set(running.values()) == {"10001"}, f"expected uid 10001 everywhere, found {running}"
        note.append(f"USER {user}; {', '.join(PROCESSES)} run as uid 10001")


@pytest.mark.parametrize("service", PROCESSES)
def test_the_root_filesystem_is_read_only_and_enough(stack: ComposeStack, service: str) -> None:
    container = stack.container(service)
    assert inspect(container, "{{.HostConfig.ReadonlyRootfs}}") == "true", (
        f"{service}: expected a read-only root filesystem"
    )
    assert stack.health(service) == "healthy", f"{service}: expected healthy on a read-only root"
    probe = (
        "import errno, tempfile\n"
        "try:\n    open('/app/written-at-run-time', 'w')\n"
        "except OSError as e:\n    assert e.errno == errno.EROFS, e\n"
        "else:\n    raise SystemExit('/app is writable')\n"
        "tempfile.NamedTemporaryFile(dir='/tmp').close()\n"
        "print('ok')"
    )
    out = docker("exec", container, "python", "-c", probe)
    assert out == "ok", f"{service}: expected / read-only and /tmp writable, found {out!r}"


def test_no_build_tools_or_installers_in_the_image(stack: ComposeStack, steps: Steps) -> None:
    with steps.step("no build tools") as note:
        found = _run(
            stack.image_id,
            "sh",
            "-c",
            f"for t in {' '.join(BUILD_TOOLS)}; do command -v $t; done; :",
        )
        assert not found, f"expected no build tools on PATH, found {found.split()}"
        modules = _run(
            stack.image_id,
            "python",
            "-c",
            "import importlib.util as u; "
            f"print(' '.join(m for m in {BUILD_MODULES!r} if u.find_spec(m)))",
        )
        assert not modules, f"expected no installer or protoc modules, found {modules}"
        note.append(f"none of {', '.join(BUILD_TOOLS)}; no module {', '.join(BUILD_MODULES)}")


def test_the_image_is_small(stack: ComposeStack, steps: Steps) -> None:
    with steps.step("size") as note:
        base = stack.env_file["PYTHON_IMAGE"]
        size = int(inspect(stack.image_id, "{{.Size}}")) / 1e6
        base_size = int(inspect(base, "{{.Size}}")) / 1e6
        note.append(
            f"{stack.image} {size:.0f} MB: {base} {base_size:.0f} MB + {size - base_size:.0f} MB"
        )
        assert size - base_size <= MAX_ADDED_MB, (
            f"expected the virtualenv and code to add at most {MAX_ADDED_MB} MB to {base}, "
            f"found {size - base_size:.0f} MB"
        )
