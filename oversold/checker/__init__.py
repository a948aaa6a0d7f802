"""The checker: a pure function of (history, final state) that returns a verdict per invariant.

| module | what |
| --- | --- |
| ``check`` | ``check()`` (``check_view()`` on a view built once) and ``INVARIANTS``, the one registry |
| ``invariant`` | the ``Invariant`` protocol every invariant follows, ``CheckOptions`` |
| ``view`` | ``SaleView``: the history's operations and the typed final state, indexed once |
| ``result`` | ``InvariantResult``, ``Totals``, ``Verdict`` and the fail > unknown > pass rule |
| ``oversell`` | ``no_oversell`` |
| ``reconcile`` | ``no_lost_sale``, ``no_phantom_sale`` |
| ``stock`` | ``conservation``, ``holds_returned``, ``sells_out`` |
| ``payments`` | ``single_payment``, ``unique_order_ids``, ``refunds_compensated`` |
| ``orders`` | ``orders_applied`` |
| ``limits`` | ``per_user_limits`` |
| ``lifecycle`` | ``no_resurrection`` |
| ``returns`` | ``stock_returned_once`` |
| ``ledger`` | ``ledger_no_oversell``, ``stock_converges`` |

Usage::

    verdict = check(read_history(run_dir / "history.jsonl"), final)
    verdict.overall                    # "pass" | "fail" | "inconclusive"
"""

from .check import INVARIANTS, check, check_view, totals_of
from .invariant import CheckOptions, Invariant
from .result import InvariantResult, Totals, Verdict
from .view import SaleView

#: The invariants' names, in report order.
INVARIANT_NAMES: tuple[str, ...] = tuple(inv.name for inv in INVARIANTS)

__all__ = ["INVARIANTS", "INVARIANT_NAMES", "CheckOptions", "Invariant", "InvariantResult", "SaleView", "Totals",
           "Verdict", "check", "check_view", "totals_of"]
