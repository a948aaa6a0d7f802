"""The swarm: Locust users that drive the HTTP contract and record every operation.

Modules (importing this package imports nothing from Locust; ``users`` and
``plugin`` do, and Locust monkey-patches the process on import):

- ``recorder``  - invoke/completion records in memory, and their classification (pure)
- ``collector`` - the master's rows from every worker, completeness, history.jsonl (pure)
- ``config``    - the resolved settings of a run, and their wire form for workers
- ``runtime``   - per-process state shared by the users (config, recorder, drain flag)
- ``soldout``   - the watch that stops the swarm once nothing is left to buy
- ``users``     - ``SwarmUser``, ``Buyer``, ``HoldHoarder``
- ``plugin``    - ``--oversold-*`` options and the Locust event wiring (``install()``)
"""
