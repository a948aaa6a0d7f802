"""A payment storm: a crowd orders, then every one of them pays at the same instant.

Against ``payment_deduct`` more payments are captured than there is stock;
the checker shows every extra one refunded and compensated (and fails when
the sale has ``refunds: false``).

    locust -f locustfiles/payment_storm.py --headless --host http://127.0.0.1:8001 \\
        -u 150 -r 150 -t 15s --processes 2 --oversold-scenario scenarios/payment_storm.yaml \\
        --oversold-setup-sale --oversold-results runs/storm
"""

from oversold.swarm import SimultaneousPayer, plugin  # noqa: F401 - Locust picks up the imported classes

plugin.install()
