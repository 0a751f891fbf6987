from master.scheduler.plugins.taint_toleration import TaintToleration, reason
from master.scheduler.testing import failing, make_node, make_pod, scores, table

GPU = {"key": "gpu", "value": "yes", "effect": "NoSchedule"}
EVICT = {"key": "dedicated", "value": "db", "effect": "NoExecute"}
SOFT = {"key": "spot", "value": "", "effect": "PreferNoSchedule"}


def nodes():
    return table([make_node("plain"), make_node("gpu", taints=[GPU]), make_node("db", taints=[EVICT]),
                  make_node("spot", taints=[SOFT])])


def test_hard_taints_need_tolerations():
    assert failing(TaintToleration(), make_pod("p"), nodes()) == {
        reason("gpu", "yes"): ["gpu"], reason("dedicated", "db"): ["db"]}
    assert reason("gpu", "yes") == "node(s) had untolerated taint {gpu: yes}"


def test_equal_and_exists_operators():
    eq = [{"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}]
    assert failing(TaintToleration(), make_pod("p", tolerations=eq), nodes()) == {reason("dedicated", "db"): ["db"]}
    wrong = [{"key": "gpu", "operator": "Equal", "value": "no"}]
    assert "gpu" in failing(TaintToleration(), make_pod("p", tolerations=wrong), nodes())[reason("gpu", "yes")]
    exists = [{"key": "dedicated", "operator": "Exists"}]
    assert failing(TaintToleration(), make_pod("p", tolerations=exists), nodes()) == {reason("gpu", "yes"): ["gpu"]}
    wrong_effect = [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]
    assert reason("dedicated", "db") in failing(TaintToleration(), make_pod("p", tolerations=wrong_effect), nodes())


def test_empty_key_exists_tolerates_everything():
    assert failing(TaintToleration(), make_pod("p", tolerations=[{"operator": "Exists"}]), nodes()) == {}


def test_prefer_no_schedule_scores_lower():
    s = scores(TaintToleration(), make_pod("p"), nodes())
    assert s["spot"] == 0 and s["plain"] == 100
    tol = [{"key": "spot", "operator": "Exists", "effect": "PreferNoSchedule"}]
    assert scores(TaintToleration(), make_pod("p", tolerations=tol), nodes()) == {}  # all alike: no opinion
