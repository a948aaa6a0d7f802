"""The protections on real nodes and real Redis; each test would fail with its protection switched off.

Purchase limits (限购), the scalper policy (黄牛), inventory warnings (库存预警)
and their webhook, the oversell detector (超卖检测), and admin refunds with
compensation (退款与赔偿).
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

from reference_backend.policy import Profile, ScalperPolicy


def audit(client, sale_id: str = "s") -> dict:
    status, body = client.audit(sale_id)
    assert status == 200, body
    return body


# --------------------------------------------------------------------------- purchase limits


# --------------------------------------------------------------------------- scalper policy

SCALPER = {"account_age_days": 2, "past_purchases": 0, "activity_score": 0.0, "membership_age_days": 0}
SUSPECT = {"account_age_days": 400, "past_purchases": 0, "activity_score": 0.05, "membership_age_days": 400}
GENUINE = {"account_age_days": 900, "past_purchases": 40, "activity_score": 0.8, "membership_age_days": 700}


def test_the_policy_is_a_pure_function_of_the_profile():
    policy = ScalperPolicy()
    assert policy.verdict(Profile(**SCALPER)).action == "reject"
    suspect = policy.verdict(Profile(**SUSPECT))
    assert (suspect.action, suspect.limit, suspect.signals) == ("limit", 1, ("no_history", "inactive"))
    assert policy.verdict(Profile(**GENUINE)).action == "allow"
    assert policy.verdict(None).action == "allow"  # unknown users are allowed
    # one signal is not enough; a young account counts as no history
    assert policy.verdict(Profile(5, 50, 0.9, 900)).signals == ("no_history",)
    assert policy.verdict(Profile(5, 50, 0.9, 900)).action == "allow"
    assert ScalperPolicy(enabled=False).verdict(Profile(**SCALPER)).action == "allow"
    # the thresholds are the sale's to set
    barely_active = Profile(account_age_days=2, past_purchases=0, activity_score=0.05, membership_age_days=0)
    assert policy.verdict(barely_active).action == "reject"
    lax = ScalperPolicy.from_body({"low_activity": 0.01, "suspect_limit": 2})
    assert (lax.verdict(barely_active).action, lax.verdict(barely_active).limit) == ("limit", 2)
    assert Profile.decode(Profile(**SUSPECT).encode()) == Profile(**SUSPECT)


# --------------------------------------------------------------------------- inventory warnings


class Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


# --------------------------------------------------------------------------- oversell detector


# --------------------------------------------------------------------------- admin refund


