"""The scenario file: YAML in, a validated ``Scenario`` out, and back to YAML for the run directory.

Every problem of a scenario is collected, each with its field path, and raised
together as one ``ScenarioError`` so a user fixes them in one go. A key given
twice in one mapping is a problem too (plain YAML would keep the last one).

Usage::

    scenario = load_scenario(Path("scenarios/flash_sale.yaml"))
    (run_dir / "scenario.yaml").write_text(dump_scenario(scenario))
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import yaml

from oversold.errors import ScenarioError

from .checks import (
    DURATION_RANGE,
    SEED_RANGE,
    adapter_spec,
    boolean,
    http_url,
    int_in,
    number_in,
    one_of,
    range_ms,
    redis_url,
    warn_thresholds,
)
from .expect import EXPECT_VERDICTS, INVARIANT_NAMES, Expectation
from .fault_spec import PERSISTENCE, TOPOLOGIES, parse_chaos, parse_faults
from .roles import chaos_problems
from .scenario import (
    _SALE_ID,
    ASYNC_STRATEGIES,
    LEDGER_STRATEGIES,
    PAY_AFTER_EXPIRY,
    STRATEGIES,
    UNSYNCED_STRATEGIES,
    USER_KINDS,
    AdminConfig,
    Backend,
    BuyerConfig,
    CheckerConfig,
    DoubleClickerConfig,
    HoarderConfig,
    LatePayerConfig,
    MindChangerConfig,
    RedisConfig,
    Sale,
    ScalperConfig,
    Scenario,
    SessionsConfig,
    SimultaneousPayerConfig,
    Swarm,
)
from .thresholds import parse_thresholds


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


def _policy(r: "_Reader", value: Any, path: str) -> dict[str, Any] | None:
    """``sale.scalper_policy``: null, or a mapping of the backend's policy fields (each checked)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        r.problems.append(f"{path}: must be a mapping, got {_kind(value)}")
        return None
    checks = {
        "enabled": boolean, "few_purchases": int_in(0), "new_account_days": int_in(0), "low_activity": number_in(0.0, 1.0),
        "new_member_days": int_in(0), "suspect_limit": int_in(1),
    }
    r.unknown(value, tuple(checks), path)
    return {k: r.get(value, k, path, None, check) for k, check in checks.items() if k in value}


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
    r.unknown(data, ("name", "seed", "sale", "backend", "redis", "swarm", "checker", "thresholds", "chaos", "faults",
                    "expect"), "")

    d = Scenario()
    name = r.get(data, "name", "", d.name, lambda v: None if isinstance(v, str) and v else "must be a non-empty string")
    seed = r.get(data, "seed", "", d.seed, SEED_RANGE)

    sd = r.section(data, "sale", "")
    r.unknown(sd, tuple(f.name for f in dataclasses.fields(Sale)), "sale")
    sale = Sale(
        id=r.get(sd, "id", "sale", d.sale.id, lambda v: None if isinstance(v, str) and _SALE_ID.match(v) else "must match [A-Za-z0-9_-]{1,64}"),
        stock=r.get(sd, "stock", "sale", d.sale.stock, int_in(0)),
        hold_ttl_ms=r.get(sd, "hold_ttl_ms", "sale", d.sale.hold_ttl_ms, int_in(1, 86_400_000)),
        strategy=r.get(sd, "strategy", "sale", d.sale.strategy, one_of(STRATEGIES)),
        per_user_limit=r.get(sd, "per_user_limit", "sale", d.sale.per_user_limit, int_in(0)),
        pay_after_expiry=r.get(sd, "pay_after_expiry", "sale", d.sale.pay_after_expiry, one_of(PAY_AFTER_EXPIRY)),
        refunds=r.get(sd, "refunds", "sale", d.sale.refunds, boolean),
        payment_delay_ms=r.get(sd, "payment_delay_ms", "sale", d.sale.payment_delay_ms, int_in(0, 60_000)),
        warn_thresholds=tuple(r.get(sd, "warn_thresholds", "sale", d.sale.warn_thresholds, warn_thresholds)),
        scalper_policy=_policy(r, sd.get("scalper_policy"), "sale.scalper_policy"),
        async_orders=r.get(sd, "async_orders", "sale", d.sale.async_orders, boolean),
        buckets=r.get(sd, "buckets", "sale", d.sale.buckets, int_in(1, 256)),
    )
    if sale.async_orders and sale.strategy not in ASYNC_STRATEGIES:
        r.problems.append(f"sale.async_orders: strategy {sale.strategy} cannot queue orders; "
                          f"use one of {', '.join(ASYNC_STRATEGIES)}")

    bd = r.section(data, "backend", "")
    r.unknown(bd, tuple(f.name for f in dataclasses.fields(Backend)), "backend")
    backend = Backend(
        nodes=r.get(bd, "nodes", "backend", d.backend.nodes, int_in(1, 64)),
        url=r.get(bd, "url", "backend", None, http_url),
        adapter=r.get(bd, "adapter", "backend", None, adapter_spec),
        adapter_options=r.get(bd, "adapter_options", "backend", None,
                              lambda v: None if isinstance(v, dict) and all(isinstance(k, str) for k in v)
                              else "must be a mapping of option name to value"),
        ledger=r.get(bd, "ledger", "backend", d.backend.ledger, boolean),
        sync_interval_ms=r.get(bd, "sync_interval_ms", "backend", d.backend.sync_interval_ms, int_in(1, 60_000)),
        sync_delay_ms=r.get(bd, "sync_delay_ms", "backend", d.backend.sync_delay_ms, int_in(0, 3_600_000)),
        order_workers=r.get(bd, "order_workers", "backend", d.backend.order_workers, int_in(1, 64)),
        redis_timeout_ms=r.get(bd, "redis_timeout_ms", "backend", d.backend.redis_timeout_ms, int_in(1, 600_000)),
    )
    if backend.ledger and sale.strategy in UNSYNCED_STRATEGIES:
        r.problems.append(f"backend.ledger: strategy {sale.strategy} cannot be synced with the warehouse ledger")

    rd = r.section(data, "redis", "")
    r.unknown(rd, tuple(f.name for f in dataclasses.fields(RedisConfig)), "redis")
    redis_cfg = RedisConfig(
        url=r.get(rd, "url", "redis", None, redis_url),
        topology=r.get(rd, "topology", "redis", d.redis.topology, one_of(TOPOLOGIES)),
        proxy=r.get(rd, "proxy", "redis", d.redis.proxy, boolean),
        persistence=r.get(rd, "persistence", "redis", d.redis.persistence, one_of(PERSISTENCE)),
        replication_proxy=r.get(rd, "replication_proxy", "redis", d.redis.replication_proxy, boolean),
        shards=r.get(rd, "shards", "redis", d.redis.shards, int_in(1, 16)),
    )
    chaos_cfg, bad_chaos = parse_chaos(data.get("chaos"), "chaos")
    faults, bad_faults = parse_faults(data.get("faults"), "faults", chaos_cfg.user_roles(),
                                          chaos_cfg.role_notes())
    r.problems.extend(bad_chaos + bad_faults)

    wd = r.section(data, "swarm", "")
    r.unknown(wd, tuple(f.name for f in dataclasses.fields(Swarm)), "swarm")
    mix_raw = r.get(wd, "mix", "swarm", dict(d.swarm.mix), lambda v: None if isinstance(v, dict) else "must be a mapping of user kind to weight")
    mix: dict[str, int] = {}
    for kind, weight in mix_raw.items():
        if kind not in USER_KINDS:
            r.problems.append(f"swarm.mix.{kind}: unknown user kind; known: {', '.join(USER_KINDS)}")
        elif (p := int_in(0, 10_000)(weight)) is not None:
            r.problems.append(f"swarm.mix.{kind}: {p}, got {weight!r}")
        else:
            mix[kind] = weight
    if mix_raw and not any(mix.values()) and len(mix) == len(mix_raw):
        r.problems.append("swarm.mix: at least one user kind needs a weight above 0")

    byd = r.section(wd, "buyer", "swarm")
    r.unknown(byd, tuple(f.name for f in dataclasses.fields(BuyerConfig)), "swarm.buyer")
    buyer = BuyerConfig(
        qty=r.get(byd, "qty", "swarm.buyer", d.swarm.buyer.qty, int_in(1, 1000)),
        wait_ms=tuple(r.get(byd, "wait_ms", "swarm.buyer", d.swarm.buyer.wait_ms, range_ms)),
        pay_delay_ms=tuple(r.get(byd, "pay_delay_ms", "swarm.buyer", d.swarm.buyer.pay_delay_ms, range_ms)),
        cancel_rate=r.get(byd, "cancel_rate", "swarm.buyer", d.swarm.buyer.cancel_rate, number_in(0.0, 1.0)),
        browse_rate=r.get(byd, "browse_rate", "swarm.buyer", d.swarm.buyer.browse_rate, number_in(0.0, 1.0)),
        pay_retries=r.get(byd, "pay_retries", "swarm.buyer", d.swarm.buyer.pay_retries, int_in(0, 100)),
    )
    hd = r.section(wd, "hoarder", "swarm")
    r.unknown(hd, tuple(f.name for f in dataclasses.fields(HoarderConfig)), "swarm.hoarder")
    hoarder = HoarderConfig(
        qty=r.get(hd, "qty", "swarm.hoarder", d.swarm.hoarder.qty, int_in(1, 1000)),
        wait_ms=tuple(r.get(hd, "wait_ms", "swarm.hoarder", d.swarm.hoarder.wait_ms, range_ms)),
        burst=r.get(hd, "burst", "swarm.hoarder", d.swarm.hoarder.burst, int_in(1, 100)),
        accounts=r.get(hd, "accounts", "swarm.hoarder", d.swarm.hoarder.accounts, int_in(0, 100_000)),
        register_profiles=r.get(hd, "register_profiles", "swarm.hoarder", d.swarm.hoarder.register_profiles, boolean),
    )
    if hoarder.register_profiles and not hoarder.accounts:
        r.problems.append("swarm.hoarder.register_profiles: needs a farm of accounts (swarm.hoarder.accounts > 0)")
    qty, ms, share = int_in(1, 1000), range_ms, number_in(0.0, 1.0)
    scalper = _kind_section(r, wd, "scalper", ScalperConfig, {
        "qty": qty, "wait_ms": ms, "pay_delay_ms": ms, "parallel": int_in(1, 100), "retries": int_in(0, 100),
        "accounts": int_in(1, 100_000), "register_profiles": boolean})
    double_clicker = _kind_section(r, wd, "double_clicker", DoubleClickerConfig, {
        "qty": qty, "wait_ms": ms, "pay_delay_ms": ms, "clicks": int_in(1, 20), "new_key_rate": share})
    late_payer = _kind_section(r, wd, "late_payer", LatePayerConfig, {"qty": qty, "wait_ms": ms, "late_ms": ms})
    simultaneous_payer = _kind_section(r, wd, "simultaneous_payer", SimultaneousPayerConfig, {
        "qty": qty, "lead_ms": int_in(0, 600_000)})
    sessions = _kind_section(r, wd, "sessions", SessionsConfig, {
        "qty": qty, "sessions": int_in(1, 100), "wait_ms": ms, "pay_delay_ms": ms})
    mind_changer = _kind_section(r, wd, "mind_changer", MindChangerConfig, {
        "qty": qty, "wait_ms": ms, "pay_delay_ms": ms})
    admin = _kind_section(r, wd, "admin", AdminConfig, {
        "wait_ms": ms, "refunds": boolean, "restock_qty": int_in(0, 1_000_000),
        "in_transit_qty": int_in(0, 1_000_000)})
    swarm = Swarm(
        users=r.get(wd, "users", "swarm", d.swarm.users, int_in(1, 100_000)),
        spawn_rate=r.get(wd, "spawn_rate", "swarm", d.swarm.spawn_rate, number_in(0.1, 100_000)),
        duration_s=r.get(wd, "duration_s", "swarm", d.swarm.duration_s, DURATION_RANGE),
        processes=r.get(wd, "processes", "swarm", d.swarm.processes, int_in(1, 64)),
        request_timeout_s=r.get(wd, "request_timeout_s", "swarm", d.swarm.request_timeout_s, number_in(0.05, 600)),
        mix=mix or dict(d.swarm.mix),
        buyer=buyer,
        hoarder=hoarder,
        scalper=scalper,
        double_clicker=double_clicker,
        late_payer=late_payer,
        simultaneous_payer=simultaneous_payer,
        sessions=sessions,
        mind_changer=mind_changer,
        admin=admin,
        stop_when_sold_out=r.get(wd, "stop_when_sold_out", "swarm", d.swarm.stop_when_sold_out, boolean),
    )

    cd = r.section(data, "checker", "")
    r.unknown(cd, tuple(f.name for f in dataclasses.fields(CheckerConfig)), "checker")
    checker = CheckerConfig(
        grace_ms=r.get(cd, "grace_ms", "checker", d.checker.grace_ms, int_in(0, 3_600_000)),
        quiesce_timeout_s=r.get(cd, "quiesce_timeout_s", "checker", d.checker.quiesce_timeout_s, number_in(0, 3600)),
        expect_sell_out=r.get(cd, "expect_sell_out", "checker", d.checker.expect_sell_out, boolean),
    )

    thresholds, threshold_problems = _thresholds_of(data.get("thresholds"))
    r.problems.extend(threshold_problems)

    expect = _expect(r, data, sale.strategy)
    if mix.get("admin") and (admin.restock_qty or admin.in_transit_qty) and not (
            backend.ledger or sale.strategy in LEDGER_STRATEGIES):
        r.problems.append("swarm.admin: restock_qty / in_transit_qty change warehouse stock, which needs the "
                          "warehouse ledger (backend.ledger: true or strategy pre_deduct_ledger)")

    if r.problems:
        raise ScenarioError(source, r.problems)
    scenario = Scenario(name=name, seed=seed, sale=sale, backend=backend, redis=redis_cfg, swarm=swarm,
                        checker=checker, thresholds=thresholds, chaos=chaos_cfg, faults=faults, expect=expect)
    cross = chaos_problems(scenario)  # topology options together, fault roles against the topology
    if cross:
        raise ScenarioError(source, cross)
    return scenario


