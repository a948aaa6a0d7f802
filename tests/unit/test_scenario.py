"""The scenario model: defaults, every problem listed with its path, overrides, round trip."""

from __future__ import annotations

import pytest
import yaml
from paths import REPO

from oversold.errors import ScenarioError
from oversold.model.scenario import Scenario
from oversold.model.scenario_file import dump_scenario, load_scenario, parse_scenario


def problems_of(data) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, "t.yaml")
    return info.value.problems


def test_shipped_scenario_loads_with_its_values():
    s = load_scenario(REPO / "scenarios" / "flash_sale.yaml")
    assert s.sale.id == "moutai"
    assert s.sale.stock == 500
    assert s.sale.strategy == "pre_deduct"
    assert s.swarm.mix == {"buyer": 4, "hoarder": 1}
    assert s.seed == 42


def test_empty_document_gives_defaults():
    assert parse_scenario(None) == Scenario()
    assert parse_scenario({}) == Scenario()


def test_every_problem_is_listed_with_its_field_path():
    problems = problems_of(
        {
            "seed": "x",
            "sale": {"stock": -1, "strategy": "magic", "hold_ttl_ms": 0, "colour": "red"},
            "swarm": {"users": 0, "mix": {"troll": 3, "buyer": -2}, "buyer": {"wait_ms": [5, 1]}},
            "checker": {"grace_ms": 1.5},
            "extra": 1,
        }
    )
    paths = sorted(p.split(":")[0] for p in problems)
    assert paths == sorted(
        [
            "seed", "sale.stock", "sale.strategy", "sale.hold_ttl_ms", "sale.colour", "swarm.users",
            "swarm.mix.troll", "swarm.mix.buyer", "swarm.buyer.wait_ms", "checker.grace_ms", "extra",
        ]
    )


def test_booleans_are_not_integers():
    assert [p.split(":")[0] for p in problems_of({"sale": {"stock": True}})] == ["sale.stock"]


def test_sections_must_be_mappings():
    assert problems_of({"sale": [1, 2]}) == ["sale: must be a mapping, got list"]
    assert problems_of([1]) == ["(top level): must be a mapping, got list"]


def test_all_zero_mix_is_refused():
    assert problems_of({"swarm": {"mix": {"buyer": 0, "hoarder": 0}}}) == [
        "swarm.mix: at least one user kind needs a weight above 0"
    ]


