"""When ``k8n apply --wait`` counts an object ready (bus.cli.waiting): pure functions over object dicts, and the
progress display (bus.cli.progress) on a terminal and in a log."""

import io

import pytest

from bus.cli import waiting
from bus.cli.progress import Board, Steps
from tests import builders
from tests.builders import pod


def with_status(obj, generation=1, **status):
    obj["metadata"]["generation"] = generation
    obj["status"] = status
    return obj


def cond(type_, status="True", reason=None, message=None):
    c = {"type": type_, "status": status}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


# ---- workloads: kubectl rollout status's conditions -------------------------------------------------------------

def test_deployment_waits_for_the_spec_to_be_observed_then_for_available_new_replicas():
    d = builders.deployment("web", replicas=3)
    assert waiting.state_of(with_status(d, observedGeneration=0)) == waiting.State(
        "Waiting for deployment spec update to be observed...")
    s = waiting.state_of(with_status(d, observedGeneration=1, replicas=3, updatedReplicas=3, availableReplicas=1))
    assert not s.done and not s.failed and "1 of 3 updated replicas are available" in s.text
    s = waiting.state_of(with_status(d, observedGeneration=1, replicas=4, updatedReplicas=3, availableReplicas=3))
    assert not s.done and "1 old replicas are pending termination" in s.text
    s = waiting.state_of(with_status(d, observedGeneration=1, replicas=3, updatedReplicas=3, availableReplicas=3))
    assert s.done and s.text == 'deployment "web" successfully rolled out'


def test_deployment_past_its_progress_deadline_fails():
    d = with_status(builders.deployment("web", replicas=1), observedGeneration=1, conditions=[
        cond("Progressing", "False", "ProgressDeadlineExceeded")])
    s = waiting.state_of(d)
    assert s.failed and s.text == 'deployment "web" exceeded its progress deadline'


def test_statefulset_as_kubectl_rollout_status():
    sts = builders.statefulset("db", replicas=2)
    assert not waiting.state_of(with_status(sts, observedGeneration=0)).done
    s = waiting.state_of(with_status(sts, observedGeneration=1, readyReplicas=1))
    assert s.text == "Waiting for 1 pods to be ready..." and not s.done
    s = waiting.state_of(with_status(sts, observedGeneration=1, readyReplicas=2, updatedReplicas=1,
                                     currentRevision="db-1", updateRevision="db-2"))
    assert not s.done and "rolling update to complete 1 pods at revision db-2" in s.text
    s = waiting.state_of(with_status(sts, observedGeneration=1, readyReplicas=2, currentReplicas=2,
                                     currentRevision="db-2", updateRevision="db-2"))
    assert s.done and s.text == "statefulset rolling update complete 2 pods at revision db-2..."
    sts["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}
    s = waiting.state_of(with_status(sts, observedGeneration=1, readyReplicas=2, updatedReplicas=1,
                                     currentRevision="db-1", updateRevision="db-2"))
    assert s.done and s.text.startswith("partitioned roll out complete")


def test_daemonset_as_kubectl_rollout_status():
    ds = builders.daemonset("agent")
    assert not waiting.state_of(with_status(ds, observedGeneration=0)).done
    s = waiting.state_of(with_status(ds, observedGeneration=1, desiredNumberScheduled=2, updatedNumberScheduled=1))
    assert not s.done and "1 out of 2 new pods have been updated" in s.text
    s = waiting.state_of(with_status(ds, observedGeneration=1, desiredNumberScheduled=2, updatedNumberScheduled=2,
                                     numberAvailable=1))
    assert not s.done and "1 of 2 updated pods are available" in s.text
    s = waiting.state_of(with_status(ds, observedGeneration=1, desiredNumberScheduled=2, updatedNumberScheduled=2,
                                     numberAvailable=2))
    assert s.done and s.text == 'daemon set "agent" successfully rolled out'


def test_replicaset_ready_when_its_replicas_are_available_and_shows_a_replica_failure():
    rs = builders.replicaset("web", replicas=2)
    s = waiting.state_of(with_status(rs, observedGeneration=1, readyReplicas=1, availableReplicas=1, conditions=[
        cond("ReplicaFailure", reason="FailedCreate", message="exceeded quota")]))
    assert not s.done and "1 of 2" in s.text and "FailedCreate: exceeded quota" in s.text
    assert waiting.state_of(with_status(rs, observedGeneration=1, readyReplicas=2, availableReplicas=2)).done


# ---- Jobs, Pods ------------------------------------------------------------------------------------------------

def test_job_complete_running_and_failed_with_its_reason():
    j = builders.job("batch")
    s = waiting.state_of(with_status(j, active=1))
    assert not s.done and not s.failed and s.text == "running: 1 active, 0 succeeded, 0 failed"
    assert waiting.state_of(with_status(j, succeeded=1, conditions=[cond("Complete")])) == waiting.State(
        "complete (1 succeeded)", done=True)
    s = waiting.state_of(with_status(j, failed=2, conditions=[
        cond("Failed", reason="BackoffLimitExceeded", message="Job has reached the specified backoff limit")]))
    assert s.failed and s.text == "failed: BackoffLimitExceeded: Job has reached the specified backoff limit"


def test_pod_ready_succeeded_failed_and_why_not_ready():
    assert waiting.state_of(pod("p", phase="Running", ready=True)).done
    assert waiting.state_of(pod("p", phase="Succeeded")).done
    pulling = pod("p", phase="Pending", ready=False, statuses=[
        {"name": "web", "state": {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling "x"'}}}])
    s = waiting.state_of(pulling)
    assert not s.done and not s.failed and s.text == 'Pending: container web: ImagePullBackOff: Back-off pulling "x"'
    creating = pod("p", phase="Pending", statuses=[{"name": "web", "state": {"waiting": {
        "reason": "ContainerCreating"}}}])
    assert waiting.pod_problem(creating) is None
    unschedulable = pod("p", phase="Pending", status={"conditions": [
        cond("PodScheduled", "False", "Unschedulable", "0/1 nodes are available: 1 Insufficient cpu.")]})
    assert waiting.pod_problem(unschedulable) == "Unschedulable: 0/1 nodes are available: 1 Insufficient cpu."
    crashed = pod("p", phase="Failed", statuses=[{"name": "c", "state": {"terminated": {"exitCode": 3,
                                                                                        "reason": "Error"}}}])
    s = waiting.state_of(crashed)
    assert s.failed and s.text == "failed: container c: Error (exit code 3)"


# ---- Services, PVCs, CRDs, the rest -------------------------------------------------------------------------------

def endpoints(ready=0, not_ready=0):
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(ready)],
                         "notReadyAddresses": [{"ip": f"10.0.1.{i}"} for i in range(not_ready)]}]}


def test_a_service_that_selects_pods_waits_for_a_ready_endpoint():
    svc = builders.service("web", selector={"app": "web"})
    assert waiting.needs_endpoints(svc)
    assert waiting.state_of(svc, None) == waiting.State("no ready endpoint yet")
    assert waiting.state_of(svc, endpoints(0, 2)) == waiting.State("no ready endpoint yet (2 not ready)")
    assert waiting.state_of(svc, endpoints(2, 1)) == waiting.State("2 ready endpoints", done=True)


@pytest.mark.parametrize("svc", [builders.service("h", selector={"app": "h"}, cluster_ip="None"),
                                 builders.service("x", type="ExternalName", externalName="example.com"),
                                 builders.service("manual")], ids=["headless", "external-name", "no-selector"])
def test_services_that_need_no_endpoint_are_ready_at_once(svc):
    assert waiting.state_of(svc, None).done


def test_pvc_bound_pending_and_lost():
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "d"},
             "spec": {"volumeName": "pv-1"}}
    assert waiting.state_of({**claim, "status": {"phase": "Pending"}}) == waiting.State("Pending")
    assert waiting.state_of({**claim, "status": {"phase": "Bound"}}) == waiting.State("Bound to pv-1", done=True)
    assert waiting.state_of({**claim, "status": {"phase": "Lost"}}).failed


