"""`make run`: the whole system on this machine.

Starts PostgreSQL and NATS JetStream (embedded, data under `.data/`, unless
ORDERS_DATABASE_URL/PAYMENT_DATABASE_URL and NATS_URL are given), migrates both databases,
loads the sample menu, starts each service's server and worker (`python -m orders`,
`python -m orders worker`, and the same for payment; the orders server also serves the HTTP
API, the gateway in-process), prints where each listens, and on Ctrl-C stops everything in
order.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable

import psycopg2

from devstack import locations
from devstack.locations import DATA, REPO
from devstack.servers import PG_SOCKET, Nats, Postgres, ServerError, grpc_serving, port_is_free


class Child:
    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            args,
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in iter(self.proc.stdout.readline, b""):
            sys.stdout.write(f"{self.name:8}| {line.decode(errors='replace')}")
            sys.stdout.flush()

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _http_ready(port: int) -> bool:
    """The HTTP API answers /readyz: it reaches a serving orders and payment (only then can a
    first request right after "Comanda is running" succeed)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _fail(message: str) -> int:
    print(f"make run: {message}", file=sys.stderr)
    return 1


# What listens where: (setting, default port); PostgreSQL and NATS (SERVERS) start only
# when no database or NATS URL is given.
PORTS = {
    "orders": ("ORDERS_GRPC_PORT", "50051"),
    "payment": ("PAYMENT_GRPC_PORT", "50052"),
    # The HTTP API: the gateway inside the orders server (docs/adr/0008).
    "http": ("ORDERS_HTTP_PORT", "8080"),
    "orders metrics": ("ORDERS_METRICS_PORT", "9101"),
    "payment metrics": ("PAYMENT_METRICS_PORT", "9102"),
    # The workers' gRPC health and metrics ports.
    "orders worker": ("DEVSTACK_ORDERS_WORKER_PORT", "50061"),
    "payment worker": ("DEVSTACK_PAYMENT_WORKER_PORT", "50062"),
    "orders worker metrics": ("DEVSTACK_ORDERS_WORKER_METRICS_PORT", "9103"),
    "payment worker metrics": ("DEVSTACK_PAYMENT_WORKER_METRICS_PORT", "9104"),
}
SERVERS = {
    "postgres": ("DEVSTACK_POSTGRES_PORT", "55432"),
    "nats": ("DEVSTACK_NATS_PORT", "4222"),
}


