"""The restaurant's screens: the kiosk, the order-status monitor and the kitchen display.

Plain HTML, CSS and JavaScript in `static/screens/` (no framework, no CDN, no build step),
read once at start-up and served as they are. They use the public API like any other client:
the same routes, the same streams. `/kiosk`, `/monitor` and `/kitchen` are the pages; their
scripts and styles are under `/screens/`.
"""

from __future__ import annotations

from pathlib import Path

SCREENS = Path(__file__).parent / "static" / "screens"
PAGES = {"/kiosk": "kiosk.html", "/monitor": "monitor.html", "/kitchen": "kitchen.html"}
CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
}
# Everything comes from the gateway itself: no inline script, no other origin. The kitchen's
# staff token lives in the page's storage; no third-party code can read it.
HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
        b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),
]

Page = tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]


def pages() -> dict[str, Page]:
    """Path -> (status, body, content type, headers) for every screen and asset."""
    served: dict[str, Page] = {}
    for path in sorted(SCREENS.iterdir()):
        content_type = CONTENT_TYPES.get(path.suffix)
        if content_type is not None:
            served[f"/screens/{path.name}"] = (200, path.read_bytes(), content_type, HEADERS)
    for route, name in PAGES.items():
        served[route] = served[f"/screens/{name}"]
    return served
