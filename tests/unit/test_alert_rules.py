"""The alert state machine (pure): for, hysteresis, silences, inhibition; rules refuse bad input."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from pressfleet.alerts.automations import level_reached, policy_automations
from pressfleet.alerts.rules import DEFAULT_RULES, Observation, Resource, Rule, Silence, evaluate

pytestmark = pytest.mark.unit

SITE = Resource("site", "blog", server="web1", address="blog.lab.test")
SERVER = Resource("server", "web1", address="10.0.0.2")
DOWN = next(r for r in DEFAULT_RULES if r.name == "site-down")
SERVER_DOWN = next(r for r in DEFAULT_RULES if r.name == "server-down")


def run(rules, resources, rounds, silences=()):
    """rounds: list of (time, {(resource_id, check): value}) -> list of (time, event, rule, resource)."""
    states, out = {}, []
    for t, values in rounds:
        obs = {k: Observation(v) for k, v in values.items()}
        rnd = evaluate(rules, resources, obs, states, t, silences)
        states = rnd.states
        out += [(t, n.event, n.rule.name, n.resource.name) for n in rnd.notices]
    return out, states


def site_up(v):
    return {(SITE.resource_id, "site_up"): v}


def test_down_then_up_fires_once_and_resolves_after_the_hysteresis():
    rounds = [(0, site_up(1)), (30, site_up(0)), (60, site_up(0)), (90, site_up(1)), (120, site_up(1)),
              (150, site_up(1))]
    events, _ = run([DOWN], [SITE], rounds)
    assert events == [(30, "firing", "site-down", "blog"), (150, "resolved", "site-down", "blog")]


def test_flapping_every_10_s_probed_every_30_s_gives_one_alert():
    # up 10 s, down 10 s: a probe every 30 s sees down, up, down, up ... never clear for 55 s
    rounds = [(t, site_up(0 if (t // 10) % 2 else 1)) for t in range(10, 600, 30)]
    events, _ = run([DOWN], [SITE], rounds)
    assert [e[1] for e in events] == ["firing"]


@given(st.lists(st.booleans(), min_size=1, max_size=80))
def test_firing_and_resolved_alternate_and_start_with_firing(ups):
    rounds = [(i * 30.0, site_up(1 if up else 0)) for i, up in enumerate(ups)]
    events, _ = run([DOWN], [SITE], rounds)
    kinds = [e[1] for e in events]
    assert kinds == ["firing", "resolved"] * (len(kinds) // 2) + ["firing"] * (len(kinds) % 2)
    assert ("firing" in kinds) == (not all(ups))


def test_for_duration_holds_back_a_short_blip():
    slow = Rule(name="slow", check="ttfb_seconds", comparison=">", threshold=3, for_seconds=300)
    key = (SITE.resource_id, "ttfb_seconds")
    events, _ = run([slow], [SITE], [(0, {key: 5}), (100, {key: 5}), (200, {key: 1}), (300, {key: 5})])
    assert events == []
    events, _ = run([slow], [SITE], [(0, {key: 5}), (150, {key: 5}), (300, {key: 5})])
    assert [e[:2] for e in events] == [(300, "firing")]


def test_no_data_neither_fires_nor_resolves():
    events, states = run([DOWN], [SITE], [(0, site_up(0)), (30, {}), (60, {}), (90, {})])
    assert [e[1] for e in events] == ["firing"] and states[("site-down", SITE.resource_id)].status == "firing"


def test_a_silence_suppresses_and_the_alert_is_told_once_it_ends():
    sil = Silence(id="s-1", kind="site", target="blog", until=100, reason="maintenance")
    events, _ = run([DOWN], [SITE], [(0, site_up(0)), (30, site_up(0)), (120, site_up(0))], [sil])
    assert events == [(120, "firing", "site-down", "blog")]


def test_a_down_server_inhibits_its_sites_one_message_not_one_per_site():
    sites = [Resource("site", f"s{i}", server="web1", address=f"s{i}.lab.test") for i in range(5)]
    values = {(s.resource_id, "site_up"): 0 for s in sites} | {(SERVER.resource_id, "ssh_up"): 0}
    events, _ = run([DOWN, SERVER_DOWN], [SERVER, *sites], [(0, values)])
    assert events == [(0, "firing", "server-down", "web1")]


def test_rules_refuse_bad_input_clearly():
    with pytest.raises(ValueError, match="unknown check 'nonsense'"):
        Rule(name="x", check="nonsense")
    with pytest.raises(ValueError, match="rule name"):
        Rule(name="Bad Name", check="site_up")
    with pytest.raises(ValueError, match="server check"):
        Rule(name="x", check="ssh_up", sites=["blog"])
    with pytest.raises(ValueError):
        Rule(name="x", check="site_up", sites=["../etc"])


def test_escalation_levels_as_automations():
    from uuid import uuid4

    a, b = uuid4(), uuid4()
    specs = policy_automations("default", [(0, [a]), (15, [b]), (30, [])])
    names = [s["name"] for s in specs]
    assert names == ["pressfleet-alerts/default/level-1", "pressfleet-alerts/default/resolved-1",
                     "pressfleet-alerts/default/level-2", "pressfleet-alerts/default/resolved-2"]
    l2 = specs[2]["trigger"]
    assert l2["posture"] == "Proactive" and l2["within"] == 900 and l2["for_each"] == ["pressfleet.alert.id"]
    assert set(l2["expect"]) == {"pressfleet.alert.acked", "pressfleet.alert.resolved"}
    assert specs[3]["trigger"]["match"]["pressfleet.alert.level"] == ["2", "3"]
    from prefect.events.schemas.automations import AutomationCore

    for s in specs:
        AutomationCore.model_validate(s)


def test_level_reached():
    assert level_reached([0, 15, 30], 0, 10 * 60, None) == 1
    assert level_reached([0, 15, 30], 0, 20 * 60, None) == 2
    assert level_reached([0, 15, 30], 0, 40 * 60, None) == 3
    assert level_reached([0, 15, 30], 0, 40 * 60, acked_at=5 * 60) == 1