def main() -> int:
    env = dict(os.environ)
    # Development: the development secrets and the fake checkout (production refuses both).
    env.setdefault("COMANDA_ENV", "development")
    env.setdefault("PAYMENT_FAKE_CHECKOUT", "true")
    env.setdefault("LOG_FORMAT", "text")
    env["PYTHONUNBUFFERED"] = "1"
    ports = {name: int(env.setdefault(var, default)) for name, (var, default) in PORTS.items()}
    for name, port in ports.items():
        if not port_is_free(port, "0.0.0.0"):
            return _fail(
                f"port {port} for {name} is already in use (stop what uses it, "
                f"or set {PORTS[name][0]})"
            )
    # The services listen on IPv4 (0.0.0.0): `localhost` would also give the gateway ::1, a
    # backend address that always refuses.
    env.setdefault("GATEWAY_ORDERS_TARGET", f"127.0.0.1:{ports['orders']}")
    env.setdefault("GATEWAY_PAYMENT_TARGET", f"127.0.0.1:{ports['payment']}")
    # Only the orders server serves HTTP: a worker or the payment server with this port
    # would try to bind it too.
    http_port = env.pop("ORDERS_HTTP_PORT")

    postgres = nats = None
    children: list[Child] = []
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        if not (env.get("ORDERS_DATABASE_URL") and env.get("PAYMENT_DATABASE_URL")):
            port = int(env.get(*SERVERS["postgres"]))
            postgres = Postgres(DATA / "postgres", port)
            where = f"data in {postgres.data_dir}"
            if locations.as_root():
                where += f", run as {locations.PG_USER}: PostgreSQL does not run as root"
            socket = f" and the Unix socket {PG_SOCKET}" if PG_SOCKET else ""
            print(f"starting PostgreSQL on 127.0.0.1:{port}{socket} ({where})", flush=True)
            postgres.start()
            for service in ("orders", "payment"):
                env.setdefault(f"{service.upper()}_DATABASE_URL", postgres.create_database(service))
        if not env.get("NATS_URL"):
            port = int(env.get(*SERVERS["nats"]))
            nats = Nats(DATA / "nats", port)
            print(
                f"starting NATS JetStream on 127.0.0.1:{port} (data in {nats.store_dir})",
                flush=True,
            )
            nats.start()
            env["NATS_URL"] = nats.url
        for command in (["orders", "migrate"], ["payment", "migrate"], ["orders", "seed-menu"]):
            result = subprocess.run([sys.executable, "-m", *command], cwd=REPO, env=env)
            if result.returncode != 0:
                return _fail(f"`python -m {' '.join(command)}` failed")
        for name in ("orders", "payment"):
            server = {**env, "ORDERS_HTTP_PORT": http_port} if name == "orders" else env
            children.append(Child(name, [sys.executable, "-m", name], server))
            worker = {
                **env,
                f"{name.upper()}_GRPC_PORT": str(ports[f"{name} worker"]),
                f"{name.upper()}_METRICS_PORT": str(ports[f"{name} worker metrics"]),
            }
            children.append(Child(f"{name}-w", [sys.executable, "-m", name, "worker"], worker))
        checks: dict[str, Callable[[], bool]] = {
            name: functools.partial(grpc_serving, ports[name])
            for name in ("orders", "payment", "orders worker", "payment worker")
        }
        checks["http"] = lambda: _http_ready(ports["http"])
        deadline = time.monotonic() + 60
        pending = set(checks)
        while pending and not stopping.is_set():
            for child in children:
                if child.proc.poll() is not None:
                    code = child.proc.returncode
                    return _fail(f"{child.name} exited with code {code} (see its lines above)")
            pending = {name for name in pending if not checks[name]()}
            if time.monotonic() > deadline:
                return _fail(f"not ready after 60s: {', '.join(sorted(pending))}")
            time.sleep(0.2)
        if not stopping.is_set():
            orders, payment, http = ports["orders"], ports["payment"], ports["http"]
            print(
                "\nComanda is running:\n"
                f"  orders   gRPC  localhost:{orders}   (its worker: health on "
                f":{ports['orders worker']})\n"
                f"  payment  gRPC  localhost:{payment}   (its worker: health on "
                f":{ports['payment worker']})\n"
                f"  HTTP API       http://localhost:{http}  (/docs, /openapi.json; the "
                "gateway, in the orders server)\n"
                f"  screens        http://localhost:{http}/kiosk      the self-service kiosk\n"
                f"                 http://localhost:{http}/monitor    the order-status monitor\n"
                f"                 http://localhost:{http}/kitchen    the kitchen display "
                "(its staff token: make token ROLE=kitchen)\n"
                f"  metrics        http://localhost:{ports['orders metrics']}/metrics, "
                f":{ports['payment metrics']}/metrics, workers "
                f":{ports['orders worker metrics']}/metrics, "
                f":{ports['payment worker metrics']}/metrics\n"
                f"  try: grpcurl -plaintext localhost:{orders} list\n"
                f"  NATS     {env['NATS_URL']}\n"
                "Press Ctrl-C to stop.\n",
                flush=True,
            )
        while not stopping.is_set():
            for child in children:
                if child.proc.poll() is not None:
                    code = child.proc.returncode
                    print(
                        f"make run: {child.name} exited with code {code}; stopping", file=sys.stderr
                    )
                    stopping.set()
            stopping.wait(0.5)
        return 0
    except ServerError as exc:
        return _fail(str(exc))
    except (OSError, psycopg2.Error) as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0]
        return _fail(f"{type(exc).__name__}: {first_line}")
    finally:
        print("stopping...", flush=True)
        for child in reversed(children):
            child.stop()
        if nats:
            nats.stop()
        if postgres:
            postgres.stop()
        print("stopped.", flush=True)
