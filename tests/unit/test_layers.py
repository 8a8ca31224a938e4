"""The layers stay honest, read from the imports of every module (including those inside
functions): the domain imports no transport, database or outer layer, not even through the
chassis modules it uses; the services never import each other; the gateway imports no
service; the chassis imports no service and none of Comanda's contracts but its options; and
no module imports itself through others."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("chassis", "orders", "payment", "gateway")
SERVICES = ("orders", "payment")
# What a domain module must not reach: transports, databases, generated contracts.
INFRASTRUCTURE = (
    "grpc",
    "grpc_health",
    "grpc_reflection",
    "grpc_status",
    "google.protobuf",
    "sqlalchemy",
    "psycopg2",
    "alembic",
    "nats",
    "prometheus_client",
    "comanda",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {
    _module_name(path): path for package in PACKAGES for path in (REPO / package).rglob("*.py")
}


@cache
def imports(module: str) -> frozenset[str]:
    """Every module `module` imports, as absolute names."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            # `from orders.domain import events` imports the module orders.domain.events
            found.update(
                f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES
            )
    return frozenset(found)


def reached(module: str) -> dict[str, str]:
    """Every module `module` imports directly or through this repository's modules:
    imported name -> the chain of repository modules it was reached through."""
    chains: dict[str, str] = {}
    todo = [(module, module)]
    while todo:
        current, chain = todo.pop()
        for name in imports(current):
            if name in chains:
                continue
            chains[name] = chain
            if name in MODULES:
                todo.append((name, f"{chain} -> {name}"))
    return chains


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _in(package: str) -> list[str]:
    return sorted(m for m in MODULES if _within(m, (package,)))


DOMAIN = [m for s in SERVICES for m in _in(f"{s}.domain")]


def test_the_walk_finds_the_modules_and_their_imports():
    assert "orders.domain.model" in DOMAIN and "payment.domain.model" in DOMAIN
    assert "orders.domain.events" in imports("orders.domain.model")
    assert "chassis.events" in reached("orders.domain.model")


@pytest.mark.parametrize("module", DOMAIN)
def test_the_domain_imports_no_infrastructure_and_no_outer_layer(module: str) -> None:
    service = module.split(".")[0]
    outer = tuple(f"{service}.{layer}" for layer in ("adapters", "entrypoints", "service_layer"))
    bad = {
        name: chain
        for name, chain in reached(module).items()
        if _within(name, INFRASTRUCTURE) or _within(name, outer)
    }
    assert not bad, "\n".join(
        f"{module} imports {name} (via {chain})" for name, chain in bad.items()
    )


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_never_imports_another(service: str) -> None:
    others = tuple(s for s in SERVICES if s != service)
    bad = [(m, name) for m in _in(service) for name in imports(m) if _within(name, others)]
    assert not bad, bad


def test_the_gateway_imports_no_service():
    bad = [(m, name) for m in _in("gateway") for name in imports(m) if _within(name, SERVICES)]
    assert not bad, bad


def test_the_chassis_imports_no_service_and_only_the_contracts_options():
    bad = [
        (m, name)
        for m in _in("chassis")
        for name in imports(m)
        if _within(name, (*SERVICES, "gateway"))
        or (_within(name, ("comanda",)) and not _within(name, ("comanda.options",)))
    ]
    assert not bad, bad


def test_no_module_imports_itself_through_others():
    """No import cycle, not even through imports made only for type checking."""
    graph = {m: {n for n in imports(m) if n in MODULES and n != m} for m in MODULES}
    cycles = []
    for start in sorted(graph):
        stack, seen = [(start, [start])], set()
        while stack:
            current, path = stack.pop()
            for nxt in graph[current]:
                if nxt == start:
                    cycles.append(" -> ".join([*path, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert not cycles, "\n".join(sorted(set(cycles)))
