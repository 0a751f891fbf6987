"""CronJob against ``k8n up`` with one node agent, as a user drives it: a real every-minute schedule starts a Job
that runs a pod to completion, the history limit deletes the older finished Job, ``kubectl get cronjob`` shows
kubectl's columns, ``kubectl create job --from=cronjob/…`` and ``kubectl create cronjob`` work, and the official
Python client's BatchV1Api creates, lists, patches and deletes a CronJob.

The controller's clock cannot be faked end to end: the schedule's first time is up to a minute away, so the one
test that waits for it does everything else while it waits (the fake-clock cases are in
tests/unit/test_cronjob_logic.py)."""

from __future__ import annotations

import json
import subprocess

import pytest
from kubernetes import client as kclient
from kubernetes import config as kconfig

from bus.meta import format_time
from tests.builders import IMAGE
from tests.e2e.upcluster import K8N, UpCluster
from tests.harness import NEEDS_DOCKER
from tests.waiting import eventually_sync

pytestmark = NEEDS_DOCKER

NS = "cj"
SCHEDULED = "batch.kubernetes.io/cronjob-scheduled-timestamp"

CRONJOB = f"""
apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
  namespace: {NS}
spec:
  schedule: "*/1 * * * *"
  successfulJobsHistoryLimit: 1
  jobTemplate:
    metadata:
      labels: {{app: tick}}
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          terminationGracePeriodSeconds: 1
          containers:
          - name: tick
            image: {IMAGE}
            command: ["sh", "-c", "echo tick"]
"""


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    c = UpCluster(tmp_path_factory.mktemp("cronjob"))
    try:
        c.start(agent=True)
        c.kubectl("create", "namespace", NS)
        yield c
    finally:
        c.stop()


def get(k: UpCluster, *what: str) -> dict:
    return json.loads(k.kubectl("get", *what, "-n", NS, "-o", "json").stdout)


def jobs(k: UpCluster) -> dict[str, dict]:
    return {j["metadata"]["name"]: j for j in get(k, "jobs")["items"]}


def complete(job: dict) -> bool:
    return any(c["type"] == "Complete" and c["status"] == "True" for c in job.get("status", {}).get("conditions", []))


def event_reasons(k: UpCluster, name: str) -> list[str]:
    return [e["reason"] for e in get(k, "events")["items"]
            if e["involvedObject"].get("kind") == "CronJob" and e["involvedObject"]["name"] == name]


def test_a_schedule_starts_jobs_that_complete_and_the_history_limit_prunes(k):
    k.kubectl("apply", "-f", "-", input=CRONJOB)
    cj = get(k, "cronjob", "tick")
    assert cj["spec"]["concurrencyPolicy"] == "Allow" and cj["spec"]["suspend"] is False

    # while the first scheduled time comes: a Job by hand from the CronJob's template, owned by it
    made = k.kubectl("create", "job", "by-hand", "--from=cronjob/tick", "-n", NS)
    assert made.stdout.strip() == "job.batch/by-hand created"
    by_hand = jobs(k)["by-hand"]
    assert by_hand["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert by_hand["metadata"]["ownerReferences"][0]["uid"] == cj["metadata"]["uid"]
    eventually_sync(lambda: complete(jobs(k)["by-hand"]), 60, "the Job made by hand to complete")

    def scheduled() -> dict | None:
        return next((j for n, j in jobs(k).items() if n.startswith("tick-") and complete(j)), None)

    job = eventually_sync(scheduled, 90, "a scheduled Job to run and complete", interval=1.0)
    name = job["metadata"]["name"]
    when = job["metadata"]["annotations"][SCHEDULED]
    minutes = int(name.removeprefix("tick-"))
    assert when == format_time(minutes * 60)  # the scheduled minute, in UTC as no timeZone is set
    assert job["metadata"]["labels"]["app"] == "tick"
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("CronJob", "tick", True)

    # the older finished Job goes (successfulJobsHistoryLimit 1); the status says what ran
    eventually_sync(lambda: sorted(jobs(k)) == [name], 30, "only the newest finished Job to be kept")

    def recorded() -> dict | None:
        st = get(k, "cronjob", "tick").get("status", {})
        return st if st.get("lastSuccessfulTime") and not st.get("active") else None

    status = eventually_sync(recorded, 30, "the CronJob's status to record the run")
    assert status["lastScheduleTime"] == when
    eventually_sync(lambda: {"SuccessfulCreate", "SawCompletedJob", "SuccessfulDelete"} <= set(
        event_reasons(k, "tick")), 30, "the CronJob's events")

    table = k.kubectl("get", "cronjob", "tick", "-n", NS).stdout.splitlines()
    assert table[0].split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]
    row = table[1].split()
    assert row[:7] == ["tick", "*/1", "*", "*", "*", "*", "<none>"] and row[7:9] == ["False", "0"]
    wide = k.kubectl("get", "cj", "-n", NS, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"] and wide[1].split()[-3:] == [
        "tick", IMAGE, "<none>"]
    listed = subprocess.run([K8N, "get", "cronjobs", "-n", NS], capture_output=True, text=True, env=k.env)
    assert listed.returncode == 0 and "tick" in listed.stdout and "*/1 * * * *" in listed.stdout, listed.stderr
    k.kubectl("delete", "cronjob", "tick", "-n", NS)
    eventually_sync(lambda: not jobs(k), 30, "the CronJob's Jobs to be deleted with it")


