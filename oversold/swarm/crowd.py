"""The crowd of a flash sale over time: the pure curve behind ``FlashSaleShape``.

Kept apart from the shape so it can be used (and tested) without importing
Locust, which monkey-patches the process it is imported into.

Usage::

    users_at(3.5, 100, quiet_s=3, quiet_share=0.05, spike_s=1, half_life_s=4, floor_share=0.1)   # 100
"""

from __future__ import annotations

import math


def users_at(t: float, peak: int, *, quiet_s: float, quiet_share: float, spike_s: float,
             half_life_s: float, floor_share: float) -> int:
    """How many users the sale has ``t`` seconds into the run (pure).

    >>> [users_at(t, 100, quiet_s=2, quiet_share=0.05, spike_s=1, half_life_s=2, floor_share=0.1)
    ...  for t in (0, 1.9, 2.0, 2.9, 5.0, 7.0, 60)]
    [5, 5, 100, 100, 50, 25, 10]
    """
    if t < quiet_s:
        return max(1, round(peak * quiet_share))
    if t < quiet_s + spike_s:
        return peak
    decayed = peak * math.pow(0.5, (t - quiet_s - spike_s) / half_life_s) if half_life_s > 0 else 0.0
    return max(1, round(max(decayed, peak * floor_share)))
