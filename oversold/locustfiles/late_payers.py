"""Late payers and double-clickers among buyers: payments after the hold expired (the loophole),
and orders and payments sent twice with one idempotency key and again with a new one.

The checker holds the backend to: no released hold resurrected by a late
payment, one outcome per idempotency key, at most one payment per order.

    locust -f locustfiles/late_payers.py --headless --host http://127.0.0.1:8001 \\
        -u 40 -r 40 -t 10s --oversold-scenario scenarios/late_payers.yaml \\
        --oversold-setup-sale --oversold-results runs/late
"""

from oversold.swarm import Buyer, DoubleClicker, LatePayer, plugin  # noqa: F401 - Locust picks these up

plugin.install()
