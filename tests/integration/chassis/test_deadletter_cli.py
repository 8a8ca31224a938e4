"""`make dead-letters` / `make replay-dead-letters` (python -m chassis.messaging.deadletter)
against a real NATS JetStream: on a server no service has used yet, with a dead letter, and
with no server at all."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from chassis.messaging import codec
from chassis.messaging.consumer import dead_letter
from chassis.messaging.jetstream import StreamSettings, ensure_streams, streams
from devstack.servers import free_port
from tests.integration.chassis.test_startup import assert_one_line
from tests.support.saga import with_nats
from tests.support.stack import REPO

SUBJECT = "payments.v1.payment.approved.order-1"


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chassis.messaging.deadletter", *args],
        cwd=REPO,
        env={**os.environ, "NATS_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_server_no_service_has_used_has_no_dead_letters(nats_server):
    listed = cli(nats_server.url, "list")
    replayed = cli(nats_server.url, "replay")

    assert (listed.returncode, listed.stdout, listed.stderr) == (0, "0 dead letter(s)\n", "")
    assert (replayed.returncode, replayed.stdout) == (0, "replayed 0 dead letter(s)\n")


def test_list_then_replay_one_consumers_dead_letter(nats_server):
    async def poison(nc: Any) -> None:
        await ensure_streams(nc.jetstream(), StreamSettings(), streams([SUBJECT]))
        await dead_letter(
            nc,
            SUBJECT,
            b"\x08\x01",
            {codec.EVENT_TYPE_HEADER: "PaymentApproved"},
            "orders-payment-events",
            "order not found",
            5,
            "PAYMENTS:7",
        )

    with_nats(nats_server.url, poison)

    listed = cli(nats_server.url, "list")
    other = cli(nats_server.url, "list", "--consumer", "payment-order-events")
    replayed = cli(nats_server.url, "replay", "--consumer", "orders-payment-events")
    after = cli(nats_server.url, "list")

    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        f"#1 orders-payment-events {SUBJECT} [PaymentApproved] after 5 deliveries: order not found",
        "1 dead letter(s)",
    ]
    assert other.stdout == "0 dead letter(s)\n", other.stdout
    assert replayed.stdout == "replayed 1 dead letter(s)\n", replayed.stderr
    assert after.stdout == "0 dead letter(s)\n", "a replayed letter leaves the stream"
    republished = with_nats(
        nats_server.url, lambda nc: nc.jetstream().get_last_msg("PAYMENTS", SUBJECT)
    )
    assert republished.data == b"\x08\x01"
    headers = republished.headers or {}
    # The event (and its id) is the payload, unchanged; the message id is new, so JetStream's
    # duplicate window does not drop the replay.
    assert headers[codec.MSG_ID_HEADER].endswith(":replay:1"), headers
    assert headers[codec.EVENT_TYPE_HEADER] == "PaymentApproved"
    assert not any(k.startswith("Comanda-Dead-Letter") for k in headers), headers


def test_no_server_is_one_line():
    result = cli(f"nats://127.0.0.1:{free_port()}", "list")

    assert_one_line(result, 1, "cannot connect to NATS")
