from __future__ import annotations

import pytest

from assets import AssetKey

pytestmark = pytest.mark.unit  # no server, no warehouse, no CLI process: `uv run pytest -m unit`


def test_parse_and_render() -> None:
    key = AssetKey.parse("marts.orders")
    assert key.parts == ("marts", "orders")
    assert str(key) == "marts.orders"
    assert key.name == "orders" and key.schema == "marts"
    assert AssetKey.of("RAW_SHOP", "Orders") == AssetKey.parse("raw_shop.orders")


@pytest.mark.parametrize("text", ["", "marts..orders", "marts.orders;drop table x", "a b"])
def test_malformed_keys_are_refused_with_the_text(text: str) -> None:
    with pytest.raises(ValueError, match="asset key"):
        AssetKey.parse(text)
