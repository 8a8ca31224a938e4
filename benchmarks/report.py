"""The targets of the throughput work, read from a run's figures: a Markdown table (the one
docs/performance.md keeps) with each bar, the measured figure and whether it is met."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Row = tuple[str, str, Callable[[dict[str, Any]], tuple[str, bool | None]]]


def _get(figures: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(figures, dict) or key not in figures:
            return None
        figures = figures[key]
    return figures


TOTAL = "total (without the load generator)"


def by_role(cpu: dict[str, float]) -> str:
    """The system's processes in a CPU figure (ms per item, by role), the largest first."""
    return ", ".join(
        f"{role} {ms:.2f}"
        for role, ms in sorted(cpu.items(), key=lambda kv: -kv[1])
        if role not in (TOTAL, "load generator") and ms >= 0.005
    )


def _cpu(f: dict[str, Any]) -> tuple[str, bool | None]:
    cpu = _get(f, "saga", "cpu_ms_per_saga")
    if not cpu:
        return "—", None
    total = cpu[TOTAL]
    load = cpu.get("load generator", 0)
    return f"{total:.2f} ms ({by_role(cpu)}; load generator {load:.2f})", total <= 6


def _cpu_at_300(f: dict[str, Any]) -> tuple[str, bool | None]:
    """The CPU per saga at the rate the throughput target names, and at the higher rates held."""
    if not _get(f, "saga"):
        return "—", None
    held = [s for s in _get(f, "saga", "ladder") or [] if s.get("cpu_ms_per_saga_system")]
    at = [s["cpu_ms_per_saga_system"] for s in held if s["rate"] == 300]
    if not at:
        return "— (300/s not held)", False
    higher = ", ".join(
        f"{s['cpu_ms_per_saga_system']:.2f} at {s['rate']}/s" for s in held if s["rate"] > 300
    )
    return f"{at[0]:.2f} ms" + (f" ({higher})" if higher else ""), at[0] <= 6


def _checkout_alone(f: dict[str, Any]) -> tuple[str, bool | None]:
    """The share of the CPU per saga at 150/s that the lone checkout takes by itself (the two
    measured one after the other), and what the idle stack costs a saga at that rate."""
    parts = _get(f, "saga", "parts_at_150")
    if not parts:
        return "—", None
    saga, alone = parts["saga"][TOTAL], parts["checkout alone"][TOTAL]
    idle = _get(f, "saga", "idle_ms_per_second")
    idle_text = f"; the idle stack {idle[TOTAL] / 150:.2f} ms a saga" if idle else ""
    return (
        f"{alone:.2f} ms ({by_role(parts['checkout alone'])}) of {saga:.2f} ms a saga measured "
        f"just before; the saga's events {saga - alone:.2f} ms{idle_text}",
        None,
    )


def _saga_rate(f: dict[str, Any]) -> tuple[str, bool | None]:
    best = _get(f, "saga", "highest_rate_held")
    if best is None:
        return "—", None
    at = [s for s in _get(f, "saga", "ladder") or [] if s["rate"] == best and s.get("held")]
    cpu = f" (CPU per saga there {at[0]['cpu_ms_per_saga_system']:.2f} ms)" if at else ""
    return f"{best} /s{cpu}", best >= 300


def _received(f: dict[str, Any]) -> tuple[str, bool | None]:
    at = _get(f, "saga", "at_150")
    if not at:
        return "—", None
    return (
        f"p99 {at['received_p99_ms']:.0f} ms (p50 {at['received_p50_ms']:.0f} ms)",
        at["received_p99_ms"] <= 250 and at["all_received"],
    )


def _checkout(key: str, bar: float | None) -> Callable[[dict[str, Any]], tuple[str, bool | None]]:
    def row(f: dict[str, Any]) -> tuple[str, bool | None]:
        c = _get(f, "checkout", key)
        if not c:
            return "—", None
        text = (
            f"{c['per_second']:.0f} /s, p99 {c['p99_ms']:.0f} ms; all paid "
            f"{c['all_paid_after_s']:.2f} s after the burst"
        )
        if bar is None:
            return text, None
        return text, c["per_second"] >= bar and c["all_paid_after_s"] <= 1.0

    return row


def _get_order(f: dict[str, Any]) -> tuple[str, bool | None]:
    g = _get(f, "get_order")
    if not g:
        return "—", None
    via, direct = g["gateway, 32 in flight"], g["gRPC, 32 in flight"]
    return (
        f"{via['per_second']:.0f} /s (gRPC {direct['per_second']:.0f} /s)",
        via["per_second"] >= 2000,
    )


def _overhead(f: dict[str, Any]) -> tuple[str, bool | None]:
    g = _get(f, "get_order")
    if not g:
        return "—", None
    return (
        f"latency {g['latency_ratio']:.2f}x, throughput {g['throughput_ratio']:.2f}x",
        g["latency_ratio"] <= 1.3 and g["throughput_ratio"] >= 0.8,
    )


def _process(f: dict[str, Any]) -> tuple[str, bool | None]:
    """GetOrder through the gateway's own process (no bar: not what is deployed)."""
    g = _get(f, "get_order")
    if not g or "gateway process, 32 in flight" not in g:
        return "—", None
    return (
        f"{g['gateway process, 32 in flight']['per_second']:.0f} /s; latency "
        f"{g['process_latency_ratio']:.2f}x, throughput {g['process_throughput_ratio']:.2f}x",
        None,
    )


