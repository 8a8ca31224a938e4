"""gRPC servicers of the orders service. They translate requests into use-case calls (run in
worker threads, since the database driver blocks) and results into responses; no rules here."""

from __future__ import annotations

import asyncio
import functools
import time
import weakref
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any, TypeVar

import grpc

from chassis.batching import GroupCommit
from chassis.errors import InvalidArgument, NotFound
from chassis.events import utcnow
from chassis.interceptors import acting_subject
from chassis.live import Subscription
from chassis.protomap import enum_from_proto, from_timestamp, timestamp
from chassis.validation import validate_uuid
from comanda.orders.v1 import (
    catalog_pb2,
    catalog_pb2_grpc,
    customers_pb2,
    customers_pb2_grpc,
    orders_pb2,
    orders_pb2_grpc,
)
from orders.domain.model import TERMINAL, CartLine, Category, Order, OrderStatus, kitchen_order
from orders.entrypoints import mapping
from orders.entrypoints.watch import OrderFeed
from orders.service_layer import catalog, customers, ordering
from orders.service_layer.unit_of_work import UowFactory

Context = grpc.aio.ServicerContext[Any, Any]
# A board or kitchen stream with nothing to say sends an empty message this often, so clients
# (and proxies) can tell a quiet stream from a dead connection.
HEARTBEAT_SECONDS = 20.0
K = TypeVar("K", orders_pb2.ListKitchenQueueResponse, orders_pb2.KitchenQueueEvent)


class CustomerApi(customers_pb2_grpc.CustomerServiceServicer):
    def __init__(self, uow: UowFactory) -> None:
        self.uow = uow

    async def RegisterCustomer(
        self, request: customers_pb2.RegisterCustomerRequest, context: Context
    ) -> customers_pb2.Customer:
        return mapping.customer(
            await asyncio.to_thread(
                customers.register, self.uow, request.cpf, request.name, request.email
            )
        )

    async def IdentifyCustomer(
        self, request: customers_pb2.IdentifyCustomerRequest, context: Context
    ) -> customers_pb2.Customer:
        return mapping.customer(await asyncio.to_thread(customers.identify, self.uow, request.cpf))

    async def GetCustomer(
        self, request: customers_pb2.GetCustomerRequest, context: Context
    ) -> customers_pb2.Customer:
        return mapping.customer(
            await asyncio.to_thread(customers.get, self.uow, request.customer_id)
        )

    async def EraseCustomer(
        self, request: customers_pb2.EraseCustomerRequest, context: Context
    ) -> customers_pb2.Customer:
        return mapping.customer(
            await asyncio.to_thread(customers.erase, self.uow, request.customer_id)
        )


_MASKABLE: dict[str, Callable[[catalog_pb2.Product], Any]] = {
    "name": lambda p: p.name,
    "description": lambda p: p.description,
    "category": lambda p: enum_from_proto(
        catalog_pb2.Category, p.category, Category, "product.category", True
    ),
    "price_centavos": lambda p: p.price_centavos,
    "preparation_seconds": lambda p: p.preparation_seconds,
    "active": lambda p: p.active,
}


class CatalogApi(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, uow: UowFactory) -> None:
        self.uow = uow

    async def CreateProduct(
        self, request: catalog_pb2.CreateProductRequest, context: Context
    ) -> catalog_pb2.Product:
        p = request.product
        category = enum_from_proto(
            catalog_pb2.Category, p.category, Category, "product.category", True
        )
        return mapping.product(
            await asyncio.to_thread(
                catalog.create,
                self.uow,
                p.name,
                p.description,
                category,
                p.price_centavos,
                p.preparation_seconds,
            )
        )

    async def GetProduct(
        self, request: catalog_pb2.GetProductRequest, context: Context
    ) -> catalog_pb2.Product:
        return mapping.product(await asyncio.to_thread(catalog.get, self.uow, request.product_id))

    async def ListProducts(
        self, request: catalog_pb2.ListProductsRequest, context: Context
    ) -> catalog_pb2.ListProductsResponse:
        category = enum_from_proto(catalog_pb2.Category, request.category, Category, "category")
        page, token = await asyncio.to_thread(
            catalog.list_products,
            self.uow,
            category,
            request.include_archived,
            request.page_size,
            request.page_token,
        )
        return catalog_pb2.ListProductsResponse(
            products=[mapping.product(p) for p in page], next_page_token=token
        )

    async def UpdateProduct(
        self, request: catalog_pb2.UpdateProductRequest, context: Context
    ) -> catalog_pb2.Product:
        changes = {}
        for path in request.update_mask.paths:
            getter = _MASKABLE.get(path.removeprefix("product."))
            if getter is None:
                raise InvalidArgument(
                    "update_mask", f"{path!r} cannot be updated; use {', '.join(_MASKABLE)}"
                )
            changes[path.removeprefix("product.")] = getter(request.product)
        return mapping.product(
            await asyncio.to_thread(catalog.update, self.uow, request.product.id, changes)
        )

    async def ArchiveProduct(
        self, request: catalog_pb2.ArchiveProductRequest, context: Context
    ) -> catalog_pb2.Product:
        return mapping.product(
            await asyncio.to_thread(catalog.archive, self.uow, request.product_id)
        )


