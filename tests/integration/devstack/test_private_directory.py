"""As root, from inside a private (0700) directory — a root user's home on Debian, in CI and
dev containers — the embedded PostgreSQL runs as an unprivileged user that cannot enter that
directory. It must still start, keep `make run`'s data across restarts, be forgotten by
`make clean-data`, and leave the private directory as private as it found it."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import httpx
import psycopg2
import pytest

from devstack import locations
from devstack.servers import Postgres, free_port
from tests.integration.chassis.test_startup import assert_one_line
from tests.support.devstack import devstack_env
from tests.support.stack import REPO
from tests.support.waiting import wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="only as root does PostgreSQL run as another user (as an ordinary user it runs as "
    "that user, who can reach their own directories)",
)


@pytest.fixture
def private(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    home.chmod(0o700)  # whatever the umask
    return home


def _modes(path: Path) -> dict[Path, int]:
    return {p: p.stat().st_mode for p in [path, *path.parents]}


def _owner(pid: int) -> str:
    uid = int(
        next(
            line.split()[1]
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("Uid:")
        )
    )
    return pwd.getpwuid(uid).pw_name


def test_postgres_starts_from_inside_a_private_directory_and_keeps_its_data(private):
    requested = private / "a checkout" / ".data" / "postgres"
    before = _modes(private)
    server = Postgres(requested, free_port(), fast=True)
    try:
        server.start()
        assert server.proc is not None
        assert _owner(server.proc.pid) == locations.PG_USER
        assert not server.data_dir.is_relative_to(private), server.data_dir
        with psycopg2.connect(server.dsn()) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
        server.stop()

        again = Postgres(requested, free_port(), fast=True)
        assert again.data_dir == server.data_dir, "the same directory asked for, the same data"
        again.start()
        with psycopg2.connect(again.dsn()) as conn, conn.cursor() as cur:
            cur.execute("SELECT n FROM kept")
            assert cur.fetchall() == [(42,)]
        stat = server.data_dir.stat()
        assert pwd.getpwuid(stat.st_uid).pw_name == locations.PG_USER
        assert stat.st_mode & 0o777 == 0o700
        assert server.log_path.is_relative_to(private) and server.log_path.stat().st_size > 0
    finally:
        server.remove()
    assert not server.data_dir.exists()
    assert _modes(private) == before, "no directory of the user's was opened up"


def test_a_fresh_home_gets_a_root_owned_copy_of_the_install(private, monkeypatch):
    # What the first start on a new machine does (the suite's other tests reuse the copy).
    home = Path(tempfile.mkdtemp(prefix="fresh-", dir=locations.ROOT_HOME))
    try:
        home.chmod(0o755)
        monkeypatch.setattr(locations, "ROOT_HOME", home)
        server = Postgres(private / ".data" / "postgres", free_port(), fast=True)
        server.start()
        try:
            assert server.proc is not None
            binary = Path(os.readlink(f"/proc/{server.proc.pid}/exe"))
            (copy,) = home.glob("postgres-*")
            assert binary.is_relative_to(copy), binary
            assert server.data_dir.parent == home / "clusters"
            for path in [copy, *copy.rglob("*")]:
                stat = path.lstat()
                assert stat.st_uid == 0, f"{path} is not root's"
                if not path.is_symlink():
                    assert stat.st_mode & 0o777 in (0o755, 0o644), f"{path}: {stat.st_mode:o}"
            assert not list(home.glob(".postgres-*")), "no staging directory left behind"
        finally:
            server.remove()
        assert not server.data_dir.exists()
    finally:
        shutil.rmtree(home)


def test_make_run_and_clean_data_from_inside_a_private_directory(private):
    data = private / "comanda" / ".data"
    env = devstack_env(data)
    run = subprocess.Popen(
        [sys.executable, "-m", "devstack", "run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    assert run.stdout is not None
    reader = threading.Thread(target=lambda: output.extend(run.stdout or ()), daemon=True)
    reader.start()
    try:
        wait_for(
            lambda: run.poll() is not None or any("Comanda is running" in x for x in output),
            timeout=120,
            what="make run to be ready",
        )
        assert run.poll() is None, "".join(output)
        products = httpx.get(f"http://127.0.0.1:{env['ORDERS_HTTP_PORT']}/v1/products")
        assert products.status_code == 200 and products.json()["products"], products.text
    finally:
        run.send_signal(signal.SIGINT)
        code = run.wait(60)
        reader.join(10)
    assert code == 0, "".join(output)
    cluster = locations.relocated(data / "postgres")
    assert cluster.is_dir(), "".join(output)
    assert f"data in {cluster}" in "".join(output)

    clean = subprocess.run(
        [sys.executable, "-m", "devstack", "clean-data"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert clean.returncode == 0, clean.stderr
    assert not cluster.exists() and not data.exists(), clean.stdout
    assert private.stat().st_mode & 0o777 == 0o700


def test_a_postgres_home_the_server_user_cannot_reach_is_one_line(private):
    result = subprocess.run(
        [sys.executable, "-m", "devstack", "run"],
        cwd=REPO,
        env=devstack_env(private / ".data", DEVSTACK_ROOT_HOME=str(private / "pg")),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert_one_line(result, 1, "make run:", locations.PG_USER, "DEVSTACK_ROOT_HOME")
