"""The restaurant's screens in a real browser (headless Chromium, Playwright), against the real
gateway and services (the HTTP API as deployed, in an orders server; the gateway's own process
where a test restarts it or counts its CPU): a customer orders and pays at the kiosk, the
kitchen display advances the order, and the monitor shows its number move to "Pronto"; the
screens come back on their own after the gateway restarts; and a paid order reaches the
monitor and 1,000 other watchers of the board at a CPU cost per watcher that keeps it well
within a second on this machine (the wall-clock figure is printed here and measured by `make
bench`, not asserted: a timed assertion fails whenever the machine is oversubscribed, which
says nothing about the code).
Screenshots of each screen are saved (see tests/support/browser.py for where).

Without Chromium the whole module is skipped with one line saying how to install it; in CI
(`CI=true`, where .ci/run installs it) a missing Chromium is an error.
"""

from __future__ import annotations

import asyncio
import io
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import browser as chromium

if chromium.chromium() is None:
    if os.environ.get("CI"):
        pytest.fail(chromium.INSTALL_HINT, pytrace=False)
    pytest.skip(chromium.INSTALL_HINT, allow_module_level=True)

import zxingcpp
from PIL import Image
from playwright.sync_api import BrowserContext, Page, ViewportSize, expect

from chassis import tokens
from payment.domain import pix
from tests.support.cpf import new_cpf
from tests.support.saga import RECEIVED, checkout, pay, wait_order
from tests.support.stack import JWT_SECRET, STAFF_TOKEN, Stack
from tests.support.waiting import wait_for

AUTH = {"authorization": f"Bearer {STAFF_TOKEN}"}
X_BURGER, BATATA, REFRI = (f"6b1d4a10-0000-4000-8000-00000000000{i}" for i in (1, 4, 6))
TV: ViewportSize = {"width": 1920, "height": 1080}
expect.set_options(timeout=15_000)


# -- fixtures and helpers ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def screens(stack: Stack) -> Stack:
    """The module's stack, with the sample menu of `make run` (the kiosk shows it)."""
    seeded = subprocess.run(
        [sys.executable, "-m", "orders", "seed-menu"],
        env=stack.orders[0].env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert seeded.returncode == 0, seeded.stderr
    return stack


@pytest.fixture(scope="module")
def context() -> Iterator[BrowserContext]:
    with chromium.browser() as context:
        yield context


def open_page(
    context: BrowserContext, stack: Stack, path: str, size: ViewportSize, base: str = ""
) -> Page:
    """The page from `base`; by default from the HTTP API as deployed (an orders server)."""
    page = context.new_page()
    page.set_viewport_size(size)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{base or stack.http_url()}{path}")
    page.errors = errors  # type: ignore[attr-defined]
    return page


def assert_no_script_errors(*pages: Page) -> None:
    for page in pages:
        assert not page.errors, f"{page.url}: {page.errors}"  # type: ignore[attr-defined]


def live(page: Page) -> None:
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(chromium.screenshots_dir() / f"{name}.png"))


def paid_order(http: httpx.Client, items: list[dict[str, Any]]) -> dict[str, Any]:
    """An order checked out and paid over the API (the other customers of the day)."""
    order = http.post(
        "/v1/orders", json={"items": items}, headers={"Idempotency-Key": uuid.uuid4().hex}
    ).json()
    payment = wait_for(
        lambda: _json_if_ok(http.get(f"/v1/orders/{order['id']}/payment")), 15, "a payment"
    )
    assert http.post(f"/v1/fake-checkout/{payment['id']}:pay", json={}).status_code == 200
    return dict(order)


def _json_if_ok(response: httpx.Response) -> Any:
    return response.json() if response.status_code == 200 else None


def advance(http: httpx.Client, order_id: str, status: str) -> None:
    def attempt() -> bool:
        response = http.post(
            f"/v1/kitchen/orders/{order_id}:advance", headers=AUTH, json={"status": status}
        )
        return response.status_code == 200

    wait_for(attempt, 15, f"order {order_id} to move to {status}")


# Labels, names and contrast, checked in the page (WCAG 2 AA).
ACCESSIBILITY = "\n".join(
    line
    for line in (Path(__file__).parent / "accessibility.js").read_text().splitlines()
    if not line.startswith("//")
)


def assert_accessible(page: Page) -> None:
    problems = page.evaluate(ACCESSIBILITY)
    assert not problems, f"{page.url}: {problems}"


