"""``k8n get`` tables: kubectl's columns, pod STATUS, ages (``bus.tables``), and output shapes (``bus.cli.printers``)."""

from datetime import datetime, timedelta, timezone

import pytest

from bus import tables
from bus.meta import format_time
from bus.cli import printers
from bus.resources import resolve
from tests import builders
from tests.builders import container

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def ts(seconds_ago: float) -> str:
    return format_time(NOW - timedelta(seconds=seconds_ago))


def pod(phase="Running", statuses=None, init=None, init_statuses=None, deleting=False):
    p = builders.pod("p", created=ts(30), deleting=ts(1) if deleting else None,
                     containers=[f"c{i}" for i in range(len(statuses or [None]))], phase=phase, statuses=statuses or [])
    if init:
        p["spec"]["initContainers"] = [container(f"i{i}") for i in range(init)]
        p["status"]["initContainerStatuses"] = init_statuses or []
    return p


RUNNING = {"ready": True, "restartCount": 0, "state": {"running": {"startedAt": ts(20)}}}


@pytest.mark.parametrize("seconds,text", [
    (0, "0s"), (5, "5s"), (119, "119s"), (182, "3m2s"), (600, "10m"), (179 * 60, "179m"),
    (2 * 3600 + 5 * 60, "125m"), (3 * 3600 + 5 * 60, "3h5m"), (3 * 3600, "3h"), (10 * 3600, "10h"), (3 * 86400 + 4 * 3600, "3d4h"),
    (5 * 86400, "5d"), (30 * 86400, "30d"), (800 * 86400, "2y70d"), (-5, "<invalid>"),
])
def test_human_duration(seconds, text):
    assert tables.human_duration(seconds) == text


def test_age_of_object_and_unknown():
    assert tables.age({"metadata": {"creationTimestamp": ts(182)}}, NOW) == "3m2s"
    assert tables.age({"metadata": {}}, NOW) == "<unknown>"


