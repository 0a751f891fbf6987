"""Plugins are checked against the extension-point protocols: at registration (a class must implement at least one
extension point, and each one completely) and when a profile configures them at an extension point (kube-scheduler's
"plugin %q does not extend %s plugin")."""

from __future__ import annotations

import re

import pytest

from master.scheduler import framework as fw
from master.scheduler.framework import SUCCESS, CycleState, Framework, check_plugin, register
from master.scheduler.plugins import DEFAULT_BINDERS, DEFAULT_FILTERS, DEFAULT_SCORES
from master.scheduler.podinfo import PodInfo
from master.scheduler.testing import make_node, make_pod, table


@pytest.fixture
def registry(monkeypatch):
    """A copy of the registry for the test, so plugins registered here do not outlive it."""
    reg = dict(fw.REGISTRY)
    monkeypatch.setattr(fw, "REGISTRY", reg)
    return reg


def test_register_refuses_a_plugin_that_extends_nothing(registry):
    with pytest.raises(TypeError, match=re.escape(
            "scheduler plugin 'Typo' (Typo) implements no extension point: it needs one of pre_filter(), "
            "filter(), score(), reserve/unreserve(), bind()")):
        @register("Typo")
        class Typo:
            def filtre(self, state, pod, nodes, alive):  # misspelt: extends nothing
                return []
    assert "Typo" not in registry


def test_register_refuses_half_an_extension_point(registry):
    with pytest.raises(TypeError, match=re.escape(
            "scheduler plugin 'HalfReserve' (HalfReserve) implements part of the Reserve extension point: "
            "it has reserve() but lacks unreserve()")):
        @register("HalfReserve")
        class HalfReserve:
            def reserve(self, state, pod, node):
                return SUCCESS
    assert "HalfReserve" not in registry


@pytest.mark.parametrize("build, message", [
    (lambda: Framework(DEFAULT_FILTERS, {"NodeReady": 1}, ()),
     "scheduler plugin 'NodeReady' is configured as a Score plugin but lacks score()"),
    (lambda: Framework(("SelectorSpread",), {}, ()),
     "scheduler plugin 'SelectorSpread' is configured as a Filter plugin but lacks filter()"),
    (lambda: Framework((), {}, (), reserves=("NodePorts",)),
     "scheduler plugin 'NodePorts' is configured as a Reserve plugin but lacks reserve(), unreserve()"),
    (lambda: Framework((), {}, ("NodeResourcesFit",)),
     "scheduler plugin 'NodeResourcesFit' is configured as a Bind plugin but lacks bind()"),
])
def test_a_profile_refuses_a_plugin_at_a_point_it_does_not_extend(build, message):
    with pytest.raises(TypeError, match=re.escape(message)):
        build()


def test_a_factory_that_builds_something_else_is_caught(registry):
    @register("Shifty")
    class Shifty:
        @classmethod
        def create(cls, args, handle):
            return object()  # not the plugin: no name, no filter

        def filter(self, state, pod, nodes, alive):
            return []

    with pytest.raises(TypeError, match=re.escape(
            "scheduler plugin 'object' is configured as a Filter plugin but lacks filter(), a name")):
        Framework(("Shifty",), {}, ())


def test_a_complete_plugin_registers_and_runs_at_its_points(registry):
    calls = []

    @register("Ledger")
    class Ledger:
        def reserve(self, state, pod, node):
            calls.append(("reserve", node))
            return SUCCESS

        def unreserve(self, state, pod, node):
            calls.append(("unreserve", node))

        def score(self, state, pod, nodes, idx):
            return None  # no opinion

    f = Framework(DEFAULT_FILTERS, {**DEFAULT_SCORES, "Ledger": 1}, (), reserves=("Ledger",))
    assert check_plugin(registry["Ledger"]({}, None), "Reserve").name == "Ledger"
    pod = PodInfo.of(make_pod("p"))
    node = f.select_host(CycleState(), pod, table([make_node("a")]))
    assert f.reserve(CycleState(), pod, node) == SUCCESS
    f.unreserve(CycleState(), pod, node)
    assert calls == [("reserve", "a"), ("unreserve", "a")]


def test_the_default_profile_passes_the_checks():
    f = Framework(DEFAULT_FILTERS, DEFAULT_SCORES, DEFAULT_BINDERS)
    assert [p.name for p in f.filters] == list(DEFAULT_FILTERS)
    assert [p.name for p in f.pre_filters] == ["NodeUnschedulable", "NodeName", "NodeAffinity", "NodePorts"]
    assert [p.name for p, _ in f.scores] == list(DEFAULT_SCORES)
    assert [p.name for p in f.binders] == ["DefaultBinder"]
