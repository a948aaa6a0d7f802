"""The default flash sale: buyers and hold hoarders, mixed as the scenario's ``swarm.mix`` says.

    locust -f locustfiles/flash_sale.py --headless --host http://127.0.0.1:8001 \\
        -u 50 -r 50 -t 10s --oversold-scenario scenarios/flash_sale.yaml \\
        --oversold-setup-sale --oversold-results runs/flash

Options: ``locust -f locustfiles/flash_sale.py --oversold-help`` (group "oversold").
"""

from oversold.swarm import Buyer, HoldHoarder, plugin  # noqa: F401 - Locust picks up the imported classes

plugin.install()
