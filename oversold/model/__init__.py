"""What a run is and what it recorded, as plain frozen data: pure, no I/O but reading and writing its files.

| module | what |
| --- | --- |
| ``scenario`` | the ``Scenario`` dataclasses, the strategies and user kinds, CLI overrides |
| ``scenario_file`` | scenario YAML in (every problem with its field path), YAML out for the run directory |
| ``checks`` | checks of single fields, shared by the file parser and the CLI overrides |
| ``fault`` | one ``Fault`` and ``plan`` (the seed picks targets) |
| ``fault_spec`` | a scenario's ``faults:`` and ``chaos:`` sections, and their expansion in time |
| ``roles`` | the topology a scenario asks for, its problems, and the fault ``schedule`` |
| ``toxics`` | the fault proxy's toxics as data |
| ``history`` | ``Op`` records (invoke / ok / fail / info) and ``history.jsonl`` |
| ``calls`` | a history's operations, each invoke paired with its completion |
| ``state`` | the final state: typed ``Counters``, ``Audit``, ``Ledger`` parsed strictly |
| ``timeline`` | counter samples and fault periods of a run, typed |
| ``thresholds`` / ``metric_spec`` | the k6-style threshold language and the metrics it may name |
| ``exit_codes`` | the exit status table and its one rule |
"""