def lane(page: Page, status: str, number: str) -> Any:
    return page.locator(f"#ORDER_STATUS_{status} li[data-number='{number}']")


# -- the journey ---------------------------------------------------------------------------------
def test_a_customer_orders_and_pays_at_the_kiosk_and_the_monitor_shows_it_ready(
    screens: Stack, context: BrowserContext
) -> None:
    stack = screens
    http = httpx.Client(base_url=stack.http_url(), timeout=15)
    # Other customers of the day, so the screens are not empty.
    others = [
        paid_order(http, [{"productId": X_BURGER, "quantity": 1}]),
        paid_order(http, [{"productId": REFRI, "quantity": 2, "notes": "sem gelo"}]),
        paid_order(http, [{"productId": BATATA, "quantity": 1}]),
    ]
    advance(http, others[0]["id"], "ORDER_STATUS_IN_PREPARATION")

    monitor = open_page(context, stack, "/monitor", TV)
    kitchen = open_page(context, stack, "/kitchen", {"width": 1440, "height": 900})
    kiosk = open_page(context, stack, "/kiosk", {"width": 1280, "height": 900})
    live(monitor)
    kitchen.get_by_label("Token da equipe").fill(STAFF_TOKEN)
    kitchen.get_by_role("button", name="Entrar").click()
    live(kitchen)

    # The menu, by category, with prices in reais; a cart with quantities and notes.
    kiosk.get_by_role("button", name="Adicionar X-Burger").click()
    kiosk.get_by_role("button", name="Mais um X-Burger").click()
    kiosk.get_by_label("Observações (X-Burger)").fill("sem cebola")
    kiosk.get_by_role("button", name="Acompanhamentos").click()
    expect(kiosk.locator(".product", has_text="Batata frita")).to_contain_text("R$ 12,90")
    kiosk.get_by_role("button", name="Adicionar Batata frita").click()
    expect(kiosk.locator("#cart-total")).to_have_text("R$ 64,70")  # 2 x 25,90 + 12,90
    assert_accessible(kiosk)
    shot(kiosk, "kiosk")

    # Identification by CPF: unknown, so the customer registers.
    kiosk.get_by_role("button", name="Continuar").click()
    kiosk.get_by_label("CPF").fill(new_cpf())
    kiosk.get_by_role("button", name="Identificar").click()
    kiosk.get_by_label("Nome").fill("Marina Teixeira")
    kiosk.get_by_label("E-mail").fill("marina@example.com")
    kiosk.get_by_role("button", name="Cadastrar").click()
    expect(kiosk.locator("#review-customer")).to_contain_text("Marina Teixeira")
    expect(kiosk.locator("#review-total")).to_have_text("R$ 64,70")

    # Checkout, and the Pix QR code: an image that reads as the copia e cola beside it.
    kiosk.get_by_role("button", name="Pagar com Pix").click()
    qr = kiosk.locator("#qr")
    expect(qr).to_be_visible()
    wait_for(lambda: qr.evaluate("img => img.complete && img.naturalWidth > 0"), 15, "the QR")
    copia_e_cola = kiosk.get_by_label("Pix copia e cola").input_value()
    read = [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(qr.screenshot())))]
    assert read == [copia_e_cola] and pix.is_valid(copia_e_cola), read
    number = kiosk.locator("#pay-number").inner_text()
    expect(kiosk.locator("#dev")).to_be_visible()  # development: the fake checkout is offered
    assert_accessible(kiosk)
    shot(kiosk, "kiosk-pix")

    # The customer's bank pays; the kiosk says so and the number is on the monitor and in the
    # kitchen with its items, notes and waiting time.
    kiosk.get_by_role("button", name="Simular pagamento").click()
    expect(kiosk.locator("#done-number")).to_have_text(number)
    expect(lane(monitor, "RECEIVED", number)).to_be_visible()
    ticket = kitchen.locator("article.ticket", has_text=f"Pedido {number}")
    expect(ticket).to_contain_text("2\u00d7 X-Burger")
    expect(ticket).to_contain_text("Obs.: sem cebola")
    expect(ticket).to_contain_text("1\u00d7 Batata frita")
    expect(ticket.locator(".waiting")).to_contain_text("Espera:")

    # The kitchen moves it; the monitor follows, and calls it when it is ready.
    kitchen.get_by_role("button", name=f"Iniciar preparo: pedido {number}").click()
    expect(lane(monitor, "IN_PREPARATION", number)).to_be_visible()
    expect(lane(monitor, "RECEIVED", number)).to_have_count(0)
    kitchen.get_by_role("button", name=f"Marcar como pronto: pedido {number}").click()
    expect(lane(monitor, "READY", number)).to_have_class("number fresh")
    expect(monitor.locator("#announce")).to_contain_text(f"Pedido {number} pronto")
    expect(kiosk.locator("#done-status")).to_contain_text(f"Seu pedido {number} está pronto")
    kitchen.locator("#toast").evaluate("node => node.textContent = ''")
    for page in (monitor, kitchen, kiosk):
        assert_accessible(page)
    shot(monitor, "monitor")
    shot(kitchen, "kitchen")
    shot(kiosk, "kiosk-paid")

    # Picked up: the number leaves the monitor and the kitchen.
    kitchen.get_by_role("button", name=f"Entregue ao cliente: pedido {number}").click()
    expect(lane(monitor, "READY", number)).to_have_count(0)
    expect(ticket).to_have_count(0)
    monitor_text = monitor.locator("body").inner_text()
    assert "Marina" not in monitor_text and "X-Burger" not in monitor_text, "numbers only"
    assert_no_script_errors(monitor, kitchen, kiosk)
    for page in (monitor, kitchen, kiosk):
        page.close()
    http.close()


