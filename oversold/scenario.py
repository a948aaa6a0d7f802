"""The scenario: what a run does. Frozen dataclasses, parsed and validated purely.

Every problem of a scenario is collected, each with its field path, and raised
together as one ``ScenarioError`` so a user fixes them in one go.

Usage::

    scenario = load_scenario(Path("scenarios/flash_sale.yaml"))
    scenario = scenario.with_overrides(strategy="naive", seed=7)
    print(scenario.sale.stock, scenario.swarm.users)
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import yaml

from .chaos_spec import (PERSISTENCE, TOPOLOGIES, ChaosConfig, FaultSpec, chaos_problems, parse_chaos,
                         parse_faults)
from .errors import ScenarioError
from .thresholds import parse_thresholds

STRATEGIES = ("pre_deduct", "naive", "order_deduct", "payment_deduct", "pre_deduct_ledger")
LEDGER_STRATEGIES = ("pre_deduct_ledger",)  # cannot run without the warehouse ledger
ASYNC_STRATEGIES = ("pre_deduct", "pre_deduct_ledger")  # can queue orders (sale.async_orders)
USER_KINDS = ("buyer", "hoarder", "scalper", "double_clicker", "late_payer", "simultaneous_payer")
PAY_AFTER_EXPIRY = ("refuse", "fresh_stock")
_SALE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ADAPTER_SPEC = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


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

    def settings(self) -> dict[str, Any]:
        """The body of ``PUT /v1/sales/{id}`` for this sale (every field but ``id``)."""
        body = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "id"}
        body["warn_thresholds"] = list(self.warn_thresholds)
        if self.scalper_policy is None:
            del body["scalper_policy"]
        if not self.async_orders:  # sent only when asked for, so a backend without the mode is not bothered
            del body["async_orders"]
        return body


@dataclass(frozen=True)
class Backend:
    nodes: int = 2
    url: str | None = None  # a backend somebody else runs; then no node is started
    # "module:Class" of an oversold.adapters.Adapter: how the harness speaks to a backend with
    # another API than the contract (None: the contract, oversold.adapters.contract:ContractAdapter)
    adapter: str | None = None
    # the warehouse ledger and the stock sync worker (always on for pre_deduct_ledger; see uses_ledger)
    ledger: bool = False
    sync_interval_ms: int = 100
    sync_delay_ms: int = 0  # the sync applies a change no earlier than this after it happened
    order_workers: int = 2  # order processors started when sale.async_orders is on
    redis_timeout_ms: int = 2000  # a node's Redis calls (and wait for a pooled connection) time out after this


@dataclass(frozen=True)
class RedisConfig:
    url: str | None = None  # an existing server; else the harness starts its own
    topology: str = "single"  # single | sentinel (primary + replica + 3 Sentinels; nodes follow failovers)
    proxy: bool = False  # nodes reach Redis through the fault proxy (role "proxy": one link per node)
    persistence: str = "none"  # none | aof (appendfsync always: a killed Redis restarts with its data)
    # sentinel only: the replica replicates through the fault proxy (role "replication"), so a
    # fault can partition it from the primary (or slow it down) before the primary dies
    replication_proxy: bool = False


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
    stop_when_sold_out: bool = True


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
    # metric name -> k6-style expressions as written; validated at load (oversold.thresholds)
    thresholds: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # the nemesis (oversold/chaos_spec.py, docs/chaos.md): which driver, and the fault schedule
    chaos: ChaosConfig = ChaosConfig()
    faults: tuple[FaultSpec, ...] = ()

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
            s = dataclasses.replace(s, sale=dataclasses.replace(s.sale, strategy=strategy))
        if overrides.get("seed") is not None:
            s = dataclasses.replace(s, seed=_override("--seed", overrides["seed"], SEED_RANGE))
        if overrides.get("redis_url") is not None:
            url = _override("--redis-url", overrides["redis_url"], _redis_url)
            s = dataclasses.replace(s, redis=dataclasses.replace(s.redis, url=url))
        if overrides.get("backend_url") is not None:
            url = _override("--host", overrides["backend_url"], _http_url).rstrip("/")
            s = dataclasses.replace(s, backend=dataclasses.replace(s.backend, url=url))
        if overrides.get("adapter") is not None:
            spec = _override("--adapter", overrides["adapter"], _adapter_spec)
            s = dataclasses.replace(s, backend=dataclasses.replace(s.backend, adapter=spec))
        if overrides.get("duration_s") is not None:
            duration = _override("--duration", overrides["duration_s"], DURATION_RANGE)
            s = dataclasses.replace(s, swarm=dataclasses.replace(s.swarm, duration_s=float(duration)))
        return s

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def _override(flag: str, value: Any, check: Callable[[Any], str | None]) -> Any:
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


# -- validation -------------------------------------------------------------------


class _Reader:
    """Reads typed fields from nested mappings, collecting every problem with its path."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def section(self, data: dict, key: str, path: str) -> dict:
        value = data.get(key, {})
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problems.append(f"{_join(path, key)}: must be a mapping, got {_kind(value)}")
            return {}
        return value

    def unknown(self, data: dict, allowed: tuple[str, ...], path: str) -> None:
        for key in data:
            if key not in allowed:
                hint = f"; known: {', '.join(allowed)}"
                self.problems.append(f"{_join(path, str(key))}: unknown field{hint}")

    def get(self, data: dict, key: str, path: str, default: Any, check: Callable[[Any], str | None]) -> Any:
        if key not in data or data[key] is None and default is None:
            return default
        value = data[key]
        problem = check(value)
        if problem:
            self.problems.append(f"{_join(path, key)}: {problem}, got {value!r}")
            return default
        return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    return type(value).__name__


