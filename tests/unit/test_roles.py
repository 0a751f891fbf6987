"""The bus's identities and role table (bus/roles.py) and the JWTs bus/natsauth.py makes: what each role may
publish and subscribe to, checked as properties of the table (the real server enforces them:
tests/integration/test_bus_auth.py)."""

from __future__ import annotations

import pytest

from bus import roles
from bus.natsauth import ClusterAuth, Credentials, decode_jwt
from bus.roles import Identity, permissions_for

ALL = [Identity(roles.APISERVER), Identity(roles.APISERVER, "cp-1"), Identity(roles.NODEVIEW),
       Identity(roles.CONTROLLER_MANAGER), Identity(roles.SCHEDULER), Identity(roles.GATEWAY),
       Identity.node("w1"), Identity.node("web.example"), Identity(roles.INGRESS), Identity(roles.ADMIN),
       Identity(roles.SUBSCRIBER, "ev")]


def test_identity_tokens_round_trip_and_name_their_files():
    for ident in ALL:
        assert Identity.parse(ident.token) == ident
    assert Identity.node("web.example").token == "node:web_example"
    assert Identity.node("w1").file_name == "node-w1"
    assert Identity(roles.APISERVER, "cp-1").file_name == "apiserver"
    assert Identity(roles.ADMIN).inbox_prefix == "_INBOX.admin"


@pytest.mark.parametrize("bad", ["root", "node", "node:", "node:a.b", "node:A", "admin:x", "subscriber", "node:a*"])
def test_unknown_roles_and_bad_names_are_refused(bad):
    with pytest.raises(ValueError):
        Identity.parse(bad)


@pytest.mark.parametrize("ident", ALL, ids=lambda i: i.token)
def test_only_api_servers_write_kv_or_manage_streams_and_each_reads_only_its_inbox(ident):
    p = permissions_for(ident)
    writes_kv = any(s.startswith("$KV.") for s in p.pub_allow)
    if ident.role == roles.APISERVER:
        assert "$KV.>" in p.pub_allow and "$JS.API.>" in p.pub_allow
    elif ident.role == roles.NODEVIEW:
        assert [s for s in p.pub_allow if s.startswith("$KV.")] == ["$KV.k8n-nodepods.>"]
    else:
        assert not writes_kv
        assert not any(s.startswith(("$JS.API.STREAM.CREATE", "$JS.API.STREAM.DELETE", "$JS.API.CONSUMER.DELETE",
                                     "$JS.API.>")) for s in p.pub_allow)
    inboxes = [s for s in p.sub_allow if s.startswith("_INBOX")]
    assert inboxes == [f"_INBOX.{ident.token}.>"]
    api = [s for s in p.pub_allow if s.startswith("k8n.api.")]
    if ident.role == roles.SUBSCRIBER:
        assert api == []
    elif ident.role == roles.APISERVER:  # it sends no API request but one: the other replicas' version (bus.skew)
        assert api == [f"k8n.api.{ident.token}.version.get"]
    else:
        assert api == [f"k8n.api.{ident.token}.>"]


def test_a_node_is_confined_to_its_own_subjects():
    p = permissions_for(Identity.node("w1"))
    assert "k8n.node.w1.>" in p.sub_allow and not any("k8n.node.*" in s for s in p.sub_allow + p.pub_allow)
    creates = [s for s in p.pub_allow if s.startswith("$JS.API.CONSUMER.CREATE.KV_k8n-nodepods")]
    assert creates == ["$JS.API.CONSUMER.CREATE.KV_k8n-nodepods.*.$KV.k8n-nodepods.w1.>"]
    assert not any("KV_k8n-pods" in s or "KV_k8n-secrets" in s for s in p.pub_allow)
    assert "k8n.metrics.node.w1" in p.pub_allow and "k8n.metrics.pod.w1.>" in p.pub_allow


def test_the_ingress_controller_reads_only_what_routing_needs():
    p = permissions_for(Identity(roles.INGRESS))
    creates = {s.split(".")[4] for s in p.pub_allow if s.startswith("$JS.API.CONSUMER.CREATE.")}
    assert creates == {"KV_k8n-ingresses", "KV_k8n-ingressclasses", "KV_k8n-services", "KV_k8n-endpointslices",
                       "KV_k8n-secrets", "KV_k8n-leases"}
    leases = [s for s in p.pub_allow if s.startswith("$JS.API.CONSUMER.CREATE.KV_k8n-leases")]
    assert leases == ["$JS.API.CONSUMER.CREATE.KV_k8n-leases.*.$KV.k8n-leases.kube-system.>"]  # presence only
    assert not any("KV_k8n-pods" in s or "KV_k8n-replies" in s or "HIST_" in s for s in p.pub_allow)
    assert not any(s.startswith(("$JS.API.DIRECT.GET", "k8n.node.")) for s in p.pub_allow)
    assert p.responses == 0 and p.sub_allow == ("_INBOX.ingress.>",)


def test_the_subscriber_never_sees_secrets_or_replies():
    p = permissions_for(Identity(roles.SUBSCRIBER, "ev"))
    assert "$KV.k8n-secrets.>" in p.sub_deny and "$KV.k8n-replies.>" in p.sub_deny
    assert any("KV_k8n-secrets" in s for s in p.pub_deny)


def test_minted_credentials_carry_the_identity_and_its_permissions(tmp_path):
    auth = ClusterAuth.load_or_create(tmp_path / "keys")
    path = auth.write_creds(Identity.node("w1"), tmp_path / "creds")
    creds = Credentials.load(path)
    assert creds.identity == Identity.node("w1")
    jwt = path.read_text().split("-----BEGIN NATS USER JWT-----")[1].split()[0]
    claims = decode_jwt(jwt)
    perms = permissions_for(Identity.node("w1"))
    assert claims["nats"]["pub"]["allow"] == list(perms.pub_allow)
    assert claims["nats"]["issuer_account"] == auth.account_public and claims["iss"] != auth.account_public
    assert path.stat().st_mode & 0o777 == 0o600
    again = ClusterAuth.load_or_create(tmp_path / "keys")  # the keys persist
    assert again.account_public == auth.account_public
