"""What each process of the system under test used: CPU time (user + system, from
/proc/<pid>/stat) and memory (from /proc/<pid>/status), grouped by role: every service process,
PostgreSQL's server processes, NATS, the gateway and the load generator itself."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from tests.support.stack import Stack

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def _children_of(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                if int(stat.read().rsplit(")", 1)[1].split()[1]) == parent:
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


def roles(stack: Stack) -> dict[str, list[int]]:
    """Role -> pids, for every process of the stack (PostgreSQL: the postmaster and all its
    backends, looked up anew each time since backends come and go)."""
    found: dict[str, list[int]] = {}
    for proc in stack.processes():
        if proc.proc is not None:
            found.setdefault(proc.role, []).append(proc.proc.pid)
    if stack.pg.embedded is not None:
        pid_file = stack.pg.embedded.data_dir / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0])
        found["PostgreSQL"] = [postmaster, *_children_of(postmaster)]
    if stack.nats.embedded is not None and stack.nats.embedded.proc is not None:
        found["NATS"] = [stack.nats.embedded.proc.pid]
    found["load generator"] = [os.getpid()]
    return found


@dataclass
class CpuSnapshot:
    """CPU seconds per role at one moment. PostgreSQL's backends that ended in between are
    lost from the difference, so the benchmark keeps its connections (pools) open."""

    seconds: dict[str, float]
    per_pid: dict[int, float]

    @classmethod
    def take(cls, stack: Stack) -> CpuSnapshot:
        per_pid: dict[int, float] = {}
        seconds: dict[str, float] = {}
        for role, pids in roles(stack).items():
            total = 0.0
            for pid in pids:
                per_pid[pid] = cpu_seconds(pid)
                total += per_pid[pid]
            seconds[role] = total
        return cls(seconds, per_pid)

    def since(self, earlier: CpuSnapshot, stack: Stack) -> dict[str, float]:
        """CPU seconds per role used between `earlier` and this snapshot (a process born in
        between counts from zero)."""
        used: dict[str, float] = {}
        for role, pids in roles(stack).items():
            used[role] = sum(
                self.per_pid.get(pid, 0.0) - earlier.per_pid.get(pid, 0.0)
                for pid in pids
                if pid in self.per_pid
            )
        return used


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident set size in MB."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for row in status:
            if row.startswith(("VmRSS", "VmHWM")):
                key, value = row.split(":", 1)
                values[key] = int(value.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def memory(stack: Stack) -> Mapping[str, tuple[float, float]]:
    """Label -> (RSS, peak RSS) in MB of each Python process of the stack."""
    result = {}
    counts: dict[str, int] = {}
    for proc in stack.processes():
        if proc.proc is None:
            continue
        counts[proc.role] = counts.get(proc.role, 0) + 1
        result[f"{proc.role} #{counts[proc.role]}"] = rss_mb(proc.proc.pid)
    return result


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)
