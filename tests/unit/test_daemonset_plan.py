"""The DaemonSet controller's pure logic: node eligibility, the pods it makes, what it creates and
deletes (including rolling updates) and the status it reports."""

from __future__ import annotations

from master.controllers.daemonset import (DAEMON_TOLERATIONS, HASH_LABEL, daemon_pod, node_fit, plan, scaled_value,
                                          target_node, template_hash)
from tests import builders

NOW = 1_000_000.0


def node(name: str, labels: dict | None = None, taints: list | None = None) -> dict:
    return builders.node(name, labels=labels or {}, taints=taints or [])


def ds(template_spec: dict | None = None, strategy: dict | None = None, generation: int = 1, **spec) -> dict:
    tmpl = {"metadata": {"labels": {"app": "d"}},
            "spec": {"containers": [{"name": "c", "image": "i"}], **(template_spec or {})}}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "d", "namespace": "default", "uid": "ds-uid", "generation": generation},
            "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": tmpl,
                     "updateStrategy": strategy or {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                     **spec},
            "status": {}}


def pod(name: str, on: str, owner: dict, ready: bool = True, phase: str = "Running", old: bool = False,
        created: str = "2024-01-01T00:00:00Z", deleting: bool = False, scheduled: bool = True) -> dict:
    h = "old" if old else template_hash(owner["spec"]["template"])
    on_node = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [on]}]}]}}}
    return builders.pod(name, None, uid=f"uid-{name}", created=created, labels={"app": "d", HASH_LABEL: h},
                        deleting="2024-01-01T00:00:01Z" if deleting else None, node=on if scheduled else None,
                        bare=True, affinity=on_node, phase=phase, ready=ready, ready_since="2024-01-01T00:00:00Z")


def names(pods: list[dict]) -> list[str]:
    return sorted(p["metadata"]["name"] for p in pods)


# ---- eligibility -----------------------------------------------------------------------------


def test_node_selector_and_required_affinity_decide_eligibility():
    spec = {"nodeSelector": {"disk": "ssd"}}
    assert node_fit(spec, node("a", {"disk": "ssd"})) == (True, True)
    assert node_fit(spec, node("b", {"disk": "hdd"})) == (False, False)
    aff = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1", "z2"]}]}]}}}}
    assert node_fit(aff, node("a", {"zone": "z2"}))[0]
    assert not node_fit(aff, node("a", {"zone": "z3"}))[0]


def test_taints_block_new_pods_and_no_execute_also_evicts():
    no_sched = node("a", taints=[{"key": "dedicated", "value": "x", "effect": "NoSchedule"}])
    no_exec = node("b", taints=[{"key": "dedicated", "value": "x", "effect": "NoExecute"}])
    prefer = node("c", taints=[{"key": "dedicated", "value": "x", "effect": "PreferNoSchedule"}])
    assert node_fit({}, no_sched) == (False, True)
    assert node_fit({}, no_exec) == (False, False)
    assert node_fit({}, prefer) == (True, True)
    tolerate = {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "x"}]}
    assert node_fit(tolerate, no_exec) == (True, True)


def test_daemon_tolerations_cover_node_conditions():
    for key, effect in (("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/unreachable", "NoExecute"),
                        ("node.kubernetes.io/unschedulable", "NoSchedule"),
                        ("node.kubernetes.io/disk-pressure", "NoSchedule")):
        assert node_fit({}, node("a", taints=[{"key": key, "effect": effect}])) == (True, True)


# ---- the pods it makes -----------------------------------------------------------------------