def test_the_monitor_fits_a_tv_with_a_busy_kitchen(screens: Stack, context: BrowserContext) -> None:
    with (
        httpx.Client(base_url=screens.http_url(), timeout=15) as http,
        ThreadPoolExecutor(4) as pool,
    ):
        paid = list(
            pool.map(
                lambda _: paid_order(http, [{"productId": X_BURGER, "quantity": 1}]), range(40)
            )
        )
    monitor = open_page(context, screens, "/monitor", TV)
    live(monitor)
    numbers = {str(o["number"]) for o in paid}
    wait_for(
        lambda: numbers <= set(monitor.evaluate(SHOWN_AND_HIDDEN)["received"]),
        15,
        "the 40 orders on the monitor",
    )

    seen = monitor.evaluate(SHOWN_AND_HIDDEN)
    assert seen["scroll"] == [1920, 1080], f"the page scrolls: {seen['scroll']}"
    hidden = len(seen["received"]) - seen["shown"]
    assert seen["more"] == f"+{hidden}" and hidden > 0, f"what does not fit is counted: {seen}"
    assert seen["shown"] >= 12 and seen["smallest"] >= 48, (
        f"{seen['shown']} numbers shown, the smallest {seen['smallest']}px: too few or too small"
    )
    shot(monitor, "monitor-busy")
    monitor.close()


# What the monitor's Recebido column holds (every number it was given, shown or not), its
# "+N", the smallest shown number's font size, and the page's scroll size.
SHOWN_AND_HIDDEN = """() => {
    const lane = document.getElementById("ORDER_STATUS_RECEIVED");
    const numbers = [...lane.querySelectorAll(".number")];
    const shown = numbers.filter((li) => !li.hidden);
    return {
        received: numbers.map((li) => li.dataset.number),
        shown: shown.length,
        more: lane.querySelector(".more")?.textContent || "",
        smallest: Math.min(...shown.map((li) => parseFloat(getComputedStyle(li).fontSize))),
        scroll: [document.documentElement.scrollWidth, document.documentElement.scrollHeight],
    };
}"""


def test_the_kiosk_says_when_the_bank_declines(screens: Stack, context: BrowserContext) -> None:
    kiosk = open_page(context, screens, "/kiosk", {"width": 800, "height": 1000})
    kiosk.get_by_role("button", name="Bebidas").click()
    kiosk.get_by_role("button", name="Adicionar Refrigerante").click()
    kiosk.get_by_role("button", name="Continuar").click()
    kiosk.get_by_role("button", name="Continuar sem CPF").click()
    kiosk.get_by_role("button", name="Pagar com Pix").click()
    kiosk.get_by_role("button", name="Simular recusa").click()

    expect(kiosk.locator("#failed-reason")).to_contain_text("recusado pelo banco")
    kiosk.get_by_role("button", name="Tentar de novo").click()
    expect(kiosk.locator("#cart-lines")).to_contain_text("Refrigerante")  # the cart is kept
    assert_no_script_errors(kiosk)
    kiosk.close()