def _int(lo: int, hi: int = 10**9) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            return f"must be an integer from {lo} to {hi}"
        return None

    return check


def _num(lo: float, hi: float) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            return f"must be a number from {lo} to {hi}"
        return None

    return check


SEED_RANGE = _int(0, 2**31 - 1)
DURATION_RANGE = _num(1, 86_400)


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _one_of(options: tuple[str, ...]) -> Callable[[Any], str | None]:
    return lambda v: None if v in options else f"must be one of {', '.join(options)}"


def _redis_url(v: Any) -> str | None:
    if not isinstance(v, str) or not re.match(r"^(redis|rediss|redis\+sentinel)://", v):
        return "must be a Redis URL (redis://…, rediss://… or redis+sentinel://…)"
    return None


def _http_url(v: Any) -> str | None:
    """A backend's base URL: ``http://host[:port][/prefix]`` (the harness's clients speak plain HTTP)."""
    parts = urlsplit(v) if isinstance(v, str) else None
    if parts is None or parts.scheme != "http" or not parts.hostname or parts.query or parts.fragment:
        return "must be an http://host[:port] URL of your backend"
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return "must be an http://host[:port] URL of your backend (the port is not a number)"
    return None


def _adapter_spec(v: Any) -> str | None:
    if v is None or isinstance(v, str) and ADAPTER_SPEC.match(v):
        return None
    return "must be 'package.module:ClassName' (an oversold.adapters.Adapter subclass)"


def _thresholds(v: Any) -> str | None:
    if (
        not isinstance(v, (list, tuple))
        or len(v) > 16
        or any(isinstance(x, bool) or not isinstance(x, int) or not 0 <= x <= 10**9 for x in v)
        or len(set(v)) != len(v)
    ):
        return "must be a list of at most 16 distinct integers from 0 to 1000000000"
    return None


