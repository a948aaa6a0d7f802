"""``oversold run`` and ``oversold bench``: stand the system up, run swarm and faults, settle, judge, tear down.

| module | what |
| --- | --- |
| ``run`` | one scenario end to end (``run_scenario``) |
| ``topology`` | standing up Redis, nodes, proxy and workers; every part registered as a fault target |
| ``user_system`` | a ``--host`` run's declared parts of the user's system (upstreams, processes, containers) as fault targets |
| ``nodes`` / ``workers`` | reference backend nodes and worker processes as children |
| ``sampler`` | the counters sampled into the run's timeline |
| ``progress`` | the live status line |
| ``bench`` | one scenario against each strategy, K times |
"""
