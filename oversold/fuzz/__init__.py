"""``oversold fuzz``: does a backend do what its OpenAPI document says? schemathesis, every phase and check.

| module | what |
| --- | --- |
| ``run`` | the sales and orders a pass starts from, the schemathesis configs, both passes (``run_fuzz``) |
| ``hooks`` | schemathesis hooks, loaded by schemathesis from their file (never imported by the harness) |

Like the swarm, the fuzz knows a backend only through the contract (``oversold.adapters``);
it stands nothing up.

Usage::

    from oversold.fuzz import FuzzOptions, run_fuzz

    result = run_fuzz(FuzzOptions("http://127.0.0.1:8000", admin_token="secret"), out=Path("fuzz"))
    print(result.summary())
"""

from .run import FuzzOptions, FuzzResult, PassResult, Prepared, run_fuzz

__all__ = ["FuzzOptions", "FuzzResult", "PassResult", "Prepared", "run_fuzz"]