def _names(r: _Reader, value: Any, path: str) -> tuple[str, ...]:
    """One invariant name or a list of them, each a name the checker knows."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        r.problems.append(f"{path}: must be an invariant name or a list of them, got {value!r}")
        return ()
    for n in names:
        if n not in INVARIANT_NAMES:
            r.problems.append(f"{path}: {n!r} is not an invariant; known: {', '.join(INVARIANT_NAMES)}")
    return tuple(names)


def _expect(r: _Reader, data: dict, strategy: str) -> Expectation:
    """``expect:``: the verdict the scenario expects; a failure names the invariant(s) that must fail."""
    ed = r.section(data, "expect", "")
    if not ed:
        return Expectation()
    r.unknown(ed, ("verdict", "invariant", "may_also_fail", "strategy"), "expect")
    verdict = r.get(ed, "verdict", "expect", None, one_of(EXPECT_VERDICTS))
    if "verdict" not in ed:
        r.problems.append(f"expect.verdict: missing; one of {', '.join(EXPECT_VERDICTS)}")
    named = _names(r, ed["invariant"], "expect.invariant") if "invariant" in ed else ()
    also = _names(r, ed["may_also_fail"], "expect.may_also_fail") if "may_also_fail" in ed else ()
    for_strategy = strategy if ed.get("strategy") is None else r.get(ed, "strategy", "expect", strategy,
                                                                      one_of(STRATEGIES))
    if verdict == "fail" and not named:
        r.problems.append("expect.invariant: an expected failure names the invariant(s) that must fail")
    if verdict == "pass" and (named or also):
        r.problems.append("expect: an expected pass names no invariants (invariant, may_also_fail are for fail)")
    if verdict != "fail":
        return Expectation()
    return Expectation(verdict=verdict, invariant=named, may_also_fail=also, strategy=for_strategy)


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
    """Read and validate a scenario YAML file; an empty one is an error, not a full default sale."""
    data = _read_yaml(path)
    if data is None:
        # most likely the wrong file, or one truncated: running a 500-unit sale would hide it
        raise ScenarioError(str(path), ["(top level): the file is empty (or only comments); a scenario needs at "
                                        "least one setting (`name: my_sale` runs every default)"])
    return parse_scenario(data, str(path))


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