def test_crd_established_or_names_not_accepted():
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"}}
    assert not waiting.state_of(crd).done
    assert waiting.state_of({**crd, "status": {"conditions": [cond("Established")]}}).done
    s = waiting.state_of({**crd, "status": {"conditions": [cond("NamesAccepted", "False", "MultipleNamesNotAllowed",
                                                                "plural taken")]}})
    assert s.failed and "MultipleNamesNotAllowed: plural taken" in s.text


def test_other_kinds_are_ready_once_applied_and_are_not_watched():
    for obj in (builders.configmap("c"), builders.namespace("n"), builders.secret("s"),
                {"apiVersion": "example.com/v1", "kind": "Deployment", "metadata": {"name": "not-apps"}}):
        assert waiting.state_of(obj) is waiting.READY and not waiting.checked(obj)
    assert waiting.checked(builders.deployment("web")) and waiting.checked(builders.service("web"))


def test_pod_selector_of_owners_and_services():
    sel = waiting.pod_selector(builders.deployment("web", app={"app": "web"}))
    assert sel.matches({"app": "web"}) and not sel.matches({"app": "db"})
    assert waiting.pod_selector(builders.service("web", selector={"app": "web"})).matches({"app": "web", "x": "y"})
    assert waiting.pod_selector(builders.configmap("c")) is None


# ---- the display ---------------------------------------------------------------------------------------------

def test_board_in_a_log_prints_each_change_once_with_its_suffix():
    out = io.StringIO()
    b = Board(out, tty=False)
    b.set("a", "deployment.apps/web: waiting", " (0.1s)")
    b.set("a", "deployment.apps/web: waiting", " (0.6s)")  # only the elapsed time moved
    b.draw()
    b.set("a", "deployment.apps/web: rolled out", " (1.2s)")
    assert out.getvalue().splitlines() == ["deployment.apps/web: waiting (0.1s)",
                                           "deployment.apps/web: rolled out (1.2s)"]
    assert "\x1b" not in out.getvalue()


def test_board_on_a_terminal_redraws_its_lines_in_place():
    out = io.StringIO()
    b = Board(out, tty=True)
    b.set("a", "a: waiting")
    b.set("b", "b: ready")
    b.draw()
    assert out.getvalue() == "\x1b[2Ka: waiting\n\x1b[2Kb: ready\n"
    b.set("a", "a: ready")
    b.draw()
    assert out.getvalue().endswith("\x1b[2F\x1b[2Ka: ready\n\x1b[2Kb: ready\n")


def test_steps_print_plain_lines_with_their_time_when_not_a_terminal():
    out = io.StringIO()
    s = Steps(out, tty=False)
    s.begin("NATS")
    s.done("nats://127.0.0.1:4222")
    s.begin("API server")
    s.failed("exited with code 1")
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["NATS", "0.0s", "nats://127.0.0.1:4222"]
    assert lines[1].split(None, 2)[:2] == ["API", "server"] and "FAILED after 0.0s: exited with code 1" in lines[1]
    assert "\x1b" not in out.getvalue() and "…" not in out.getvalue()
