"""``FlashSaleShape``: the crowd of a flash sale over time, as a Locust ``LoadTestShape``.

Quiet before the sale opens (a few early visitors), the whole crowd at the
opening second, then a decay as the stock runs out and people leave:

    users
    peak ┤      ██
         │      ██▆▅
         │      ██████▄▃▂
    quiet┤▁▁▁▁▁▁██████████▁▁▁▁   (floor)
         └──────┬──────────────── seconds
              quiet_s

``oversold.swarm.crowd.users_at`` is the pure curve; the shape reads the peak from ``-u`` (or the
scenario's ``swarm.users``) and the end from ``-t`` (or ``swarm.duration_s``).
Users leaving in the decay are stopped gracefully (the plugin gives Locust a
stop timeout), so they do not leave requests with unknown outcomes behind.

Usage (a locustfile: importing the class is enough; Locust uses every shape
class it finds in the locustfile's namespace, so to change the curve subclass
it through its module, leaving one shape class there)::

    from oversold.swarm import Buyer, FlashSaleShape, Scalper, plugin  # noqa: F401

    plugin.install()

    # or:
    from oversold.swarm import shape

    class Shape(shape.FlashSaleShape):
        quiet_s = 2.0
"""

from __future__ import annotations

from typing import Any, ClassVar

from locust import LoadTestShape

from .crowd import users_at


class FlashSaleShape(LoadTestShape):
    """Quiet for ``quiet_s``, the peak for ``spike_s`` from the opening second, then halving every
    ``half_life_s`` down to ``floor_share`` of the peak, until the run's duration."""

    abstract: ClassVar[bool] = False
    use_common_options: ClassVar[bool] = True  # it reads -u and -t itself
    quiet_s: ClassVar[float] = 3.0
    quiet_share: ClassVar[float] = 0.05
    spike_s: ClassVar[float] = 1.0
    half_life_s: ClassVar[float] = 4.0
    floor_share: ClassVar[float] = 0.1
    default_peak: ClassVar[int] = 100
    default_duration_s: ClassVar[float] = 30.0

    def _option(self, name: str) -> Any:
        runner = self.runner
        options = getattr(getattr(runner, "environment", None), "parsed_options", None)
        return getattr(options, name, None)

    @property
    def peak(self) -> int:
        return int(self._option("num_users") or self.default_peak)

    @property
    def duration_s(self) -> float:
        return float(self._option("run_time") or self.default_duration_s)

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time()
        if t >= self.duration_s:
            return None
        users = users_at(t, self.peak, quiet_s=self.quiet_s, quiet_share=self.quiet_share, spike_s=self.spike_s,
                         half_life_s=self.half_life_s, floor_share=self.floor_share)
        # the whole crowd arrives within the opening second, and leaves as fast as the curve says
        return users, float(max(1, self.peak))