def _lone_calls(f: dict[str, Any]) -> tuple[str, bool | None]:
    """What a GetOrder costs the whole system when calls arrive one by one."""
    sparse = _get(f, "get_order", "gRPC, one by one")
    stream = _get(f, "get_order", "gRPC, 32 in flight")
    if not sparse or not stream:
        return "—", None
    return (
        f"{sparse['system_cpu_ms_per_call']:.2f} ms a call at {sparse['rate']} calls/s, "
        f"{stream['system_cpu_ms_per_call']:.2f} ms at 32 in flight",
        None,
    )


def _floor(f: dict[str, Any]) -> tuple[str, bool | None]:
    via, direct = _get(f, "floor", "gateway, 32 in flight"), _get(f, "floor", "gRPC, 32 in flight")
    if not via or not direct:
        return "—", None
    cpu = via["cpu_us_per_call"]
    return (
        f"{via['per_second']:.0f} /s through the gateway (gateway {cpu['gateway']} µs a call, "
        f"servers {cpu['canned servers']}), {direct['per_second']:.0f} /s over gRPC",
        None,
    )


def _fan_out(f: dict[str, Any]) -> tuple[str, bool | None]:
    w = _get(f, "fan_out")
    if not w:
        return "—", None
    return (
        f"p99 {w['p99_ms']:.0f} ms (p50 {w['p50_ms']:.0f} ms)",
        w["p99_ms"] <= 200 and not w["missing"],
    )


def _reads(f: dict[str, Any]) -> tuple[str, bool | None]:
    r = _get(f, "reads")
    if not r:
        return "—", None
    ratios = {name: v["ratio_100k_1k"] for name, v in r.items()}
    return (
        ", ".join(f"{name} {ratio:.2f}x" for name, ratio in ratios.items()),
        all(ratio <= 1.25 for ratio in ratios.values()),
    )


def _memory(f: dict[str, Any]) -> tuple[str, bool | None]:
    m = _get(f, "memory")
    if not m:
        return "—", None
    peak = max(v["peak_mb"] for v in m.values())
    return f"peak {peak:.0f} MB (largest process)", peak <= 150


ROWS: list[Row] = [
    ("CPU per completed saga, every process, at 150/s", "≤ 6 ms", _cpu),
    ("… the same at 300/s, the saga's target rate", "≤ 6 ms", _cpu_at_300),
    (
        "… of it at 150/s, the lone checkout alone (workers stopped)",
        "—",
        _checkout_alone,
    ),
    ("full saga, open loop, held 60 s", "≥ 300 /s", _saga_rate),
    ("checkout → RECEIVED at 150 orders/s", "p99 ≤ 250 ms", _received),
    (
        "checkout via gateway, 32 in flight",
        "≥ 900 /s, paid ≤ 1 s",
        _checkout("gateway POST /v1/orders, 32 in flight", 900),
    ),
    (
        "checkout via gateway, 8 in flight",
        "—",
        _checkout("gateway POST /v1/orders, 8 in flight", None),
    ),
    (
        "checkout via gateway, 128 in flight",
        "—",
        _checkout("gateway POST /v1/orders, 128 in flight", None),
    ),
    ("checkout over gRPC, 32 in flight", "—", _checkout("gRPC CreateOrder, 32 in flight", None)),
    (
        "checkout via the gateway's own process, 32 in flight",
        "—",
        _checkout("gateway process POST /v1/orders, 32 in flight", None),
    ),
    ("GetOrder via gateway, 32 in flight", "≥ 2,000 /s", _get_order),
    ("gateway / direct gRPC (GetOrder)", "latency ≤ 1.3x, throughput ≥ 0.8x", _overhead),
    ("GetOrder via the gateway's own process, 32 in flight; its ratios", "—", _process),
    ("GetOrder's CPU, every process, calls one by one", "—", _lone_calls),
    ("the floor: GetOrder from canned servers, 32 in flight", "—", _floor),
    ("1,000 watchers get a change", "p99 ≤ 200 ms", _fan_out),
    ("reads, 100k / 1k stored orders", "flat", _reads),
    ("memory per process", "≤ 150 MB", _memory),
]


def table(figures: dict[str, Any]) -> str:
    meta = figures.get("meta", {})
    rows = [
        "| figure | bar | measured | met |",
        "|---|---|---|---|",
    ]
    for name, bar, measure in ROWS:
        text, met = measure(figures)
        rows.append(
            f"| {name} | {bar} | {text} | {'—' if met is None else 'yes' if met else 'no'} |"
        )
    load = meta.get("load_average_before", ["?"])[0], meta.get("load_average_after", ["?"])[0]
    rows.append("")
    rows.append(
        f"Run of {meta.get('when', '?')} at commit {meta.get('commit', '?')}"
        f"{' (BENCH_QUICK)' if meta.get('quick') else ''}, load average {load[0]} before and "
        f"{load[1]} after, {meta.get('seconds', '?')} s."
    )
    return "\n".join(rows)


def summary(figures: dict[str, Any]) -> str:
    return "Targets:\n\n" + table(figures)