@pytest.mark.parametrize("p,ready,status", [
    (pod(statuses=[RUNNING]), "1/1", "Running"),
    (pod(phase="Pending", statuses=[{"ready": False, "state": {"waiting": {"reason": "ContainerCreating"}}}]),
     "0/1", "ContainerCreating"),
    (pod(statuses=[{"ready": False, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]),
     "0/1", "CrashLoopBackOff"),
    (pod(phase="Succeeded", statuses=[{"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]),
     "0/1", "Completed"),
    (pod(phase="Failed", statuses=[{"state": {"terminated": {"exitCode": 3}}}]), "0/1", "ExitCode:3"),
    (pod(phase="Failed", statuses=[{"state": {"terminated": {"exitCode": 137, "signal": 9}}}]), "0/1", "Signal:9"),
    (pod(statuses=[RUNNING], deleting=True), "1/1", "Terminating"),
    (pod(phase="Succeeded", statuses=[{"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
         deleting=True), "0/1", "Completed"),
    (pod(phase="Pending", statuses=[{"state": {"waiting": {"reason": "PodInitializing"}}}], init=3,
         init_statuses=[{"state": {"terminated": {"exitCode": 0}}}, {"state": {"running": {}}}]), "0/1", "Init:1/3"),
    (pod(phase="Pending", init=1, init_statuses=[{"state": {"waiting": {"reason": "ImagePullBackOff"}}}]),
     "0/1", "Init:ImagePullBackOff"),
    (pod(phase="Pending", init=1, init_statuses=[{"state": {"terminated": {"exitCode": 2}}}]), "0/1",
     "Init:ExitCode:2"),
    (pod(phase="Running", statuses=[RUNNING, {"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]),
     "1/2", "NotReady"),
])
def test_pod_ready_and_status(p, ready, status):
    r, s, _, _ = tables.pod_summary(p)
    assert (r, s) == (ready, status)


def test_pod_restarts_show_when_last_restarted():
    cs = {**RUNNING, "restartCount": 2, "lastState": {"terminated": {"exitCode": 1, "finishedAt": ts(65)}}}
    headers, rows = printers.table(resolve("pods"), [pod(statuses=[cs])], now=NOW)
    assert headers == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert rows == [["p", "1/1", "Running", "2 (65s ago)", "30s"]]


def test_pod_wide_columns():
    p = pod(statuses=[RUNNING])
    p["spec"]["nodeName"], p["status"]["podIP"] = "n1", "10.244.0.5"
    headers, rows = printers.table(resolve("po"), [p], wide=True, now=NOW)
    assert headers[-4:] == ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    assert rows[0][-4:] == ["10.244.0.5", "n1", "<none>", "<none>"]


@pytest.mark.parametrize("ports,text", [
    ([{"port": 80, "protocol": "TCP"}], "80/TCP"),
    ([{"port": 80}, {"port": 53, "protocol": "UDP"}], "80/TCP,53/UDP"),
    ([{"port": 80, "nodePort": 30080, "protocol": "TCP"}], "80:30080/TCP"),
    ([], "<none>"),
])
def test_service_ports_column(ports, text):
    assert tables.service_ports({"spec": {"ports": ports}}) == text


def test_service_row():
    svc = {"metadata": {"name": "web", "creationTimestamp": ts(10)},
           "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "ports": [{"port": 80, "nodePort": 31000}],
                    "selector": {"app": "web"}}}
    headers, rows = printers.table(resolve("svc"), [svc], wide=True, now=NOW)
    assert headers == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]
    assert rows == [["web", "LoadBalancer", "10.96.0.10", "<pending>", "80:31000/TCP", "10s", "app=web"]]


@pytest.mark.parametrize("spec,status,ready", [
    ({"replicas": 3}, {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}, "2/3"),
    ({"replicas": 0}, {}, "0/0"),
    ({}, {}, "0/1"),
])
def test_deployment_ready_column(spec, status, ready):
    d = {"metadata": {"name": "web", "creationTimestamp": ts(5)}, "spec": spec, "status": status}
    headers, rows = printers.table(resolve("deploy"), [d], now=NOW)
    assert headers == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert rows[0][1] == ready


def test_deployment_wide_has_containers_images_selector():
    d = {"metadata": {"name": "web"},
         "spec": {"selector": {"matchLabels": {"app": "web"},
                               "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]},
                  "template": {"spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y"}]}}}}
    headers, rows = printers.table(resolve("deploy"), [d], wide=True, now=NOW)
    assert headers[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert rows[0][-3:] == ["a,b", "x:1,y", "app=web,tier in (a,b)"]


def test_all_namespaces_adds_leading_column_only_for_namespaced_kinds():
    cm = {"metadata": {"name": "c", "namespace": "shop", "creationTimestamp": ts(5)}, "data": {"a": "1"}}
    headers, rows = printers.table(resolve("cm"), [cm], all_namespaces=True, now=NOW)
    assert headers == ["NAMESPACE", "NAME", "DATA", "AGE"] and rows == [["shop", "c", "1", "5s"]]
    headers, _ = printers.table(resolve("ns"), [{"metadata": {"name": "x"}}], all_namespaces=True, now=NOW)
    assert headers[0] == "NAME"


def test_show_labels_and_kind_prefix():
    d = {"metadata": {"name": "web", "labels": {"b": "2", "a": "1"}}}
    headers, rows = printers.table(resolve("deploy"), [d], show_labels=True, show_kind=True, now=NOW)
    assert headers[-1] == "LABELS" and rows[0][-1] == "a=1,b=2"
    assert rows[0][0] == "deployment.apps/web"


def test_output_name():
    assert printers.name_line(resolve("pods"), {"metadata": {"name": "x"}}) == "pod/x"
    assert printers.name_line(resolve("deploy"), {"metadata": {"name": "web"}}) == "deployment.apps/web"


def test_render_aligns_columns_with_three_spaces():
    text = printers.render(["NAME", "STATUS", "AGE"], [["default", "Active", "5d"], ["kube-system", "Active", "5d"]])
    assert text.split("\n") == ["NAME          STATUS   AGE",
                                "default       Active   5d",
                                "kube-system   Active   5d"]


def test_node_columns():
    node = {"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "nodeInfo": {"kubeletVersion": "v0.1.0"},
                       "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}
    headers, rows = printers.table(resolve("nodes"), [node], wide=True, now=NOW)
    assert headers[:5] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert rows[0][:5] == ["n1", "Ready,SchedulingDisabled", "control-plane", "<unknown>", "v0.1.0"]
    assert rows[0][5] == "10.0.0.1"


def test_job_columns():
    job = {"metadata": {"name": "j", "creationTimestamp": ts(100)}, "spec": {"completions": 3},
           "status": {"succeeded": 3, "startTime": ts(100), "completionTime": ts(40),
                      "conditions": [{"type": "Complete", "status": "True"}]}}
    _, rows = printers.table(resolve("jobs"), [job], now=NOW)
    assert rows == [["j", "Complete", "3/3", "60s", "100s"]]


def test_event_columns():
    ev = {"metadata": {"name": "e"}, "type": "Normal", "reason": "Scheduled", "count": 3,
          "firstTimestamp": ts(600), "lastTimestamp": ts(10), "message": " assigned ",
          "involvedObject": {"kind": "Pod", "name": "p"}}
    headers, rows = printers.table(resolve("events"), [ev], now=NOW)
    assert headers == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert rows == [["10s (x3 over 10m)", "Normal", "Scheduled", "pod/p", "assigned"]]


def test_every_kind_has_kubectl_headers():
    assert [h for h, _ in tables.columns("PersistentVolume")] == [
        "NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM", "STORAGECLASS",
        "VOLUMEATTRIBUTESCLASS", "REASON", "AGE"]
    assert [h for h, _ in tables.columns("HorizontalPodAutoscaler")] == [
        "NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    assert [h for h, _ in tables.columns("DaemonSet")] == [
        "NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"]


def test_serviceaccount_secrets_column_counts_references():
    from bus.cli.printers import table
    from bus.resources import by_plural

    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "x"},
          "secrets": [{"name": "default-token-abcde"}]}
    headers, rows = table(by_plural("serviceaccounts"), [sa])
    assert headers[:2] == ["NAME", "SECRETS"] and rows[0][:2] == ["default", "1"]