def test_daemon_pod_targets_its_node_with_labels_owner_and_tolerations():
    d = ds({"tolerations": [{"key": "x", "operator": "Exists"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "k", "operator": "Exists"}]}]}}}}, generation=3)
    p = daemon_pod(d, "node-7")
    assert p["metadata"]["generateName"] == "d-"
    assert p["metadata"]["labels"] == {"app": "d", HASH_LABEL: template_hash(d["spec"]["template"]),
                                       "pod-template-generation": "3"}
    ref = p["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["uid"], ref["controller"]) == ("DaemonSet", "ds-uid", True)
    terms = p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-7"]}]}]
    assert target_node({"spec": p["spec"]}) == "node-7"
    assert p["spec"]["tolerations"][0] == {"key": "x", "operator": "Exists"}
    assert all(t in p["spec"]["tolerations"] for t in DAEMON_TOLERATIONS)
    assert "nodeName" not in p["spec"], "the scheduler places it"
    assert d["spec"]["template"]["spec"].get("affinity", {}).get("nodeAffinity"), "the DaemonSet is left unchanged"


def test_template_hash_changes_with_the_template_only():
    a, b = ds(), ds()
    assert template_hash(a["spec"]["template"]) == template_hash(b["spec"]["template"])
    b["spec"]["template"]["spec"]["containers"][0]["image"] = "j"
    assert template_hash(a["spec"]["template"]) != template_hash(b["spec"]["template"])


def test_max_unavailable_numbers_and_percentages_round_up():
    assert scaled_value(2, 10) == 2
    assert scaled_value("25%", 10) == 3
    assert scaled_value("10%", 3) == 1
    assert scaled_value("0%", 3) == 0


# ---- create and delete -----------------------------------------------------------------------


def test_creates_on_each_eligible_node_without_a_pod():
    d = ds({"nodeSelector": {"role": "w"}})
    nodes = [node("a", {"role": "w"}), node("b", {"role": "w"}), node("c")]
    p = plan(d, nodes, [pod("pa", "a", d)], NOW)
    assert p.create_on == ["b"]
    assert p.delete == []
    assert p.status["desiredNumberScheduled"] == 2 and p.status["currentNumberScheduled"] == 1


def test_deletes_pods_on_ineligible_missing_nodes_failed_and_duplicates():
    d = ds({"nodeSelector": {"role": "w"}})
    nodes = [node("a", {"role": "w"}), node("b"), node("c", {"role": "w"})]
    pods = [pod("on-b", "b", d), pod("gone", "x", d), pod("a1", "a", d, created="2024-01-01T00:00:00Z"),
            pod("a2", "a", d, created="2024-01-02T00:00:00Z"), pod("c-failed", "c", d, phase="Failed")]
    p = plan(d, nodes, pods, NOW)
    assert names(p.delete) == ["a2", "c-failed", "gone", "on-b"], "keeps the oldest of duplicates"
    assert p.create_on == [], "the failed pod's node waits until it is gone"
    assert p.status["numberMisscheduled"] == 1


def test_terminating_pod_blocks_a_replacement_until_it_is_gone():
    d = ds()
    p = plan(d, [node("a")], [pod("pa", "a", d, deleting=True)], NOW)
    assert p.create_on == [] and p.delete == []
    p = plan(d, [node("a")], [], NOW)
    assert p.create_on == ["a"]


def test_unscheduled_pods_count_for_the_node_their_affinity_names():
    d = ds()
    p = plan(d, [node("a")], [pod("pa", "a", d, ready=False, phase="Pending", scheduled=False)], NOW)
    assert p.create_on == [] and p.delete == []
    assert p.status["currentNumberScheduled"] == 1 and p.status["numberReady"] == 0


def test_status_counts():
    d = ds(generation=4)
    nodes = [node("a"), node("b"), node("c"), node("d")]
    pods = [pod("pa", "a", d), pod("pb", "b", d, ready=False), pod("pc", "c", d, old=True)]
    st = plan(d, nodes, pods, NOW).status
    assert st == {"currentNumberScheduled": 3, "numberMisscheduled": 0, "desiredNumberScheduled": 4,
                  "numberReady": 2, "observedGeneration": 4, "updatedNumberScheduled": 2,
                  "numberAvailable": 2, "numberUnavailable": 2}


def test_min_ready_seconds_delays_availability():
    d = ds(minReadySeconds=30)
    fresh = pod("pa", "a", d)
    fresh["status"]["conditions"][0]["lastTransitionTime"] = "1970-01-12T13:46:30Z"  # NOW - 10 s
    p = plan(d, [node("a")], [fresh], NOW)
    assert p.status["numberReady"] == 1 and p.status["numberAvailable"] == 0
    assert p.requeue_after > 0


# ---- rolling update --------------------------------------------------------------------------


def test_rolling_update_deletes_at_most_max_unavailable_old_pods():
    d = ds()
    nodes = [node(n) for n in "abcd"]
    pods = [pod(f"p{n}", n, d, old=True) for n in "abcd"]
    assert names(plan(d, nodes, pods, NOW).delete) == ["pa"]
    d2 = ds(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%"}})
    assert len(plan(d2, nodes, [pod(f"p{n}", n, d2, old=True) for n in "abcd"], NOW).delete) == 2


def test_rolling_update_waits_while_a_replacement_is_unavailable():
    d = ds()
    nodes = [node(n) for n in "abc"]
    pods = [pod("pa", "a", d, ready=False), pod("pb", "b", d, old=True), pod("pc", "c", d, old=True)]
    assert plan(d, nodes, pods, NOW).delete == []
    pods[0] = pod("pa", "a", d)
    assert names(plan(d, nodes, pods, NOW).delete) == ["pb"]


def test_rolling_update_counts_a_node_whose_old_pod_is_terminating_as_unavailable():
    d = ds()
    nodes = [node(n) for n in "ab"]
    pods = [pod("pa", "a", d, old=True, deleting=True), pod("pb", "b", d, old=True)]
    p = plan(d, nodes, pods, NOW)
    assert p.delete == [] and p.create_on == []


def test_rolling_update_replaces_unavailable_old_pods_at_once():
    d = ds()
    nodes = [node(n) for n in "abc"]
    pods = [pod("pa", "a", d, old=True, ready=False), pod("pb", "b", d, old=True, ready=False),
            pod("pc", "c", d, old=True)]
    assert names(plan(d, nodes, pods, NOW).delete) == ["pa", "pb"]


def test_on_delete_strategy_leaves_old_pods():
    d = ds(strategy={"type": "OnDelete"})
    nodes = [node(n) for n in "ab"]
    p = plan(d, nodes, [pod("pa", "a", d, old=True), pod("pb", "b", d, old=True)], NOW)
    assert p.delete == [] and p.status["updatedNumberScheduled"] == 0
    p = plan(d, nodes, [pod("pb", "b", d, old=True)], NOW)
    assert p.create_on == ["a"], "a pod the user deleted comes back with the new template"
