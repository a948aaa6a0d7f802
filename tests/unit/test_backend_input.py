"""Bad input: every malformed request gets the right 4xx and code, and Redis does not change at all."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("message", "transient"), [
    ("LOADING Redis is loading the dataset in memory", True),
    ("BUSY Redis is busy running a script.", True),
    ("NOREPLICAS Not enough good replicas to write.", True),
    ("Command # 4 (EVALSHA abc 3 k1 k2 k3) of pipeline caused error: ('MASTERDOWN Link with MASTER is down',)", True),
    ("BUSYGROUP Consumer Group name already exists", False),
    ("Command # 5 (XGROUP CREATE k g 0 MKSTREAM) of pipeline caused error: ('BUSYGROUP Consumer Group name already exists',)", False),
    ("ERR Error running script: user_script:12: attempt to compare nil with number", False),
])
def test_only_replies_that_heal_are_unavailable_rather_than_internal(message, transient):
    from reference_backend.app import TRANSIENT_REPLY

    assert bool(TRANSIENT_REPLY.search(message)) is transient
