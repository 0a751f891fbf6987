"""The shared scheduling predicates (``bus.scheduling``): taints against tolerations, and a pod's nodeSelector
and node affinity against a node — what the scheduler's plugins and the DaemonSet and node lifecycle
controllers all decide with."""

from __future__ import annotations

import pytest

from bus.scheduling import (find_untolerated_taint, matches_node, node_matcher, node_taints, preferred_affinity,
                            required_affinity, term_matcher, tolerated, tolerates, tolerations)
from tests import builders


def node(name="n1", labels=None, taints=None):
    return builders.node(name, labels=labels or {}, taints=taints or [])


def expr(key, op, *values):
    return {"key": key, "operator": op, **({"values": list(values)} if values else {})}


def affinity(*terms, preferred=None):
    na = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}} if terms else {}
    if preferred:
        na["preferredDuringSchedulingIgnoredDuringExecution"] = preferred
    return {"nodeAffinity": na}


# ---- taints and tolerations ----------------------------------------------------------------------


def test_node_taints_are_triples_with_empty_defaults():
    n = node(taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}, {"key": "spot", "effect": "NoExecute"},
                     {"key": "x", "value": None, "effect": "PreferNoSchedule"}])
    assert node_taints(n) == (("gpu", "yes", "NoSchedule"), ("spot", "", "NoExecute"), ("x", "", "PreferNoSchedule"))
    assert node_taints({"metadata": {"name": "bare"}}) == ()


@pytest.mark.parametrize("tol,taint,ok", [
    ({"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}, ("gpu", "yes", "NoSchedule"), True),
    ({"key": "gpu", "value": "yes"}, ("gpu", "yes", "NoExecute"), True),  # Equal by default, any effect
    ({"key": "gpu", "value": "no"}, ("gpu", "yes", "NoSchedule"), False),
    ({"key": "gpu", "operator": "Exists"}, ("gpu", "anything", "NoSchedule"), True),
    ({"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}, ("gpu", "", "NoExecute"), False),
    ({"key": "other", "operator": "Exists"}, ("gpu", "", "NoSchedule"), False),
    ({"operator": "Exists"}, ("anything", "at-all", "NoExecute"), True),  # empty key + Exists: every taint
    ({"operator": "Equal", "value": ""}, ("gpu", "", "NoSchedule"), True),  # empty key matches any key
    ({"key": "gpu", "operator": "Gt", "value": "1"}, ("gpu", "2", "NoSchedule"), False),  # unknown operator
])
def test_toleration_tolerates_taint(tol, taint, ok):
    assert tolerates(tol, *taint) is ok
    assert tolerated([{"key": "unrelated", "operator": "Exists"}, tol], *taint) is ok
    assert tolerated([], *taint) is False


def test_find_untolerated_taint_returns_the_first_with_a_wanted_effect():
    taints = (("soft", "", "PreferNoSchedule"), ("gpu", "yes", "NoSchedule"), ("db", "", "NoExecute"))
    assert find_untolerated_taint(taints, []) == ("gpu", "yes", "NoSchedule")  # NoSchedule and NoExecute by default
    assert find_untolerated_taint(taints, [], ("NoExecute",)) == ("db", "", "NoExecute")
    assert find_untolerated_taint(taints, [{"key": "gpu", "operator": "Exists"}]) == ("db", "", "NoExecute")
    assert find_untolerated_taint(taints, [{"key": "gpu", "operator": "Exists"},
                                           {"key": "db", "operator": "Exists"}]) is None
    assert find_untolerated_taint((), []) is None


def test_tolerations_of_a_pod_spec():
    assert tolerations({}) == [] and tolerations({"tolerations": None}) == []
    assert tolerations({"tolerations": [{"operator": "Exists"}]}) == [{"operator": "Exists"}]


# ---- node selector and node affinity -------------------------------------------------------------


LABELS = {"zone": "z1", "disk": "ssd", "cores": "8"}


@pytest.mark.parametrize("e,ok", [
    (expr("zone", "In", "z1", "z2"), True), (expr("zone", "In", "z2"), False),
    (expr("zone", "NotIn", "z2"), True), (expr("zone", "NotIn", "z1"), False), (expr("gpu", "NotIn", "x"), True),
    (expr("disk", "Exists"), True), (expr("gpu", "Exists"), False),
    (expr("gpu", "DoesNotExist"), True), (expr("disk", "DoesNotExist"), False),
    (expr("cores", "Gt", "4"), True), (expr("cores", "Gt", "8"), False), (expr("cores", "Lt", "9"), True),
    (expr("zone", "Gt", "1"), False),  # not an integer
    (expr("zone", "Like", "z1"), False),  # unknown operator: the term matches nothing
])
def test_term_operators(e, ok):
    assert term_matcher({"matchExpressions": [e]})(LABELS, "n1") is ok


def test_term_expressions_and_fields_are_anded_and_empty_terms_match_nothing():
    both = {"matchExpressions": [expr("zone", "In", "z1")], "matchFields": [expr("metadata.name", "In", "n1")]}
    assert term_matcher(both)(LABELS, "n1") and not term_matcher(both)(LABELS, "n2")
    assert not term_matcher({})(LABELS, "n1")
    assert not term_matcher({"matchFields": [expr("metadata.labels", "In", "n1")]})(LABELS, "n1")  # only the name


def test_required_and_preferred_affinity_of_a_pod_spec():
    assert required_affinity({}) == ({}, None)
    term = {"matchExpressions": [expr("zone", "In", "z1")]}
    assert required_affinity({"nodeSelector": {"a": "b"}, "affinity": affinity(term)}) == ({"a": "b"}, [term])
    pref = [{"weight": 5, "preference": term}]
    assert preferred_affinity({"affinity": affinity(preferred=pref)}) == pref
    assert required_affinity({"affinity": affinity(preferred=pref)}) == ({}, None)
    assert preferred_affinity({}) == []


def test_node_selector_and_required_terms_both_apply():
    z1 = {"matchExpressions": [expr("zone", "In", "z1")]}
    z2 = {"matchExpressions": [expr("zone", "In", "z2")]}
    assert node_matcher({}, None)(LABELS, "n1")  # nothing required
    assert node_matcher({"disk": "ssd"}, None)(LABELS, "n1")
    assert not node_matcher({"disk": "hdd"}, None)(LABELS, "n1")
    assert node_matcher({}, [z2, z1])(LABELS, "n1")  # terms are ORed
    assert not node_matcher({"disk": "hdd"}, [z1])(LABELS, "n1")
    assert not node_matcher({}, [])(LABELS, "n1")  # required affinity with no terms matches nothing


def test_matches_node_reads_the_pod_spec_and_the_node():
    n = node("web-1", labels=LABELS)
    spec = {"nodeSelector": {"zone": "z1"},
            "affinity": affinity({"matchFields": [expr("metadata.name", "In", "web-1", "web-2")]})}
    assert matches_node(spec, n)
    assert not matches_node(spec, node("web-3", labels=LABELS))
    assert not matches_node({"nodeSelector": {"zone": "z2"}}, n)
    assert matches_node({}, {"metadata": {"name": "unlabelled"}})
