"""Pix QR codes as images, drawn by segno (a small, pure-Python QR encoder with no
dependencies of its own, conforming to ISO/IEC 18004)."""

from __future__ import annotations

import io
from enum import Enum

import segno


class ImageFormat(Enum):
    SVG = "SVG"
    PNG = "PNG"


CONTENT_TYPES = {ImageFormat.SVG: "image/svg+xml", ImageFormat.PNG: "image/png"}
QUIET_ZONE = 4  # modules of white around the code, as the QR standard asks


def render(payload: str, image_format: ImageFormat, scale: int = 8) -> tuple[bytes, str]:
    """The QR code of `payload` (byte mode, error correction level M, the smallest version
    that fits) as (image bytes, content type). An SVG has no fixed size: it fills its box."""
    code = segno.make_qr(payload, error="m")
    out = io.BytesIO()
    if image_format is ImageFormat.PNG:
        code.save(out, kind="png", scale=scale, border=QUIET_ZONE)
    else:
        code.save(
            out,
            kind="svg",
            border=QUIET_ZONE,
            xmldecl=False,
            omitsize=True,  # a viewBox only: the page sizes it
            title="QR code Pix",
            dark="#000",
            light="#fff",
        )
    return out.getvalue(), CONTENT_TYPES[image_format]
