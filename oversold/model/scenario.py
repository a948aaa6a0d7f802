"""The scenario: what a run does. Frozen dataclasses, parsed and validated purely.

The file format and its parser are ``oversold.model.scenario_file``: every
problem of a scenario is collected, each with its field path, and raised
together as one ``ScenarioError`` so a user fixes them in one go.

Usage::

    scenario = load_scenario(Path("scenarios/flash_sale.yaml"))  # oversold.model.scenario_file
    scenario = scenario.with_overrides(strategy="naive", seed=7)
    print(scenario.sale.stock, scenario.swarm.users)
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from oversold.errors import ScenarioError

from .expect import Expectation
from .checks import DURATION_RANGE, SEED_RANGE, Check, adapter_spec, http_url, redis_url
from .fault_spec import ChaosConfig, FaultSpec

STRATEGIES = ("pre_deduct", "naive", "order_deduct", "payment_deduct", "pre_deduct_ledger", "pre_deduct_coalesced",
              "pre_deduct_buckets")
LEDGER_STRATEGIES = ("pre_deduct_ledger",)  # cannot run without the warehouse ledger
UNSYNCED_STRATEGIES = ("pre_deduct_buckets",)  # cannot be synced with the warehouse ledger (backend.ledger)
ASYNC_STRATEGIES = ("pre_deduct", "pre_deduct_ledger", "pre_deduct_coalesced")  # can queue orders (sale.async_orders)
BUCKETED = "pre_deduct_buckets"  # the strategy whose sale has sale.buckets
USER_KINDS = ("buyer", "hoarder", "scalper", "double_clicker", "late_payer", "simultaneous_payer", "sessions",
              "mind_changer", "admin")
PAY_AFTER_EXPIRY = ("refuse", "fresh_stock")
_SALE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Sale:
    id: str = "moutai"
    stock: int = 500
    hold_ttl_ms: int = 3000
    strategy: str = "pre_deduct"
    per_user_limit: int = 0
    pay_after_expiry: str = "refuse"
    # the protections (reference_backend/README.md "Protections"); None/() = the backend's default
    refunds: bool = True
    payment_delay_ms: int = 0
    warn_thresholds: tuple[int, ...] = ()
    scalper_policy: dict[str, Any] | None = None
    # asynchronous order mode: orders are queued (202) and applied by order processors
    async_orders: bool = False
    # pre_deduct_buckets: the stock split into this many buckets (each on its own slot / shard); others ignore it
    buckets: int = 4

    def settings(self) -> dict[str, Any]:
        """The body of ``PUT /v1/sales/{id}`` for this sale (every field but ``id``)."""
        body = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "id"}
        body["warn_thresholds"] = list(self.warn_thresholds)
        if self.scalper_policy is None:
            del body["scalper_policy"]
        if not self.async_orders:  # sent only when asked for, so a backend without the mode is not bothered
            del body["async_orders"]
        if self.strategy != BUCKETED:  # only a bucketed sale takes it
            del body["buckets"]
        return body


@dataclass(frozen=True)
class Backend:
    nodes: int = 2
    url: str | None = None  # a backend somebody else runs; then no node is started
    # "module:Class" of an oversold.adapters.Adapter: how the harness speaks to a backend with
    # another API than the contract (None: the contract, oversold.adapters.contract:ContractAdapter)
    adapter: str | None = None
    # given to the adapter as ``options`` (say, the path or DSN of your database: Adapter.setup/read_state)
    adapter_options: dict[str, Any] | None = None
    # the warehouse ledger and the stock sync worker (always on for pre_deduct_ledger; see uses_ledger)
    ledger: bool = False
    sync_interval_ms: int = 100
    sync_delay_ms: int = 0  # the sync applies a change no earlier than this after it happened
    order_workers: int = 2  # order processors started when sale.async_orders is on
    redis_timeout_ms: int = 2000  # a node's Redis calls (and wait for a pooled connection) time out after this


@dataclass(frozen=True)
class RedisConfig:
    url: str | None = None  # an existing server; else the harness starts its own
    topology: str = "single"  # single | sentinel (primary + replica + 3 Sentinels; nodes follow failovers) | cluster
    proxy: bool = False  # nodes reach Redis through the fault proxy (role "proxy": one link per node)
    persistence: str = "none"  # none | aof (appendfsync always: a killed Redis restarts with its data)
    # sentinel only: the replica replicates through the fault proxy (role "replication"), so a
    # fault can partition it from the primary (or slow it down) before the primary dies
    replication_proxy: bool = False
    # topology cluster: shards of the Redis Cluster, each a primary and a replica (role redis-primary: one per
    # shard); other topologies ignore it
    shards: int = 3


@dataclass(frozen=True)
class BuyerConfig:
    qty: int = 1
    wait_ms: tuple[int, int] = (50, 300)  # think time between purchases
    pay_delay_ms: tuple[int, int] = (20, 300)  # between the hold and the payment
    cancel_rate: float = 0.0
    browse_rate: float = 0.0  # share of purchases with a read of the sale before and of the order after
    pay_retries: int = 2  # a payment with an unknown outcome (timeout, 503) is sent again, same key, up to this


@dataclass(frozen=True)
class HoarderConfig:
    qty: int = 2
    wait_ms: tuple[int, int] = (20, 100)
    burst: int = 1  # holds taken at once, in parallel (aggressiveness, with qty and wait_ms)
    accounts: int = 0  # 0: one account per user; N: a farm hoarder-farm-0..N-1 shared by every hoarder
    register_profiles: bool = False  # register the farm with the scalper profile (oversold.swarm.profiles)


# The other kinds' settings (oversold/swarm/users.py says what each does).
@dataclass(frozen=True)
class ScalperConfig:
    qty: int = 1
    wait_ms: tuple[int, int] = (100, 500)
    pay_delay_ms: tuple[int, int] = (0, 50)
    parallel: int = 4  # orders in flight at once, each from another farm account
    retries: int = 3  # further tries of an order refused as sold out or with an unknown outcome
    accounts: int = 20  # the farm: scalper-farm-0..N-1, shared by every scalper
    register_profiles: bool = True


@dataclass(frozen=True)
class DoubleClickerConfig:
    qty: int = 1
    wait_ms: tuple[int, int] = (200, 800)
    pay_delay_ms: tuple[int, int] = (20, 200)
    clicks: int = 2  # concurrent requests with one idempotency key
    new_key_rate: float = 0.3  # share of orders and payments sent once more with a fresh key


@dataclass(frozen=True)
class LatePayerConfig:
    qty: int = 1
    wait_ms: tuple[int, int] = (200, 800)
    late_ms: tuple[int, int] = (100, 500)  # pays this long after the hold expired


@dataclass(frozen=True)
class SimultaneousPayerConfig:
    qty: int = 1
    lead_ms: int = 1000  # the pay instant: this long after every user was spawned


@dataclass(frozen=True)
class SessionsConfig:
    qty: int = 1
    sessions: int = 3  # parallel sessions of one account: each orders at once, against the per-user limit
    wait_ms: tuple[int, int] = (200, 800)
    pay_delay_ms: tuple[int, int] = (20, 200)


@dataclass(frozen=True)
class MindChangerConfig:
    qty: int = 1
    wait_ms: tuple[int, int] = (200, 800)
    pay_delay_ms: tuple[int, int] = (20, 200)


@dataclass(frozen=True)
class AdminConfig:
    wait_ms: tuple[int, int] = (300, 800)  # between two admin actions
    refunds: bool = True  # refund an order paid in this process, then its buyer pays it again (must be refused)
    restock_qty: int = 0  # units restocked each action (needs the warehouse ledger: backend.ledger)
    in_transit_qty: int = 0  # units announced in transit each action, received the next one (ledger)


@dataclass(frozen=True)
class Swarm:
    users: int = 120
    spawn_rate: float = 120.0
    duration_s: float = 30.0
    processes: int = 1
    request_timeout_s: float = 5.0
    mix: dict[str, int] = field(default_factory=lambda: {"buyer": 4, "hoarder": 1})
    buyer: BuyerConfig = BuyerConfig()
    hoarder: HoarderConfig = HoarderConfig()
    scalper: ScalperConfig = ScalperConfig()
    double_clicker: DoubleClickerConfig = DoubleClickerConfig()
    late_payer: LatePayerConfig = LatePayerConfig()
    simultaneous_payer: SimultaneousPayerConfig = SimultaneousPayerConfig()
    sessions: SessionsConfig = SessionsConfig()
    mind_changer: MindChangerConfig = MindChangerConfig()
    admin: AdminConfig = AdminConfig()
    stop_when_sold_out: bool = True

    def weight_of(self, kind: str | None) -> int | None:
        """A user class's weight under ``mix``: its own, 0 for a swarm kind the mix leaves out
        (``{buyer: 1}`` runs buyers only), None (keep the class's) for a class of no swarm kind.

        >>> Swarm(mix={"buyer": 3}).weight_of("buyer"), Swarm(mix={"buyer": 3}).weight_of("hoarder")
        (3, 0)
        """
        if kind in self.mix:
            return self.mix[kind]
        return 0 if kind in USER_KINDS else None


@dataclass(frozen=True)
class CheckerConfig:
    grace_ms: int = 2000
    quiesce_timeout_s: float = 30.0
    expect_sell_out: bool = True


@dataclass(frozen=True)
class Scenario:
    name: str = "flash_sale"
    seed: int = 1
    sale: Sale = Sale()
    backend: Backend = Backend()
    redis: RedisConfig = RedisConfig()
    swarm: Swarm = Swarm()
    checker: CheckerConfig = CheckerConfig()
    # metric name -> k6-style expressions as written; validated at load (oversold.analysis.thresholds)
    thresholds: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # the nemesis (oversold/model/fault_spec.py, docs/chaos.md): which driver, and the fault schedule
    chaos: ChaosConfig = ChaosConfig()
    faults: tuple[FaultSpec, ...] = ()
    # the verdict the scenario expects (oversold/model/expect.py): a pass unless it declares a known failure
    expect: Expectation = Expectation()

    @property
    def backend_label(self) -> str:
        """What backend ran, for titles and log lines: the reference backend's strategy, or for a backend
        given by URL (yours, which has no such strategy) its adapter's class name."""
        if self.backend.url is None:
            return self.sale.strategy
        return (self.backend.adapter or "ContractAdapter").rpartition(":")[2]

    @property
    def uses_ledger(self) -> bool:
        """Whether the run needs the warehouse ledger (nodes with ``--ledger``) and the stock sync worker."""
        return self.backend.ledger or self.sale.strategy in LEDGER_STRATEGIES

    def with_overrides(self, **overrides: Any) -> "Scenario":
        """Apply CLI-level overrides (``strategy``, ``seed``, ``redis_url``, ``backend_url``, ``adapter``, ``duration_s``)."""
        s = self
        if overrides.get("strategy") is not None:
            strategy = overrides["strategy"]
            if strategy not in STRATEGIES:
                raise ScenarioError("--strategy", [f"--strategy: {strategy!r} is not one of {', '.join(STRATEGIES)}"])
            if s.sale.async_orders and strategy not in ASYNC_STRATEGIES:
                raise ScenarioError("--strategy", [f"--strategy: {strategy} cannot queue orders and the scenario "
                                                   f"has sale.async_orders: true"])
            if strategy in UNSYNCED_STRATEGIES and s.backend.ledger:
                raise ScenarioError("--strategy", [f"--strategy: {strategy} cannot be synced with the warehouse "
                                                   f"ledger and the scenario has backend.ledger: true"])
            s = dataclasses.replace(s, sale=dataclasses.replace(s.sale, strategy=strategy))
        if overrides.get("seed") is not None:
            s = dataclasses.replace(s, seed=_override("--seed", overrides["seed"], SEED_RANGE))
        if overrides.get("redis_url") is not None:
            url = _override("--redis-url", overrides["redis_url"], redis_url)
            s = dataclasses.replace(s, redis=dataclasses.replace(s.redis, url=url))
        if overrides.get("backend_url") is not None:
            url = _override("--host", overrides["backend_url"], http_url).rstrip("/")
            s = dataclasses.replace(s, backend=dataclasses.replace(s.backend, url=url))
        if overrides.get("adapter") is not None:
            spec = _override("--adapter", overrides["adapter"], adapter_spec)
            s = dataclasses.replace(s, backend=dataclasses.replace(s.backend, adapter=spec))
        if overrides.get("duration_s") is not None:
            duration = _override("--duration", overrides["duration_s"], DURATION_RANGE)
            s = dataclasses.replace(s, swarm=dataclasses.replace(s.swarm, duration_s=float(duration)))
        return s

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def _override(flag: str, value: Any, check: Check) -> Any:
    """A CLI override, checked like the scenario field it replaces (ScenarioError names the flag)."""
    problem = check(value)
    if problem:
        raise ScenarioError(flag, [f"{flag}: {value!r} {problem}"])
    return value


def _plain(value: Any) -> Any:
    """Tuples become lists so the scenario dumps as ordinary YAML/JSON."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
