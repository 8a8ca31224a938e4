"""The container tests run against the image and the compose stack that `make compose-test`
builds and starts (scripts/compose_test.sh, which also tears them down). Under a plain
`make test` there is neither, and they say so in one line."""

from __future__ import annotations

import httpx
import pytest

from tests.containers.engine import ComposeStack, Steps

NOT_HERE = (
    "needs the image and compose stack of `make compose-test` (which installs the container "
    "engine when missing and builds and starts them)"
)


@pytest.fixture(scope="session")
def stack() -> ComposeStack:
    found = ComposeStack.from_environment()
    if found is None:
        pytest.skip(NOT_HERE)
    return found


@pytest.fixture
def steps() -> Steps:
    print()
    return Steps()


@pytest.fixture(scope="session")
def gateway(stack: ComposeStack) -> httpx.Client:
    """HTTP to the gateway container, through its port published on 127.0.0.1."""
    return httpx.Client(base_url=f"http://{stack.address('gateway', 8080)}", timeout=15)


@pytest.fixture(scope="session")
def staff(stack: ComposeStack) -> dict[str, str]:
    """The staff token the compose file gives the services."""
    return {"authorization": f"Bearer {stack.environment('orders')['STAFF_TOKEN']}"}