def _policy(r: "_Reader", value: Any, path: str) -> dict[str, Any] | None:
    """``sale.scalper_policy``: null, or a mapping of the backend's policy fields (each checked)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        r.problems.append(f"{path}: must be a mapping, got {_kind(value)}")
        return None
    checks = {
        "enabled": _bool, "few_purchases": _int(0), "new_account_days": _int(0), "low_activity": _num(0.0, 1.0),
        "new_member_days": _int(0), "suspect_limit": _int(1),
    }
    r.unknown(value, tuple(checks), path)
    return {k: r.get(value, k, path, None, check) for k, check in checks.items() if k in value}


def _range_ms(v: Any) -> str | None:
    if (
        not isinstance(v, (list, tuple))
        or len(v) != 2
        or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in v)
        or v[0] > v[1]
    ):
        return "must be [low, high] milliseconds with 0 <= low <= high"
    return None


def _kind_section(r: _Reader, wd: dict, name: str, cls: type, checks: dict[str, Callable[[Any], str | None]]) -> Any:
    """``swarm.<name>``: one user kind's settings, each field checked, defaults from ``cls``."""
    data, path, default = r.section(wd, name, "swarm"), f"swarm.{name}", cls()
    r.unknown(data, tuple(checks), path)
    values = {k: r.get(data, k, path, getattr(default, k), check) for k, check in checks.items()}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def parse_scenario(data: Any, source: str = "scenario") -> Scenario:
    """Build a Scenario from plain data (a parsed YAML document), or raise ScenarioError."""
    r = _Reader()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError(source, [f"(top level): must be a mapping, got {_kind(data)}"])
    r.unknown(data, ("name", "seed", "sale", "backend", "redis", "swarm", "checker", "thresholds", "chaos", "faults"), "")

    d = Scenario()
    name = r.get(data, "name", "", d.name, lambda v: None if isinstance(v, str) and v else "must be a non-empty string")
    seed = r.get(data, "seed", "", d.seed, SEED_RANGE)

    sd = r.section(data, "sale", "")
    r.unknown(sd, tuple(f.name for f in dataclasses.fields(Sale)), "sale")
    sale = Sale(
        id=r.get(sd, "id", "sale", d.sale.id, lambda v: None if isinstance(v, str) and _SALE_ID.match(v) else "must match [A-Za-z0-9_-]{1,64}"),
        stock=r.get(sd, "stock", "sale", d.sale.stock, _int(0)),
        hold_ttl_ms=r.get(sd, "hold_ttl_ms", "sale", d.sale.hold_ttl_ms, _int(1, 86_400_000)),
        strategy=r.get(sd, "strategy", "sale", d.sale.strategy, _one_of(STRATEGIES)),
        per_user_limit=r.get(sd, "per_user_limit", "sale", d.sale.per_user_limit, _int(0)),
        pay_after_expiry=r.get(sd, "pay_after_expiry", "sale", d.sale.pay_after_expiry, _one_of(PAY_AFTER_EXPIRY)),
        refunds=r.get(sd, "refunds", "sale", d.sale.refunds, _bool),
        payment_delay_ms=r.get(sd, "payment_delay_ms", "sale", d.sale.payment_delay_ms, _int(0, 60_000)),
        warn_thresholds=tuple(r.get(sd, "warn_thresholds", "sale", d.sale.warn_thresholds, _thresholds)),
        scalper_policy=_policy(r, sd.get("scalper_policy"), "sale.scalper_policy"),
        async_orders=r.get(sd, "async_orders", "sale", d.sale.async_orders, _bool),
    )
    if sale.async_orders and sale.strategy not in ASYNC_STRATEGIES:
        r.problems.append(f"sale.async_orders: strategy {sale.strategy} cannot queue orders; "
                          f"use one of {', '.join(ASYNC_STRATEGIES)}")

    bd = r.section(data, "backend", "")
    r.unknown(bd, tuple(f.name for f in dataclasses.fields(Backend)), "backend")
    backend = Backend(
        nodes=r.get(bd, "nodes", "backend", d.backend.nodes, _int(1, 64)),
        url=r.get(bd, "url", "backend", None, _http_url),
        adapter=r.get(bd, "adapter", "backend", None, _adapter_spec),
        ledger=r.get(bd, "ledger", "backend", d.backend.ledger, _bool),
        sync_interval_ms=r.get(bd, "sync_interval_ms", "backend", d.backend.sync_interval_ms, _int(1, 60_000)),
        sync_delay_ms=r.get(bd, "sync_delay_ms", "backend", d.backend.sync_delay_ms, _int(0, 3_600_000)),
        order_workers=r.get(bd, "order_workers", "backend", d.backend.order_workers, _int(1, 64)),
        redis_timeout_ms=r.get(bd, "redis_timeout_ms", "backend", d.backend.redis_timeout_ms, _int(1, 600_000)),
    )

    rd = r.section(data, "redis", "")
    r.unknown(rd, tuple(f.name for f in dataclasses.fields(RedisConfig)), "redis")
    redis_cfg = RedisConfig(
        url=r.get(rd, "url", "redis", None, _redis_url),
        topology=r.get(rd, "topology", "redis", d.redis.topology, _one_of(TOPOLOGIES)),
        proxy=r.get(rd, "proxy", "redis", d.redis.proxy, _bool),
        persistence=r.get(rd, "persistence", "redis", d.redis.persistence, _one_of(PERSISTENCE)),
        replication_proxy=r.get(rd, "replication_proxy", "redis", d.redis.replication_proxy, _bool),
    )
    chaos_cfg, bad_chaos = parse_chaos(data.get("chaos"), "chaos")
    faults, bad_faults = parse_faults(data.get("faults"), "faults")
    r.problems.extend(bad_chaos + bad_faults)

    wd = r.section(data, "swarm", "")
    r.unknown(wd, tuple(f.name for f in dataclasses.fields(Swarm)), "swarm")
    mix_raw = r.get(wd, "mix", "swarm", dict(d.swarm.mix), lambda v: None if isinstance(v, dict) else "must be a mapping of user kind to weight")
    mix: dict[str, int] = {}
    for kind, weight in mix_raw.items():
        if kind not in USER_KINDS:
            r.problems.append(f"swarm.mix.{kind}: unknown user kind; known: {', '.join(USER_KINDS)}")
        elif (p := _int(0, 10_000)(weight)) is not None:
            r.problems.append(f"swarm.mix.{kind}: {p}, got {weight!r}")
        else:
            mix[kind] = weight
    if mix_raw and not any(mix.values()) and len(mix) == len(mix_raw):
        r.problems.append("swarm.mix: at least one user kind needs a weight above 0")

    byd = r.section(wd, "buyer", "swarm")
    r.unknown(byd, tuple(f.name for f in dataclasses.fields(BuyerConfig)), "swarm.buyer")
    buyer = BuyerConfig(
        qty=r.get(byd, "qty", "swarm.buyer", d.swarm.buyer.qty, _int(1, 1000)),
        wait_ms=tuple(r.get(byd, "wait_ms", "swarm.buyer", d.swarm.buyer.wait_ms, _range_ms)),
        pay_delay_ms=tuple(r.get(byd, "pay_delay_ms", "swarm.buyer", d.swarm.buyer.pay_delay_ms, _range_ms)),
        cancel_rate=r.get(byd, "cancel_rate", "swarm.buyer", d.swarm.buyer.cancel_rate, _num(0.0, 1.0)),
        browse_rate=r.get(byd, "browse_rate", "swarm.buyer", d.swarm.buyer.browse_rate, _num(0.0, 1.0)),
        pay_retries=r.get(byd, "pay_retries", "swarm.buyer", d.swarm.buyer.pay_retries, _int(0, 100)),
    )
    hd = r.section(wd, "hoarder", "swarm")
    r.unknown(hd, tuple(f.name for f in dataclasses.fields(HoarderConfig)), "swarm.hoarder")
    hoarder = HoarderConfig(
        qty=r.get(hd, "qty", "swarm.hoarder", d.swarm.hoarder.qty, _int(1, 1000)),
        wait_ms=tuple(r.get(hd, "wait_ms", "swarm.hoarder", d.swarm.hoarder.wait_ms, _range_ms)),
        burst=r.get(hd, "burst", "swarm.hoarder", d.swarm.hoarder.burst, _int(1, 100)),
        accounts=r.get(hd, "accounts", "swarm.hoarder", d.swarm.hoarder.accounts, _int(0, 100_000)),
        register_profiles=r.get(hd, "register_profiles", "swarm.hoarder", d.swarm.hoarder.register_profiles, _bool),
    )
    if hoarder.register_profiles and not hoarder.accounts:
        r.problems.append("swarm.hoarder.register_profiles: needs a farm of accounts (swarm.hoarder.accounts > 0)")
    qty, ms, share = _int(1, 1000), _range_ms, _num(0.0, 1.0)
    scalper = _kind_section(r, wd, "scalper", ScalperConfig, {
        "qty": qty, "wait_ms": ms, "pay_delay_ms": ms, "parallel": _int(1, 100), "retries": _int(0, 100),
        "accounts": _int(1, 100_000), "register_profiles": _bool})
    double_clicker = _kind_section(r, wd, "double_clicker", DoubleClickerConfig, {
        "qty": qty, "wait_ms": ms, "pay_delay_ms": ms, "clicks": _int(1, 20), "new_key_rate": share})
    late_payer = _kind_section(r, wd, "late_payer", LatePayerConfig, {"qty": qty, "wait_ms": ms, "late_ms": ms})
    simultaneous_payer = _kind_section(r, wd, "simultaneous_payer", SimultaneousPayerConfig, {
        "qty": qty, "lead_ms": _int(0, 600_000)})
    swarm = Swarm(
        users=r.get(wd, "users", "swarm", d.swarm.users, _int(1, 100_000)),
        spawn_rate=r.get(wd, "spawn_rate", "swarm", d.swarm.spawn_rate, _num(0.1, 100_000)),
        duration_s=r.get(wd, "duration_s", "swarm", d.swarm.duration_s, DURATION_RANGE),
        processes=r.get(wd, "processes", "swarm", d.swarm.processes, _int(1, 64)),
        request_timeout_s=r.get(wd, "request_timeout_s", "swarm", d.swarm.request_timeout_s, _num(0.05, 600)),
        mix=mix or dict(d.swarm.mix),
        buyer=buyer,
        hoarder=hoarder,
        scalper=scalper,
        double_clicker=double_clicker,
        late_payer=late_payer,
        simultaneous_payer=simultaneous_payer,
        stop_when_sold_out=r.get(wd, "stop_when_sold_out", "swarm", d.swarm.stop_when_sold_out, _bool),
    )

    cd = r.section(data, "checker", "")
    r.unknown(cd, tuple(f.name for f in dataclasses.fields(CheckerConfig)), "checker")
    checker = CheckerConfig(
        grace_ms=r.get(cd, "grace_ms", "checker", d.checker.grace_ms, _int(0, 3_600_000)),
        quiesce_timeout_s=r.get(cd, "quiesce_timeout_s", "checker", d.checker.quiesce_timeout_s, _num(0, 3600)),
        expect_sell_out=r.get(cd, "expect_sell_out", "checker", d.checker.expect_sell_out, _bool),
    )

    thresholds, threshold_problems = _thresholds_of(data.get("thresholds"))
    r.problems.extend(threshold_problems)

    if r.problems:
        raise ScenarioError(source, r.problems)
    scenario = Scenario(name=name, seed=seed, sale=sale, backend=backend, redis=redis_cfg, swarm=swarm,
                        checker=checker, thresholds=thresholds, chaos=chaos_cfg, faults=faults)
    cross = chaos_problems(scenario)  # topology options together, fault roles against the topology
    if cross:
        raise ScenarioError(source, cross)
    return scenario


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping.

    Plain YAML loading keeps the last of two equal keys, so a threshold or a fault
    written twice would silently lose the first one.
    """

    def construct_mapping(self, node, deep=False):  # type: ignore[no-untyped-def]
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *base``: merged keys may be overridden
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # an unhashable key: SafeLoader's own check reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping", node.start_mark, f"key {key!r} is given twice", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ScenarioError(str(path), [f"(file): cannot read: {e.strerror or e}"]) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise ScenarioError(str(path), [f"{where}: not valid YAML: {getattr(e, 'problem', e)}"]) from None


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario YAML file."""
    return parse_scenario(_read_yaml(path), str(path))


def load_thresholds(path: Path) -> dict[str, tuple[str, ...]]:
    """The ``thresholds:`` mapping of a YAML file (a scenario file will do), validated.

    Usage::

        scenario = dataclasses.replace(scenario, thresholds=load_thresholds(Path("strict.yaml")))
    """
    data = _read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("thresholds"), dict):
        raise ScenarioError(str(path), ["thresholds: the file needs a top-level 'thresholds:' mapping "
                                        "(metric: [expressions])"])
    thresholds, problems = _thresholds_of(data["thresholds"])
    if problems:
        raise ScenarioError(str(path), problems)
    return thresholds


def _thresholds_of(raw: Any) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """A ``thresholds:`` mapping as the scenario keeps it (empty when it has problems), and its problems."""
    _specs, problems = parse_thresholds(raw, "thresholds")
    return ({} if problems else {str(k): tuple(v) for k, v in (raw or {}).items()}), problems


def dump_scenario(scenario: Scenario) -> str:
    """The scenario as YAML, with everything filled in, for the run directory (replay)."""
    return yaml.safe_dump(scenario.to_dict(), sort_keys=False)
