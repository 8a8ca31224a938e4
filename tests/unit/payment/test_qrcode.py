"""The Pix QR code image decodes, with an independent reader (zxing-cpp), to exactly the
"copia e cola" payload, CRC included."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import pytest
import zxingcpp
from PIL import Image

from payment.adapters.qrcode import ImageFormat, render
from payment.domain import pix

PAYLOAD = pix.payload(
    "pix@comanda.example", 123456, "3f2a9c1e5b7d4f608a1b2c3d4e5f6a7b", "Lanchonete Ção", "São Paulo"
)


def decode(png: bytes) -> list[str]:
    return [result.text for result in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


@pytest.mark.parametrize("scale", [1, 3, 8])
def test_the_png_decodes_to_the_payload(scale):
    data, content_type = render(PAYLOAD, ImageFormat.PNG, scale)
    assert content_type == "image/png" and data.startswith(b"\x89PNG\r\n\x1a\n")
    assert decode(data) == [PAYLOAD]
    assert pix.is_valid(decode(data)[0])


def test_the_png_scales_one_module_to_scale_pixels():
    small, _ = render(PAYLOAD, ImageFormat.PNG, 1)
    large, _ = render(PAYLOAD, ImageFormat.PNG, 8)
    width = Image.open(io.BytesIO(small)).size[0]
    assert Image.open(io.BytesIO(large)).size[0] == 8 * width
    assert width >= 21 + 2 * 4, "at least a version 1 code with its quiet zone"


def test_the_svg_is_a_scalable_document_with_a_title():
    data, content_type = render(PAYLOAD, ImageFormat.SVG)
    assert content_type == "image/svg+xml"
    root = ET.fromstring(data)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    assert "width" not in root.attrib and root.attrib["viewBox"].startswith("0 0 ")
    assert root.find(f"{ns}title").text == "QR code Pix"  # type: ignore[union-attr]
    # The same modules as the PNG: its side, in modules, equals the PNG's side in pixels.
    png, _ = render(PAYLOAD, ImageFormat.PNG, 1)
    side = int(root.attrib["viewBox"].split()[2])
    assert side == Image.open(io.BytesIO(png)).size[0]
