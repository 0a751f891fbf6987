"""Object history's pure parts: which kinds keep how much, the writer's headers, one revision read off a history
message, the CLI's table and diff."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bus import codec, history, subjects
from bus.cli.common import CliError
from bus.cli.history import revision_diff, revisions_table
from bus.resources import API_REPLIES, by_plural


def test_kinds_keep_the_configured_revisions_and_churning_ones_none():
    cfg = history.HistorySettings(history_kinds="pods=20, leases=5, configmaps=0")
    assert cfg.revisions(by_plural("deployments")) == 100
    assert cfg.revisions(by_plural("pods")) == 20
    assert cfg.revisions(by_plural("leases")) == 5  # off by default, named here
    assert cfg.revisions(by_plural("configmaps")) == 0
    assert cfg.revisions(by_plural("events")) == 0
    assert cfg.revisions(API_REPLIES) == 0
    assert history.HistorySettings(history=False).revisions(by_plural("deployments")) == 0
    with pytest.raises(ValueError):
        history.HistorySettings(history_kinds="pods=many").revisions(by_plural("pods"))


def test_the_history_stream_sources_the_bucket_under_its_own_subjects():
    cfg = history.stream_config(by_plural("deployments"), history.HistorySettings(), 1)
    assert cfg.name == "HIST_k8n-deployments" and cfg.max_msgs_per_subject == 100
    (src,) = cfg.sources
    assert src.name == subjects.stream("deployments")
    assert (src.subject_transforms[0].src, src.subject_transforms[0].dest) == (
        "$KV.k8n-deployments.>", "k8n.history.deployments.>")
    assert subjects.history_subject("deployments", "shop", "web.v1") == "k8n.history.deployments.shop.web_v1"
    assert cfg.persist_mode == "async"  # the bucket is the fsynced copy; a replicated stream keeps the default
    assert history.stream_config(by_plural("deployments"), history.HistorySettings(), 3).persist_mode is None


def test_writer_headers_are_single_printable_lines():
    h = history.writer_headers("alice\r\nK8n-User: root", "update/status", "kubectl\n")
    assert h == {"K8n-User": "aliceK8n-User: root", "K8n-Verb": "update/status", "K8n-Manager": "kubectl"}
    assert "K8n-Manager" not in history.writer_headers("bob", "create", None)


def _msg(obj: dict, seq: int, **headers: str) -> SimpleNamespace:
    return SimpleNamespace(data=codec.pack(obj), headers={
        "Nats-Stream-Source": f"KV_k8n-configmaps {seq} $KV.k8n-configmaps.> k8n.history.configmaps.> x y",
        "Nats-Time-Stamp": "2026-12-03T20:24:00.016455686Z", **headers})


def test_a_revision_names_its_resource_version_writer_and_type():
    it = history.item_of(_msg({"metadata": {"name": "a"}, "data": {"k": "v"}}, 42, **{
        "K8n-User": "alice", "K8n-Verb": "create", "K8n-Event": "ADDED"}))
    assert it == {"revision": 42, "time": "2026-12-03T20:24:00.016455Z", "user": "alice", "verb": "create",
                  "fieldManager": None, "type": "ADDED",
                  "object": {"metadata": {"name": "a", "resourceVersion": "42"}, "data": {"k": "v"}}}
    gone = history.item_of(_msg({"metadata": {"name": "a", "managedFields": [
        {"manager": "old", "time": "2026-01-01T00:00:00Z"}, {"manager": "new", "time": "2026-02-01T00:00:00Z"}]}},
        43, **{"KV-Operation": "DEL"}))
    assert gone["type"] == "DELETED" and gone["user"] is None and gone["fieldManager"] == "new"


def test_the_cli_prints_a_table_and_a_diff_of_two_revisions():
    items = [{"revision": r, "time": "2026-12-03T20:24:00Z", "user": u, "verb": v, "fieldManager": None,
              "object": {"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "app", "resourceVersion": str(r)}, "data": {"color": c}}}
             for r, u, v, c in ((5, "root", "create", "blue"), (9, "alice", "update", "green"))]
    lines = revisions_table(items).splitlines()
    assert lines[0].split() == ["REVISION", "TIME", "USER", "VERB", "MANAGER"]
    assert lines[2].split() == ["9", "2026-12-03T20:24:00Z", "alice", "update", "<none>"]
    diff = revision_diff(by_plural("configmaps"), "app", items, 5, 9)
    assert diff.splitlines()[:2] == ["--- configmap/app revision 5", "+++ configmap/app revision 9"]
    assert "-  color: blue\n" in diff and "+  color: green\n" in diff and "resourceVersion" not in diff
    with pytest.raises(CliError, match="revision 7 of configmap/app is not kept"):
        revision_diff(by_plural("configmaps"), "app", items, 5, 7)
