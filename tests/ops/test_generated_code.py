"""The code generated from the protos comes from one place."""

from __future__ import annotations

from tests.ops.deployment_files import REPO


def test_protoc_is_invoked_in_one_place() -> None:
    callers = sorted(
        str(path.relative_to(REPO))
        for pattern in ("*.sh", "Makefile", "Dockerfile", "*.py", "*.yml", "*.yaml")
        for path in REPO.rglob(pattern)
        if path.is_file()
        and not path.is_relative_to(REPO / ".venv")
        and not path.is_relative_to(REPO / "tests")
        and "grpc_tools.protoc" in path.read_text(errors="replace")
    )
    assert callers == ["scripts/gen_protos.sh"], f"expected protoc in one script, found {callers}"
