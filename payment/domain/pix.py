"""Pix "copia e cola" payloads: the EMV QR Code format of the Brazilian Central Bank (BR Code).

Each field is ID (2 digits) + length (2 digits) + value; the payload ends with field 63, a
CRC16/CCITT-FALSE of everything before it including "6304".
"""

from __future__ import annotations

import unicodedata


def _field(tag: str, value: str) -> str:
    if len(value) > 99:
        raise ValueError(f"EMV field {tag} longer than 99 characters")
    return f"{tag}{len(value):02d}{value}"


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: str) -> str:
    """CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF), table-driven."""
    crc = 0xFFFF
    for byte in data.encode():
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[(crc >> 8) ^ byte]
    return f"{crc:04X}"


def _ascii(text: str, limit: int) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return plain.upper()[:limit]


def payload(
    key: str, amount_centavos: int, txid: str, merchant_name: str, merchant_city: str
) -> str:
    """A one-time Pix payload for `amount_centavos` to the Pix key `key`."""
    account = _field("00", "br.gov.bcb.pix") + _field("01", key)
    body = (
        _field("00", "01")
        + _field("01", "12")
        + _field("26", account)
        + _field("52", "0000")
        + _field("53", "986")
        + _field("54", f"{amount_centavos // 100}.{amount_centavos % 100:02d}")
        + _field("58", "BR")
        + _field("59", _ascii(merchant_name, 25))
        + _field("60", _ascii(merchant_city, 15))
        + _field("62", _field("05", "".join(c for c in txid if c.isalnum())[:25]))
        + "6304"
    )
    return body + crc16(body)


def is_valid(text: str) -> bool:
    """Whether `text` ends with the right CRC (what a banking app checks first)."""
    return len(text) > 8 and text[-8:-4] == "6304" and crc16(text[:-4]) == text[-4:]
