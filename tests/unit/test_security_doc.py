"""docs/security.md's table of who may do what is the contract's, operation by operation."""

from __future__ import annotations

import re
from pathlib import Path

from chassis import access
from gateway.api import Api

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def documented() -> dict[str, tuple[str, str]]:
    rows = re.findall(r"^\| `(\w+\.\w+)` \| `([A-Z]+ [^`]+)` \| (.+?) \|$", DOC.read_text(), re.M)
    return {operation: (http, who) for operation, http, who in rows}


def test_the_security_table_lists_every_operation_with_its_route_and_roles():
    table = documented()
    routes = {route.rpc.label: route for route in Api().routes}
    assert set(table) == set(routes), (
        f"undocumented: {sorted(set(routes) - set(table))}, "
        f"not in the protos: {sorted(set(table) - set(routes))}"
    )
    for label, route in routes.items():
        http, who = table[label]
        assert http == f"{route.binding.method} {route.binding.template.openapi_path()}", label
        rule = route.rpc.access
        if rule.staff:
            assert who == "staff: " + ", ".join(f"`{r}`" for r in rule.roles), label
        elif rule.audience == access.PROVIDER:
            assert "signature" in who, label
        else:
            assert not who.startswith("staff"), label
