"""docs/operations.md describes what exists: every manifest file, the current image tag."""

from __future__ import annotations

import re

from tests.ops.deployment_files import KUBERNETES, REPO, app_image

DOC = REPO / "docs" / "operations.md"


def test_the_doc_names_every_manifest_file() -> None:
    text = DOC.read_text()
    missing = [p.name for p in sorted(KUBERNETES.glob("*.yaml")) if p.name not in text]
    assert not missing, f"expected docs/operations.md to describe every manifest, missing {missing}"


def test_the_doc_uses_the_current_image_tag_only() -> None:
    tags = set(re.findall(r"comanda:\d[\w.-]*\w", DOC.read_text()))
    assert tags == {app_image()}, (
        f"expected only {app_image()} in docs/operations.md, found {sorted(tags)}"
    )
