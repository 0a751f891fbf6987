"""``k8n rollout status``'s messages (kubectl's DeploymentStatusViewer) and ``--timeout`` parsing."""

from __future__ import annotations

import pytest

from bus.cli.common import CliError
from bus.cli.rollout import _duration, status_message


def d(generation=2, observed=2, replicas=3, updated=3, total=3, available=3, reason="ReplicaSetUpdated"):
    return {"metadata": {"name": "web", "generation": generation}, "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "updatedReplicas": updated, "replicas": total,
                       "availableReplicas": available,
                       "conditions": [{"type": "Progressing", "status": "True", "reason": reason}]}}


@pytest.mark.parametrize("obj,message,done", [
    (d(generation=3), "Waiting for deployment spec update to be observed...", False),
    (d(updated=1, total=4), 'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been '
                            "updated...", False),
    (d(total=5), 'Waiting for deployment "web" rollout to finish: 2 old replicas are pending termination...', False),
    (d(available=1), 'Waiting for deployment "web" rollout to finish: 1 of 3 updated replicas are available...',
     False),
    (d(), 'deployment "web" successfully rolled out', True),
])
def test_status_messages(obj, message, done):
    assert status_message(obj) == (message, done)


def test_deadline_exceeded_is_an_error():
    with pytest.raises(CliError, match='deployment "web" exceeded its progress deadline'):
        status_message(d(available=0, reason="ProgressDeadlineExceeded"))


def test_timeout_durations():
    assert _duration("0s") == 0 and _duration("90") == 90 and _duration("1m30s") == 90 and _duration("2h") == 7200
    with pytest.raises(CliError):
        _duration("soon")
