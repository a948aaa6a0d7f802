"""KeepAlive: one kept-alive connection per thread; a stale one is retried only when that is safe."""

from __future__ import annotations

import pytest

from oversold.infra.keepalive import KeepAlive


@pytest.mark.parametrize("url", ["https://127.0.0.1:1", "127.0.0.1:8000", "http://"])
def test_only_plain_http_urls_are_taken(url):
    with pytest.raises(ValueError, match="base_url: must be http://host:port"):
        KeepAlive(url)
