"""Stop the swarm once nothing is left to buy.

``SoldOutWatch`` runs on the master (or a local runner) in its own greenlet: it
reads the sale's counters every ``interval`` seconds and, once
``is_sold_out(counters)``, calls ``on_sold_out`` once. The plugin passes a
callback that stops the run through Locust (so the drain lets in-flight
requests finish first). A failed read is only logged: a node may be down on
purpose (chaos), and the run still ends at its duration.

Usage::

    watch = SoldOutWatch(read=lambda: client.sale("moutai"), on_sold_out=runner.quit)
    watch.start()
    ...
    watch.stop()
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import gevent

log = logging.getLogger("oversold.swarm")


def is_sold_out(counters: Mapping[str, Any] | None) -> bool:
    """Nothing available and nothing held (so nothing can come back from an expiring hold).

    ``<= 0`` rather than ``== 0``: an overselling backend (``naive``) can go negative.

    >>> is_sold_out({"available": 0, "held": 0}), is_sold_out({"available": 0, "held": 2})
    (True, False)
    """
    if not counters:
        return False
    try:
        return int(counters["available"]) <= 0 and int(counters["held"]) <= 0
    except (KeyError, TypeError, ValueError):
        return False


@dataclass
class SoldOutWatch:
    """Polls ``read()`` (sale counters, or None when unreadable) until the sale is sold out."""

    read: Callable[[], Mapping[str, Any] | None]
    on_sold_out: Callable[[], None]
    interval: float = 0.25
    fired: bool = False
    _greenlet: gevent.Greenlet | None = field(default=None, repr=False)
    _stopped: bool = False

    def start(self) -> None:
        self._stopped = False
        # a plain greenlet, not one of the runner's: runner.quit() kills those,
        # and this one calls runner.quit()
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        self._stopped = True
        g = self._greenlet
        if g is not None and g is not gevent.getcurrent() and not g.dead:
            g.kill(block=False)

    def _run(self) -> None:
        failures = 0
        while not self._stopped:
            try:
                counters = self.read()
            except Exception as e:  # noqa: BLE001 - a watcher must not die of a bad read
                counters = None
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("sold-out watch: cannot read the sale counters (%s)", e)
            if is_sold_out(counters):
                self.fired = True
                log.info("sold-out watch: sale sold out (%s), stopping the swarm", dict(counters or {}))
                self._stopped = True
                self.on_sold_out()
                return
            gevent.sleep(self.interval)
