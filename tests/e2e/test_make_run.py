"""`make run` (python -m devstack run) starts everything and prints where the screens are: the
kiosk, the monitor and the kitchen display, each served by the HTTP API (the gateway in the
orders server)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request

from devstack.locations import forget
from tests.support.devstack import devstack_env
from tests.support.servers import make_tmpdir
from tests.support.stack import REPO
from tests.support.waiting import wait_for


def test_make_run_prints_the_three_screens_and_they_answer() -> None:
    data = make_tmpdir("comanda-make-run-")
    env = devstack_env(data)
    run = subprocess.Popen(
        [sys.executable, "-m", "devstack", "run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    output = run.stdout
    assert output is not None
    threading.Thread(target=lambda: lines.extend(iter(output.readline, "")), daemon=True).start()
    try:
        wait_for(lambda: any("Press Ctrl-C" in line for line in lines), 120, "make run ready")
        banner = "".join(lines)
        urls = {
            name: re.search(rf"(http://localhost:\d+/{name})\s", banner)
            for name in ("kiosk", "monitor", "kitchen")
        }
        assert all(urls.values()), f"expected the three screens' URLs in:\n{banner}"
        for name, match in urls.items():
            assert match is not None
            with urllib.request.urlopen(match.group(1), timeout=10) as response:
                assert response.status == 200 and response.headers["content-type"].startswith(
                    "text/html"
                ), f"{name}: {response.status} {response.headers['content-type']}"
                assert b'lang="pt-BR"' in response.read()
        assert "staff token: make token ROLE=kitchen" in banner
    finally:
        run.send_signal(signal.SIGINT)
        try:
            run.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        forget(data / "postgres")  # as root it lives outside `data` (devstack.locations)
        shutil.rmtree(data, ignore_errors=True)
    assert run.returncode == 0, "".join(lines)[-3000:]
