"""The environment of a `make run` (python -m devstack run) started by a test."""

from __future__ import annotations

import os
from pathlib import Path

from devstack.run import PORTS, SERVERS
from devstack.servers import free_port

# Settings the test's environment must not pass on (the developer's own, or the tests');
# the DEVSTACK_ ports and data directory are set below, DEVSTACK_ROOT_HOME passes.
OURS = ("ORDERS_", "PAYMENT_", "GATEWAY_", "NATS_URL", "COMANDA_ENV")


def devstack_env(data: Path, **extra: str) -> dict[str, str]:
    """`make run`'s environment with its data in `data` and every port it opens free."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OURS)}
    for variable, _default in (*PORTS.values(), *SERVERS.values()):
        env[variable] = str(free_port())
    return {**env, "DEVSTACK_DATA_DIR": str(data), **extra}
