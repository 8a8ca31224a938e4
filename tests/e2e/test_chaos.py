"""Chaos, small enough for `make test`: two replicas of each service, orders flowing, and
meanwhile processes killed with SIGKILL, NATS and PostgreSQL killed and restarted. Afterwards
every order is paid exactly once and entered the kitchen exactly once, in both services'
records, and nothing was dead-lettered. `make chaos` runs the same with 2,000 orders."""

from __future__ import annotations

import pytest

from tests.support import chaos
from tests.support.stack import Stack


@pytest.mark.parametrize(
    "own_stack",
    [{"gateway": False, "replicas": chaos.REPLICAS, "env": chaos.STACK_ENV}],
    indirect=True,
)
def test_nothing_lost_nothing_doubled_under_kills_and_restarts(own_stack: Stack, pg):
    report = chaos.run(own_stack, pg, chaos.Plan(orders=120, kiosk_pause=0.02))
    summary = "\n".join(report.lines() + report.faults)
    assert not report.problems(), f"{report.problems()}\n{summary}"
    assert len(report.faults) >= 6 and report.orders_driven == 120, summary
    assert report.dead_letters == [], summary