@pytest.mark.parametrize(
    "token",
    ["not-a-token", tokens.sign("bia", ["manager"], secret=JWT_SECRET, ttl=600)],
    ids=["forged", "without the kitchen role"],
)
def test_a_refused_staff_token_is_asked_again(
    screens: Stack, context: BrowserContext, token: str
) -> None:
    kitchen = open_page(context, screens, "/kitchen", {"width": 1024, "height": 768})
    kitchen.evaluate("localStorage.clear()")
    kitchen.reload()
    kitchen.get_by_label("Token da equipe").fill(token)
    kitchen.get_by_role("button", name="Entrar").click()

    expect(kitchen.locator("#login-error")).to_contain_text("Token inválido ou sem permissão")
    expect(kitchen.get_by_label("Token da equipe")).to_be_focused()
    assert kitchen.evaluate("localStorage.getItem('comanda.kitchen.token')") is None
    kitchen.close()


def test_the_screens_resume_with_a_snapshot_after_the_gateway_restarts(
    screens: Stack, context: BrowserContext
) -> None:
    """Runs last in the module: it restarts the module's gateway process (the screens are
    served by it here, so that the services stay up). An order is paid while the gateway is
    down: the screens learn of it from the snapshot their reconnection starts with."""
    stack = screens
    monitor = open_page(context, stack, "/monitor", TV, base=stack.gateway_url)
    live(monitor)
    # A third-party screen on the standard EventSource, which reconnects on its own.
    monitor.evaluate(
        """() => {
            window.snapshots = [];
            const source = new EventSource('/v1/order-board:watch');
            window.source = source;
            source.onmessage = (event) => {
                const message = JSON.parse(event.data);
                if (message.snapshot) window.snapshots.push(message.entries.map((e) => e.number));
            };
        }"""
    )
    wait_for(lambda: monitor.evaluate("window.snapshots.length") == 1, 15, "an SSE snapshot")
    assert stack.gateway is not None
    stack.gateway.stop()
    expect(monitor.locator("#connection")).to_have_attribute("data-state", "retrying")
    order = checkout(stack, X_BURGER)  # straight to the services: the gateway is down
    pay(stack, order.id)
    wait_order(stack, order.id, RECEIVED)
    stack.gateway.start()
    number = str(order.number)

    live(monitor)
    expect(lane(monitor, "RECEIVED", number)).to_have_count(1)  # shown, or counted in "+N"
    wait_for(
        lambda: monitor.evaluate("window.snapshots.length >= 2 && window.snapshots[1]"),
        30,
        "EventSource to reconnect by itself",
    )
    state = monitor.evaluate("[window.source.readyState, window.snapshots]")
    assert number in state[1][1], f"the reconnection's snapshot lacks {number}: {state}"
    assert_no_script_errors(monitor)
    monitor.close()


