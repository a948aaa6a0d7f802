"""A scalper rush at the opening second: buyers and a scalper farm, in the flash-sale load shape
(quiet, the whole crowd at the opening second, decay).

With the scalper policy on (``scenarios/scalper_rush.yaml``) the farm's orders
are refused as ``risk_rejected``; turn it off to watch scalpers take the stock.
Ordinary accounts in several sessions (``Sessions``) race the per-user limit.
The shape reads the peak from ``-u`` and the end from ``-t``.

    locust -f locustfiles/scalper_rush.py --headless --host http://127.0.0.1:8001 \\
        -u 80 -t 12s --oversold-scenario scenarios/scalper_rush.yaml \\
        --oversold-setup-sale --oversold-results runs/scalpers
"""

from oversold.swarm import Buyer, FlashSaleShape, Scalper, Sessions, plugin  # noqa: F401 - Locust picks these up

plugin.install()
