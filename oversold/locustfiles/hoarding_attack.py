"""Hold hoarding: a farm of accounts takes holds and never pays, while buyers try to buy.

Against ``order_deduct`` (orders never expire) the hoarders keep most of the
stock and buyers' fill rate collapses; against ``pre_deduct`` with the scalper
policy on (the farm carries the scalper profile) buyers get most of it.

    locust -f locustfiles/hoarding_attack.py --headless --host http://127.0.0.1:8001 \\
        -u 40 -r 40 -t 8s --oversold-scenario scenarios/hoarding_attack.yaml \\
        --oversold-setup-sale --oversold-results runs/hoarding
"""

from oversold.swarm import Buyer, HoldHoarder, plugin  # noqa: F401 - Locust picks up the imported classes

plugin.install()