def test_bad_yaml_names_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("sale:\n  stock: [1,\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert "line" in info.value.problems[0] and "not valid YAML" in info.value.problems[0]


@pytest.mark.parametrize("text, where, key", [
    # a stricter threshold written first would be silently replaced by the looser one
    ('thresholds:\n  latency.order: ["p(99)<1"]\n  latency.order: ["p(99)<100000"]\n', "line 3, column 3",
     "'latency.order'"),
    ("sale:\n  stock: 5\n  hold_ttl_ms: 1000\n  stock: 500\n", "line 4, column 3", "'stock'"),
    ("name: a\nname: b\n", "line 2, column 1", "'name'"),
])
def test_a_key_given_twice_is_refused_with_its_line(tmp_path, text, where, key):
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.problems == [f"{where}: not valid YAML: key {key} is given twice"]


def test_merge_keys_still_work_and_a_written_key_may_override_a_merged_one(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("sale: {stock: 7, hold_ttl_ms: 1000}\n"
                    "checker:\n  <<: {grace_ms: 2000, quiesce_timeout_s: 9}\n  grace_ms: 500\n")
    s = load_scenario(path)
    assert (s.sale.stock, s.checker.grace_ms, s.checker.quiesce_timeout_s) == (7, 500, 9)


def test_equal_keys_in_different_mappings_are_fine(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("name: same\nsale:\n  stock: 3\nswarm:\n  users: 3\n")
    assert load_scenario(path).sale.stock == 3


def test_missing_file_is_bad_input(tmp_path):
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "nope.yaml")
    assert "cannot read" in info.value.problems[0]


def test_overrides():
    s = Scenario().with_overrides(strategy="naive", seed=9, redis_url="redis://127.0.0.1:1/0", duration_s=3)
    assert (s.sale.strategy, s.seed, s.redis.url, s.swarm.duration_s) == ("naive", 9, "redis://127.0.0.1:1/0", 3.0)
    with pytest.raises(ScenarioError):
        Scenario().with_overrides(strategy="nope")


@pytest.mark.parametrize("override, problem", [
    ({"duration_s": -5.0}, "--duration: -5.0 must be a number from 1 to 86400"),
    ({"duration_s": 0.5}, "--duration: 0.5 must be a number from 1 to 86400"),
    ({"duration_s": 86_401}, "--duration: 86401 must be a number from 1 to 86400"),
    ({"seed": -1}, "--seed: -1 must be an integer from 0 to 2147483647"),
    ({"seed": 2**31}, "--seed: 2147483648 must be an integer from 0 to 2147483647"),
    ({"redis_url": "http://127.0.0.1:6379"},
     "--redis-url: 'http://127.0.0.1:6379' must be a Redis URL (redis://…, rediss://… or redis+sentinel://…)"),
])
def test_an_override_is_checked_like_the_field_it_replaces(override, problem):
    with pytest.raises(ScenarioError) as info:
        Scenario().with_overrides(**override)
    assert info.value.problems == [problem]


def test_the_adapter_is_a_module_and_class_name():
    s = parse_scenario({"backend": {"url": "http://127.0.0.1:9", "adapter": "mypkg.adapters:MyShop"}})
    assert s.backend.adapter == "mypkg.adapters:MyShop" and Scenario().backend.adapter is None
    assert Scenario().with_overrides(adapter="a.b:C").backend.adapter == "a.b:C"
    for bad in ("mypkg.adapters", "mypkg:", ":MyShop", "my-pkg:Shop", "a.b:C.D", 7):
        with pytest.raises(ScenarioError) as info:
            parse_scenario({"backend": {"adapter": bad}})
        assert info.value.problems[0].startswith("backend.adapter: must be 'package.module:ClassName'"), bad
    with pytest.raises(ScenarioError) as info:
        Scenario().with_overrides(adapter="nope")
    assert info.value.problems == ["--adapter: 'nope' must be 'package.module:ClassName' "
                                   "(an oversold.adapters.Adapter subclass)"]


def test_dump_round_trips():
    s = load_scenario(REPO / "scenarios" / "flash_sale.yaml").with_overrides(seed=5)
    assert parse_scenario(yaml.safe_load(dump_scenario(s))) == s


def test_protection_settings_are_parsed_and_become_the_sale_body():
    s = parse_scenario({"sale": {"strategy": "payment_deduct", "refunds": False, "payment_delay_ms": 50,
                                 "warn_thresholds": [100, 10, 0], "scalper_policy": {"suspect_limit": 2}}})
    assert s.sale.warn_thresholds == (100, 10, 0)
    assert s.sale.settings() == {
        "stock": 500, "hold_ttl_ms": 3000, "strategy": "payment_deduct", "per_user_limit": 0,
        "pay_after_expiry": "refuse", "refunds": False, "payment_delay_ms": 50, "warn_thresholds": [100, 10, 0],
        "scalper_policy": {"suspect_limit": 2},
    }
    assert "scalper_policy" not in Scenario().sale.settings()  # no policy unless one is asked for
    assert parse_scenario(yaml.safe_load(dump_scenario(s))) == s
    for strategy in ("order_deduct", "payment_deduct"):
        assert Scenario().with_overrides(strategy=strategy).sale.strategy == strategy


def test_protection_settings_problems_name_their_fields():
    problems = problems_of({"sale": {"refunds": "yes", "payment_delay_ms": 60_001, "warn_thresholds": [5, 5],
                                     "scalper_policy": {"low_activity": 2, "colour": 1, "suspect_limit": 0}}})
    assert sorted(p.split(":")[0] for p in problems) == sorted([
        "sale.refunds", "sale.payment_delay_ms", "sale.warn_thresholds", "sale.scalper_policy.low_activity",
        "sale.scalper_policy.colour", "sale.scalper_policy.suspect_limit"])
    assert problems_of({"sale": {"scalper_policy": [1]}}) == ["sale.scalper_policy: must be a mapping, got list"]


def test_warehouse_and_async_settings():
    s = parse_scenario({"sale": {"strategy": "pre_deduct_ledger", "async_orders": True},
                        "backend": {"sync_interval_ms": 50, "sync_delay_ms": 200, "order_workers": 3}})
    assert s.uses_ledger and s.sale.settings()["async_orders"] is True
    assert (s.backend.ledger, s.backend.sync_interval_ms, s.backend.sync_delay_ms, s.backend.order_workers) == (
        False, 50, 200, 3)
    assert parse_scenario(yaml.safe_load(dump_scenario(s))) == s
    assert not Scenario().uses_ledger and "async_orders" not in Scenario().sale.settings()
    assert parse_scenario({"backend": {"ledger": True}}).uses_ledger  # any strategy, synced to a warehouse
    with pytest.raises(ScenarioError, match="cannot queue orders"):
        s.with_overrides(strategy="naive")


def test_warehouse_and_async_problems_name_their_fields():
    problems = problems_of({"sale": {"strategy": "order_deduct", "async_orders": "yes"},
                            "backend": {"ledger": 1, "sync_delay_ms": -1, "order_workers": 0, "sync": 1}})
    assert sorted(p.split(":")[0] for p in problems) == sorted([
        "sale.async_orders", "backend.ledger", "backend.sync_delay_ms", "backend.order_workers", "backend.sync"])
    assert problems_of({"sale": {"strategy": "naive", "async_orders": True}}) == [
        "sale.async_orders: strategy naive cannot queue orders; use one of pre_deduct, pre_deduct_ledger, "
        "pre_deduct_coalesced"]


def test_each_url_field_takes_only_its_own_kind_of_url():
    assert problems_of({"redis": {"url": "http://127.0.0.1:6379"}}) == [
        "redis.url: must be a Redis URL (redis://…, rediss://… or redis+sentinel://…), got 'http://127.0.0.1:6379'"]
    assert problems_of({"backend": {"url": "redis://127.0.0.1:6379"}}) == [
        "backend.url: must be an http://host[:port] URL of your backend, got 'redis://127.0.0.1:6379'"]
    ok = parse_scenario({"redis": {"url": "redis+sentinel://127.0.0.1:26379/m"}, "backend": {"url": "http://127.0.0.1:8"}})
    assert (ok.redis.url, ok.backend.url) == ("redis+sentinel://127.0.0.1:26379/m", "http://127.0.0.1:8")



def _leaves(node, path=()):
    """(dotted path, value node) of every scalar or list value of a composed YAML mapping."""
    for key, value in node.value:
        p = (*path, key.value)
        if isinstance(value, yaml.MappingNode):
            yield from _leaves(value, p)
        else:
            yield ".".join(p), value


def test_the_shipped_flash_sale_says_where_it_differs_from_the_defaults():
    path = REPO / "scenarios" / "flash_sale.yaml"
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    defaults = Scenario().to_dict()
    loaded = load_scenario(path).to_dict()
    checked = 0
    for dotted, node in _leaves(yaml.compose(text)):
        if dotted.startswith("thresholds") or isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            continue  # the thresholds are the example's own (none by default); an empty section is the default
        want, got = defaults, loaded
        for part in dotted.split("."):
            want, got = want[part], got[part]
        comment = lines[node.start_mark.line].partition("#")[2]
        if want == got:
            assert "not the default" not in comment, f"{dotted}: says it is not the default, but it is"
        else:
            said = comment.partition("not the default (")[2].rpartition(")")[0]
            assert said and yaml.safe_load(said) == want, f"{dotted}: {got!r} is not the default {want!r}"
        checked += 1
    assert checked >= 20


def test_the_strategy_comment_names_only_real_strategies_and_run_help_lists_them_all(capsys):
    from oversold.cli import build_parser
    from oversold.model.scenario import STRATEGIES

    line = next(ln for ln in (REPO / "scenarios" / "flash_sale.yaml").read_text().splitlines()
                if ln.strip().startswith("strategy:"))
    named = {w for w in line.replace(",", " ").replace("(", " ").split() if "_" in w or w == "naive"}
    assert named and named <= set(STRATEGIES)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert all(s in help_text for s in STRATEGIES)


def test_an_empty_scenario_file_is_an_error_not_a_full_default_sale(tmp_path):
    for body in ("", "# only a comment\n"):
        path = tmp_path / "empty.yaml"
        path.write_text(body)
        with pytest.raises(ScenarioError) as info:
            load_scenario(path)
        assert "the file is empty" in str(info.value) and str(path) in str(info.value)