class OrderApi(orders_pb2_grpc.OrderServiceServicer):
    def __init__(
        self,
        uow: UowFactory,
        feed: OrderFeed,
        payment_timeout: timedelta,
        heartbeat: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.uow = uow
        self.feed = feed
        self.heartbeat = heartbeat
        # Concurrent checkouts are written together (one transaction and statement each batch).
        self.checkouts: GroupCommit[ordering.CheckOut, Order] = GroupCommit(
            "checkout",
            functools.partial(ordering.check_out_many, uow, payment_timeout=payment_timeout),
            key=lambda command: command.request_id,
        )
        # Concurrent GetOrder calls are read together (one thread hop and one query a batch).
        self.reads: GroupCommit[str, Order] = GroupCommit(
            "get order", functools.partial(ordering.get_each, uow)
        )
        # The message of each order read the live feed offered: every watcher of an order is
        # offered the same read, so it is mapped once, not once per watcher (47 µs a mapping).
        self._watched: weakref.WeakKeyDictionary[Order, orders_pb2.Order] = (
            weakref.WeakKeyDictionary()
        )

    async def CreateOrder(
        self, request: orders_pb2.CreateOrderRequest, context: Context
    ) -> orders_pb2.Order:
        cart = [CartLine(i.product_id, i.quantity, i.notes) for i in request.items]
        command = ordering.checkout_command(request.request_id, request.customer_cpf, cart)
        return mapping.order(await self.checkouts.submit(command))

    async def GetOrder(
        self, request: orders_pb2.GetOrderRequest, context: Context
    ) -> orders_pb2.Order:
        order_id = validate_uuid(request.order_id, "order_id")
        return mapping.order(await self.reads.submit(order_id))

    async def ListOrders(
        self, request: orders_pb2.ListOrdersRequest, context: Context
    ) -> orders_pb2.ListOrdersResponse:
        status = enum_from_proto(orders_pb2.OrderStatus, request.status, OrderStatus, "status")
        page, token = await asyncio.to_thread(
            ordering.list_orders,
            self.uow,
            status,
            request.customer_id,
            from_timestamp(request, "created_after"),
            from_timestamp(request, "created_before"),
            request.page_size,
            request.page_token,
        )
        return orders_pb2.ListOrdersResponse(
            orders=[mapping.order(o) for o in page], next_page_token=token
        )

    async def CancelOrder(
        self, request: orders_pb2.CancelOrderRequest, context: Context
    ) -> orders_pb2.Order:
        by = acting_subject()  # a staff member cancelling for a customer, or nobody
        return mapping.order(
            await asyncio.to_thread(
                ordering.cancel, self.uow, request.order_id, request.reason, bool(by), by
            )
        )

    async def WatchOrder(
        self, request: orders_pb2.WatchOrderRequest, context: Context
    ) -> AsyncIterator[orders_pb2.Order]:
        # The feed reads the order once for every watcher of it, first its current state,
        # then after each change. Each message is the whole order: changes that land together
        # arrive as one message, and its history lists every status.
        order_id = validate_uuid(request.order_id, "order_id")
        with self.feed.watch(order_id) as updates:
            order = (await updates.next()).get(order_id)
            if order is None:
                raise NotFound("order", order_id)
            last = self._message(order)
            yield last
            while order.status not in TERMINAL:
                order = (await updates.next()).get(order_id) or order
                current = self._message(order)
                if current is not last and current != last:
                    last = current
                    yield current

    def _message(self, order: Order) -> orders_pb2.Order:
        """The message of an order the live feed offered, shared by all its watchers (never
        changed once made)."""
        message = self._watched.get(order)
        if message is None:
            message = self._watched[order] = mapping.order(order)
        return message

    async def WatchOrderBoard(
        self, request: orders_pb2.WatchOrderBoardRequest, context: Context
    ) -> AsyncIterator[orders_pb2.OrderBoardEvent]:
        async with self.feed.watch_members() as (queue, updates):
            shown = {o.number: o.status for o in queue}

            def news(changed: list[Order]) -> list[Order]:
                """What the board shows: a payment noted on a queued order is no news."""
                fresh = [o for o in changed if shown.get(o.number) is not o.status]
                for o in fresh:
                    shown[o.number] = o.status
                    if o.status in TERMINAL:
                        del shown[o.number]
                return fresh

            yield orders_pb2.OrderBoardEvent(
                snapshot=True,
                entries=[mapping.board_entry(o) for o in sorted(queue, key=kitchen_order)],
                time=timestamp(utcnow()),
            )
            async for changed in _changes(updates, self.heartbeat, news):
                yield orders_pb2.OrderBoardEvent(
                    entries=[mapping.board_entry(o) for o in changed], time=timestamp(utcnow())
                )

    async def GetOrderTimeline(
        self, request: orders_pb2.GetOrderTimelineRequest, context: Context
    ) -> orders_pb2.OrderTimeline:
        entries = await asyncio.to_thread(ordering.order_timeline, self.uow, request.order_id)
        return mapping.timeline(request.order_id, entries)


class KitchenApi(orders_pb2_grpc.KitchenServiceServicer):
    def __init__(
        self, uow: UowFactory, feed: OrderFeed, heartbeat: float = HEARTBEAT_SECONDS
    ) -> None:
        self.uow = uow
        self.feed = feed
        self.heartbeat = heartbeat

    async def ListKitchenQueue(
        self, request: orders_pb2.ListKitchenQueueRequest, context: Context
    ) -> orders_pb2.ListKitchenQueueResponse:
        queue = await asyncio.to_thread(ordering.kitchen_queue, self.uow, request.page_size)
        return _kitchen_message(orders_pb2.ListKitchenQueueResponse, queue)

    async def WatchKitchenQueue(
        self, request: orders_pb2.WatchKitchenQueueRequest, context: Context
    ) -> AsyncIterator[orders_pb2.KitchenQueueEvent]:
        async with self.feed.watch_members() as (queue, updates):
            yield _kitchen_message(
                orders_pb2.KitchenQueueEvent, sorted(queue, key=kitchen_order), snapshot=True
            )
            async for changed in _changes(updates, self.heartbeat):
                yield _kitchen_message(orders_pb2.KitchenQueueEvent, changed)

    async def UpdateOrderStatus(
        self, request: orders_pb2.UpdateOrderStatusRequest, context: Context
    ) -> orders_pb2.Order:
        status = enum_from_proto(
            orders_pb2.OrderStatus, request.status, OrderStatus, "status", True
        )
        return mapping.order(
            await asyncio.to_thread(
                ordering.advance, self.uow, request.order_id, status, acting_subject()
            )
        )


async def _changes(
    updates: Subscription[Order],
    heartbeat: float,
    news: Callable[[list[Order]], list[Order]] = list,
) -> AsyncIterator[list[Order]]:
    """The orders offered to a subscription that are `news`, as they come; an empty list (a
    heartbeat) after `heartbeat` seconds without any."""
    sent = time.monotonic()
    while True:
        wait = max(0.0, sent + heartbeat - time.monotonic())
        changed = news([o for o in (await updates.next(wait)).values() if o is not None])
        if changed or time.monotonic() >= sent + heartbeat:
            sent = time.monotonic()
            yield changed


def _kitchen_message(cls: type[K], orders: list[Order], **fields: Any) -> K:
    now = utcnow()
    return cls(
        orders=[mapping.order(o) for o in orders],
        waits=mapping.kitchen_waits(orders, now),
        time=timestamp(now),
        **fields,
    )
