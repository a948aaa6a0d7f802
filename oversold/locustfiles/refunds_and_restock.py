"""The sale's whole life at once: buyers, late payers, mind changers, one account in several sessions, and the
operator refunding paid orders and moving warehouse stock (restock, in transit, receive).

    OVERSOLD_ADMIN_TOKEN=... locust -f locustfiles/refunds_and_restock.py --headless \\
        --host http://127.0.0.1:8001 -u 40 -r 40 -t 10s --oversold-scenario scenarios/refunds_and_restock.yaml \\
        --oversold-setup-sale --oversold-results runs/tour

The ``admin`` kind sends admin requests: the admin token must be in the environment.
"""

from oversold.swarm import Admin, Buyer, LatePayer, MindChanger, Sessions, plugin  # noqa: F401 - Locust picks these up

plugin.install()