# -- 1,000 other watchers ------------------------------------------------------------------------
class BoardWatchers:
    """`count` clients of GET /v1/order-board:watch on their own event loop (plain sockets, so
    the client costs little), each noting when the given order number arrives as RECEIVED."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.connected = 0
        self.marker = b""
        self.arrivals: list[float] = []
        self.failures: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.stopping = asyncio.Event()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._run(),))
        self.thread.start()

    async def _run(self) -> None:
        self.stopping = asyncio.Event()
        gate = asyncio.Semaphore(50)  # connect 50 at a time
        tasks = [asyncio.create_task(self._watch(gate)) for _ in range(self.count)]
        await self.stopping.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch(self, gate: asyncio.Semaphore) -> None:
        try:
            async with gate:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(
                    b"GET /v1/order-board:watch HTTP/1.1\r\nHost: board\r\n"
                    b"Accept: application/x-ndjson\r\n\r\n"
                )
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    self.failures.append(head.decode(errors="replace").splitlines()[0])
                    return
                self.connected += 1
            tail = b""
            heard = False  # each watcher's arrival counts once (a later chunk may repeat it)
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    self.failures.append("the stream ended")
                    return
                seen, tail = tail + chunk, (tail + chunk)[-200:]
                if not heard and self.marker and self.marker in seen:
                    heard = True
                    self.arrivals.append(time.time())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failures.append(repr(exc))

    def expect(self, number: int) -> None:
        self.marker = f'"number":"{number}","status":"ORDER_STATUS_RECEIVED"'.encode()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(30)


def cpu_seconds(process: Any) -> float:
    """User and system CPU time a service process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{process.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The 1,000 watchers all connect from this machine's one address: let the gateway take them
# (in a restaurant they come from as many screens and phones).
MANY = {"GATEWAY_MAX_STREAMS_PER_CLIENT": "1100", "GATEWAY_MAX_STREAMS": "2000"}
# CPU one process may spend telling 1,000 watchers of one change (and the saga step before it).
CPU_PER_1000_WATCHERS = 0.5


@pytest.mark.parametrize("own_stack", [{"gateway": True, "env": MANY}], indirect=True)
def test_a_paid_order_reaches_the_monitor_and_1000_other_watchers_cheaply(
    own_stack: Stack, context: BrowserContext, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = own_stack
    assert stack.gateway is not None
    watchers = BoardWatchers(stack.gateway.port, 1000)
    try:
        wait_for(
            lambda: watchers.connected + len(watchers.failures) == 1000,
            120,
            "1,000 watchers connected",
        )
        assert not watchers.failures, watchers.failures[:5]
        monitor = open_page(context, stack, "/monitor", TV, base=stack.gateway_url)
        live(monitor)
        http = httpx.Client(base_url=stack.gateway_url, timeout=15)
        product = http.post(
            "/v1/products",
            headers=AUTH,
            json={"name": "X-Tudo", "category": "CATEGORY_BURGER", "priceCentavos": "3490"},
        ).json()
        order = http.post(
            "/v1/orders",
            json={"items": [{"productId": product["id"], "quantity": 1}]},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        ).json()
        number = str(order["number"])
        payment = wait_for(
            lambda: _json_if_ok(http.get(f"/v1/orders/{order['id']}/payment")), 15, "a payment"
        )
        monitor.evaluate(
            """(number) => new Promise((ready) => {
                const lane = document.getElementById('ORDER_STATUS_RECEIVED');
                new MutationObserver((_, observer) => {
                    if (lane.querySelector(`li[data-number="${number}"]`)) {
                        window.shownAt = Date.now();
                        observer.disconnect();
                    }
                }).observe(lane, { childList: true });
                ready();
            })""",
            number,
        )
        watchers.expect(int(number))

        processes = {"gateway": stack.gateway, "orders": stack.orders[0]}
        cpu_before = {name: cpu_seconds(p) for name, p in processes.items()}
        paid_at = time.time()
        assert http.post(f"/v1/fake-checkout/{payment['id']}:pay", json={}).status_code == 200
        shown_at = wait_for(lambda: monitor.evaluate("window.shownAt"), 15, "the monitor") / 1000
        wait_for(lambda: len(watchers.arrivals) == 1000, 30, "all 1,000 watchers to hear of it")
        cpu = {name: cpu_seconds(p) - cpu_before[name] for name, p in processes.items()}
        paid = http.get(f"/v1/orders/{order['id']}").json()
        received_at = datetime.fromisoformat(paid["receiveTime"].replace("Z", "+00:00"))
        http.close()
        monitor.close()
    finally:
        watchers.stop()

    latency = shown_at - paid_at
    spread = sorted(t - paid_at for t in watchers.arrivals)
    saga = received_at.timestamp() - paid_at  # payment call to the order's RECEIVED commit
    figures = (
        f"monitor showed the paid order {latency * 1000:.0f} ms after the payment "
        f"(the saga {saga * 1000:.0f} ms, then the fan-out), with 1,000 other watchers "
        f"(they heard of it: p50 {statistics.median(spread) * 1000:.0f} ms, "
        f"p99 {spread[int(len(spread) * 0.99) - 1] * 1000:.0f} ms, "
        f"last {spread[-1] * 1000:.0f} ms); CPU for it: gateway {cpu['gateway'] * 1000:.0f} ms, "
        f"orders {cpu['orders'] * 1000:.0f} ms"
    )
    with capsys.disabled():
        print(f"\n[screens] {figures}")
        print(f"[screens] screenshots in {chromium.screenshots_dir()}")
    # What makes the second hold is the cost of the fan-out, which does not depend on how busy
    # the machine is: one read of the order shared by every watcher and ~0.1 ms of CPU per
    # watcher in each process (measured 80-130 ms per 1,000). A read or a query per watcher
    # would cost several times the bound below.
    for name, seconds in cpu.items():
        assert seconds <= CPU_PER_1000_WATCHERS, f"{name} spent {seconds * 1000:.0f} ms: {figures}"
