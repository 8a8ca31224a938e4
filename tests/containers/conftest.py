"""The container tests run against the image and the compose stack that `make compose-test`
builds and starts (scripts/compose_test.sh, which also tears them down). Anywhere else (a plain
`make test`) there is neither: they are deselected, and one printed line says why."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from chassis import tokens
from tests.containers.engine import ComposeStack, Steps

NOT_HERE = (
    "needs the image and compose stack of `make compose-test` (which installs the container "
    "engine when missing and builds and starts them)"
)


HERE = Path(__file__).parent
_deselected: list[pytest.Item] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ComposeStack.from_environment() is not None:
        return
    _deselected[:] = [item for item in items if HERE in item.path.parents]
    if _deselected:
        config.hook.pytest_deselected(items=_deselected)
        items[:] = [item for item in items if item not in _deselected]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _deselected:
        terminalreporter.write_line(f"tests/containers: {len(_deselected)} not run: {NOT_HERE}")


@pytest.fixture(scope="session")
def stack() -> ComposeStack:
    found = ComposeStack.from_environment()
    if found is None:
        pytest.fail(NOT_HERE)
    return found


@pytest.fixture
def steps() -> Steps:
    print()
    return Steps()


@pytest.fixture(scope="session")
def gateway(stack: ComposeStack) -> httpx.Client:
    """HTTP to the gateway (in the orders container: the HTTP API it serves), through its
    port published on 127.0.0.1."""
    return httpx.Client(base_url=f"http://{stack.address('orders', 8080)}", timeout=15)


@pytest.fixture(scope="session")
def staff(stack: ComposeStack) -> dict[str, str]:
    """A staff token with both roles, as `make token` signs it for the compose demo (which runs
    in development, with the development key unless it sets JWT_SECRET)."""
    secret = stack.environment("orders").get("JWT_SECRET") or tokens.DEV_SECRET
    token = tokens.sign("compose-test", ["kitchen", "manager"], secret=secret)
    return {"authorization": f"Bearer {token}"}
