"""Bot farms: the accounts hoarders and scalpers share, and the profile they carry.

A farm is ``<kind>-farm-0`` .. ``<kind>-farm-<N-1>``: the same names in every
Locust process, so the master can register the whole farm with the sale
before any user runs, without knowing which worker will use which account.
Pure: no I/O.

The scalper profile is the one the source article describes (and the
reference backend's ``policy.py`` rejects): a new account with no purchase
history, almost no activity and a membership opened days ago.

Usage::

    farm_accounts("scalper", 3)     # ['scalper-farm-0', 'scalper-farm-1', 'scalper-farm-2']
    bot_profiles(scenario)          # {"scalper-farm-0": SCALPER_PROFILE, ...} for farms that register
"""

from __future__ import annotations

from typing import Any

from oversold.model.scenario import Scenario

SCALPER_PROFILE: dict[str, Any] = {
    "account_age_days": 2,
    "past_purchases": 0,
    "activity_score": 0.02,
    "membership_age_days": 1,
}
PROFILE_BATCH = 1000  # the contract takes at most this many profiles per request


def farm_account(kind: str, index: int) -> str:
    return f"{kind}-farm-{index}"


def farm_accounts(kind: str, size: int) -> list[str]:
    return [farm_account(kind, i) for i in range(size)]


def bot_profiles(scenario: Scenario) -> dict[str, dict[str, Any]]:
    """Profiles to register before the sale: every farm whose kind is in the mix and asks for it."""
    sw = scenario.swarm
    out: dict[str, dict[str, Any]] = {}
    for kind, cfg in (("hoarder", sw.hoarder), ("scalper", sw.scalper)):
        if sw.mix.get(kind, 0) > 0 and cfg.register_profiles and cfg.accounts > 0:
            out.update({a: dict(SCALPER_PROFILE) for a in farm_accounts(kind, cfg.accounts)})
    return out


def batches(profiles: dict[str, dict[str, Any]], size: int = PROFILE_BATCH) -> list[dict[str, dict[str, Any]]]:
    items = list(profiles.items())
    return [dict(items[i:i + size]) for i in range(0, len(items), size)]
