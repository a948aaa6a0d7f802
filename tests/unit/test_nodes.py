"""Backend nodes as processes (oversold.orchestrate.nodes) and the stdlib contract client (oversold.adapters.contract_client)."""

from __future__ import annotations

import pytest

from oversold.adapters.contract_client import ContractClient


def test_client_refuses_a_non_http_url():
    with pytest.raises(ValueError):
        ContractClient("redis://127.0.0.1:1")