def test_kubectl_create_cronjob_and_validation(k):
    out = k.kubectl("create", "cronjob", "nightly", "-n", NS, f"--image={IMAGE}", "--schedule=@daily",
                    "--restart=Never", "--", "echo", "hi")
    assert out.stdout.strip() == "cronjob.batch/nightly created"
    cj = get(k, "cronjob", "nightly")
    assert cj["spec"]["schedule"] == "@daily"
    assert cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    bad = k.kubectl("create", "cronjob", "bad", "-n", NS, f"--image={IMAGE}", "--schedule=61 * * * *", check=False)
    assert bad.returncode == 1
    assert 'spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61' in bad.stderr
    tz = k.kubectl("apply", "-f", "-", check=False, input=CRONJOB.replace("name: tick\n", "name: tz\n").replace(
        '  schedule: "*/1 * * * *"\n', '  schedule: "0 * * * *"\n  timeZone: Mars/Olympus\n'))
    assert tz.returncode == 1
    assert 'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus' in tz.stderr


def test_python_client_batch_v1(k):
    api = kclient.BatchV1Api(kconfig.new_client_from_config(config_file=str(k.kubeconfig)))
    body = kclient.V1CronJob(
        metadata=kclient.V1ObjectMeta(name="py-cron", labels={"by": "python"}),
        spec=kclient.V1CronJobSpec(
            schedule="30 2 * * *", time_zone="Europe/Paris", concurrency_policy="Forbid",
            job_template=kclient.V1JobTemplateSpec(spec=kclient.V1JobSpec(template=kclient.V1PodTemplateSpec(
                spec=kclient.V1PodSpec(restart_policy="Never", containers=[
                    kclient.V1Container(name="c", image=IMAGE, command=["true"])]))))))
    created = api.create_namespaced_cron_job(NS, body)
    assert isinstance(created, kclient.V1CronJob) and created.metadata.uid
    assert (created.spec.successful_jobs_history_limit, created.spec.failed_jobs_history_limit) == (3, 1)
    listed = api.list_namespaced_cron_job(NS, label_selector="by=python")
    assert [c.metadata.name for c in listed.items] == ["py-cron"]
    assert "py-cron" in [c.metadata.name for c in api.list_cron_job_for_all_namespaces().items]
    patched = api.patch_namespaced_cron_job("py-cron", NS, {"spec": {"suspend": True}})
    assert patched.spec.suspend is True and patched.spec.time_zone == "Europe/Paris"
    assert api.read_namespaced_cron_job("py-cron", NS).spec.concurrency_policy == "Forbid"
    api.delete_namespaced_cron_job("py-cron", NS)
    eventually_sync(lambda: not api.list_namespaced_cron_job(NS, label_selector="by=python").items, 15,
                    "the CronJob to be deleted")
