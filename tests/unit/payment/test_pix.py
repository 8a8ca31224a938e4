from payment.domain import pix


def test_crc16_ccitt_false_known_vector():
    assert pix.crc16("123456789") == "29B1"


def test_payload_fields_and_crc():
    payload = pix.payload(
        "pix@comanda.example",
        2590,
        "fake-0123456789abcdef0123456789",
        "Comanda Lanches Ltda",
        "São Paulo",
    )
    assert payload.startswith("00020101021226")
    assert "br.gov.bcb.pix" in payload
    assert "5303986" in payload  # BRL
    assert "540525.90" in payload  # amount
    assert "5802BR" in payload
    assert "6009SAO PAULO" in payload  # ASCII, upper case
    assert pix.is_valid(payload)
    assert not pix.is_valid(payload[:-1] + ("0" if payload[-1] != "0" else "1"))


def test_amount_formatting():
    assert "54040.01" in pix.payload("k", 1, "t", "n", "c")
    assert "5406100.00" in pix.payload("k", 10000, "t", "n", "c")
