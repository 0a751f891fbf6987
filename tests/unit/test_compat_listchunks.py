"""The pure parts of list chunking: Kubernetes' continue token, the list-request options, key order."""

from __future__ import annotations

import base64
import json

import pytest

from bus import errors, listchunks, subjects


def test_the_token_is_kubernetes_format():
    token = listchunks.encode_continue(42, "default/web")
    assert "=" not in token
    doc = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert doc == {"v": "meta.k8s.io/v1", "rv": 42, "start": "default/web\u0000"}
    assert listchunks.decode_continue(token) == listchunks.Continue(42, "default/web\u0000")


@pytest.mark.parametrize("doc, message", [
    ({"v": "meta.k8s.io/v2", "rv": 1, "start": "a"}, "server does not recognize this encoded version"),
    ({"v": "meta.k8s.io/v1", "rv": 0, "start": "a"}, "incorrect encoded start resourceVersion"),
    ({"v": "meta.k8s.io/v1", "rv": 3, "start": ""}, "encoded start key empty"),
    ({"v": "meta.k8s.io/v1", "rv": 3, "start": "../x"}, "invalid start key"),
])
def test_tokens_kube_apiserver_refuses_are_400(doc, message):
    token = base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()
    with pytest.raises(errors.BadRequest, match=message):
        listchunks.decode_continue(token)
    with pytest.raises(errors.BadRequest, match="continue key is not valid"):
        listchunks.decode_continue("%%%")


def test_options():
    assert listchunks.chunking({"limit": "500"}) == (500, None)
    assert listchunks.chunking({}) == (0, None)
    assert listchunks.chunking({"limit": "500", "resourceVersion": "0"}) == (0, None)  # served whole, as from cache
    assert listchunks.chunking({"limit": 2, "continue": "t"}) == (2, "t")
    with pytest.raises(errors.BadRequest, match="specifying resource version is not allowed when using continue"):
        listchunks.chunking({"continue": "t", "resourceVersion": "7"})
    with pytest.raises(errors.BadRequest):
        listchunks.chunking({"limit": "many"})


def test_keys_follow_etcd_order_namespace_slash_name():
    subs = [subjects.kv_subject("pods", ns, name) for ns, name in
            [("b", "x"), ("a-b", "y"), ("a", "z.dotted"), ("a", "w")]]
    assert [k for k, _ in listchunks.keys_of(subs, "pods", True)] == ["a-b/y", "a/w", "a/z.dotted", "b/x"]
    assert [k for k, _ in listchunks.keys_of(subs[2:], "pods", False)] == ["w", "z.dotted"]


def test_expired_carries_kubernetes_message_and_an_inconsistent_token():
    err = listchunks.expired("a/b\u0000")
    st = err.status()
    assert (st["code"], st["reason"]) == (410, "Expired")
    assert st["message"].startswith("The provided continue parameter is too old")
    assert listchunks.decode_continue(st["metadata"]["continue"]) == listchunks.Continue(-1, "a/b\u0000")
