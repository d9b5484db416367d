"""Header injection: display text is made single-line, addresses with controls are refused."""

from __future__ import annotations

import pytest

from policies.header_safety import UnsafeHeaderError, safe_address, safe_header_text


@pytest.mark.parametrize("attack", [
    "Order\r\nBcc: everyone@corp.example",
    "Order\nBcc: everyone@corp.example",
    "Order\rBcc: everyone@corp.example",
    "Order\x00\x1b[31m\x85Bcc: everyone@corp.example",
    "Order\u2028Bcc: everyone@corp.example\u2029",
])
def test_display_text_never_carries_a_line_break_or_control(attack: str) -> None:
    cleaned = safe_header_text(attack)
    assert cleaned.startswith("Order") and cleaned.endswith("Bcc: everyone@corp.example")
    assert all(ch.isprintable() for ch in cleaned)


def test_display_text_keeps_names_in_any_script_and_is_bounded() -> None:
    assert safe_header_text("  李雷 \t Müller ") == "李雷 Müller"
    assert safe_header_text("\u202eevil") == "evil"
    assert len(safe_header_text("x" * 500, max_length=100)) == 100


@pytest.mark.parametrize("address", [
    "eve@acme.example\r\nBcc: all@corp.example", "eve@acme.example\n", "eve@acme.example, all@corp.example",
    "Eve <eve@acme.example>", "eve@", "not an address", "eve@acme.example\x00",
])
def test_unsafe_addresses_are_refused(address: str) -> None:
    with pytest.raises(UnsafeHeaderError):
        safe_address(address)


def test_plain_and_international_addresses_pass_unchanged() -> None:
    assert safe_address("john@acme.example") == "john@acme.example"
    assert safe_address("李@例子.中国") == "李@例子.中国"
