"""The live view of orders behind WatchOrder, WatchOrderBoard and WatchKitchenQueue.

One `chassis.live.LiveFeed` per process: after a transaction that changed an order commits, the
`OrderChanged` effect (`orders.service_layer.handlers.announce_change`) calls
`changed(order_id)`; the feed reads each changed order once (every watcher of it, and of the
kitchen queue, shares that read), and announces the change on the core NATS subject
`comanda.live.order.<id>` (not JetStream: nothing is stored) so that the other replicas'
watchers hear of it too. While anyone watches the board or the kitchen, the feed keeps the
kitchen queue in memory: a new watcher starts from it without a read of its own. It re-reads
what is watched on a slow timer, so a lost notification delays a change but never loses it.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable

from nats.aio.client import Client as NATS

from chassis.live import LiveFeed, Members
from orders.domain.model import KITCHEN_QUEUE, Order
from orders.service_layer import ordering
from orders.service_layer.unit_of_work import UowFactory

SUBJECT = "comanda.live.order"
# The kitchen queue kept in memory: the most ListKitchenQueue returns, far more than a kitchen
# works on at once.
QUEUE_LIMIT = 500

OrderFeed = LiveFeed[Order]


def version(order: Order) -> Hashable:
    """Changes with everything a watcher is shown (status, payment, history)."""
    return (
        order.status,
        order.payment_status,
        order.payment_id,
        len(order.history),
        order.updated_at,
    )


def in_kitchen_queue(order: Order) -> bool:
    return order.status in KITCHEN_QUEUE


def order_feed(
    uow: UowFactory, nc: NATS | None, resync: float = 5.0, listen: bool = True
) -> OrderFeed:
    return LiveFeed(
        "orders",
        SUBJECT,
        load=functools.partial(ordering.get_many, uow),
        key=lambda order: order.id,
        version=version,
        members=Members(
            load=functools.partial(ordering.kitchen_queue, uow, QUEUE_LIMIT),
            contains=in_kitchen_queue,
        ),
        nc=nc,
        resync=resync,
        listen=listen,
    )
