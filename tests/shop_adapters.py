"""Adapters of the example shop used only by the tests (imported as ``tests.shop_adapters:...``)."""

from __future__ import annotations

from typing import Any, Mapping

from oversold.adapters.base import Request
from oversold.adapters.shop import ShopAdapter


class NoSetupShop(ShopAdapter):
    """The shop without its admin call: the sale must exist before the run."""

    name = "shop-no-setup"

    def setup_sale(self, sale_id: str, settings: Mapping[str, Any]) -> Request | None:
        return None
