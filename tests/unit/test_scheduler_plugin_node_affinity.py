from master.scheduler.plugins.node_affinity import REASON, NodeAffinity
from master.scheduler.testing import failing, make_node, make_pod, scores, table


def nodes():
    return table([make_node("a", labels={"zone": "z1", "disk": "ssd", "cores": "8"}),
                  make_node("b", labels={"zone": "z2", "cores": "2"}),
                  make_node("c", labels={"zone": "z3"})])


def required(*terms):
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


def expr(key, op, *values):
    return {"key": key, "operator": op, **({"values": list(values)} if values else {})}


def test_node_selector():
    assert failing(NodeAffinity(), make_pod("p", nodeSelector={"disk": "ssd"}), nodes()) == {REASON: ["b", "c"]}
    assert failing(NodeAffinity(), make_pod("p"), nodes()) == {}


def test_operators():
    cases = [
        (expr("zone", "In", "z1", "z2"), ["c"]),
        (expr("zone", "NotIn", "z1"), ["a"]),
        (expr("disk", "Exists"), ["b", "c"]),
        (expr("disk", "DoesNotExist"), ["a"]),
        (expr("cores", "Gt", "4"), ["b", "c"]),
        (expr("cores", "Lt", "4"), ["a", "c"]),
    ]
    for e, fail in cases:
        got = failing(NodeAffinity(), make_pod("p", affinity=required({"matchExpressions": [e]})), nodes())
        assert got == {REASON: fail}, e


def test_terms_are_ored_expressions_anded_and_match_fields():
    aff = required({"matchExpressions": [expr("zone", "In", "z1"), expr("disk", "DoesNotExist")]},
                   {"matchFields": [expr("metadata.name", "In", "c")]})
    assert failing(NodeAffinity(), make_pod("p", affinity=aff), nodes()) == {REASON: ["a", "b"]}
    assert failing(NodeAffinity(), make_pod("p", affinity=required({})), nodes()) == {REASON: ["a", "b", "c"]}


def test_selector_and_affinity_both_apply():
    pod = make_pod("p", nodeSelector={"zone": "z1"}, affinity=required({"matchExpressions": [expr("zone", "In", "z2")]}))
    assert failing(NodeAffinity(), pod, nodes()) == {REASON: ["a", "b", "c"]}


def test_preferred_terms_scored_by_weight():
    aff = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": {"matchExpressions": [expr("zone", "In", "z2")]}},
        {"weight": 5, "preference": {"matchExpressions": [expr("disk", "Exists")]}}]}}
    s = scores(NodeAffinity(), make_pod("p", affinity=aff), nodes())
    assert s == {"a": 50.0, "b": 100.0, "c": 0.0}
