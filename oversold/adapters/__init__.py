"""Adapters: how the harness speaks to a backend, one small pure class per API.

- ``base``     - ``Adapter`` (the interface), ``Request``, ``load_adapter("module:Class")``
- ``contract`` - ``ContractAdapter``: the oversold HTTP contract (the default)
- ``shop``     - ``ShopAdapter``: an example for an API shaped nothing like it (``tests/shop_app.py``)
- ``http``     - ``AdapterClient``: an adapter's requests over the standard library's HTTP client

See docs/swarm.md "Adapters: any backend".

Usage::

    from oversold.adapters import AdapterClient, ContractAdapter

    client = AdapterClient(ContractAdapter(admin_token="secret"), "http://127.0.0.1:8001")
    client.counters("moutai")
"""

from __future__ import annotations

from .base import OPERATIONS, Adapter, Request, load_adapter
from .contract import ContractAdapter
from .http import AdapterClient

__all__ = ["OPERATIONS", "Adapter", "AdapterClient", "ContractAdapter", "Request", "load_adapter"]
