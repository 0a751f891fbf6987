"""Bootstrap tokens (kubeadm's Secret format), cluster-info, and the node credential request: the pure parts."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import nkeys
import pytest

from bus import bootstraptoken as bt
from bus import clusterinfo, nodecsr, pki
from bus.natsauth import Key
from bus.resources import by_plural
from bus.tables import columns
from bus.validation import validate_object

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=timezone.utc)


def test_tokens_have_kubeadms_form_and_secret():
    token = bt.generate()
    assert bt.TOKEN_RE.match(token) and bt.generate() != token
    s = bt.secret_object("abcdef.0123456789abcdef", timedelta(hours=2), "for w1", now=NOW)
    assert s["metadata"] == {"name": "bootstrap-token-abcdef", "namespace": "kube-system"}
    assert s["type"] == "bootstrap.kubernetes.io/token"
    data = {k: base64.b64decode(v).decode() for k, v in s["data"].items()}
    assert data == {"token-id": "abcdef", "token-secret": "0123456789abcdef", "expiration": "2026-12-03T12:00:00Z",
                    "usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
                    "auth-extra-groups": "system:bootstrappers:k8n:default-node-token", "description": "for w1"}
    with pytest.raises(ValueError, match='was not of the form'):
        bt.parse("ABCDEF.0123456789abcdef")
    with pytest.raises(ValueError, match="auth-extra-group"):
        bt.secret_object("abcdef.0123456789abcdef", groups=("system:masters",))


def test_a_token_authenticates_as_its_bootstrap_user_until_it_expires():
    s = bt.secret_object("abcdef.0123456789abcdef", timedelta(hours=1), now=NOW)
    user = bt.authenticate(s, "abcdef.0123456789abcdef", NOW + timedelta(minutes=59))
    assert user.name == "system:bootstrap:abcdef"
    assert user.groups == ("system:bootstrappers", "system:bootstrappers:k8n:default-node-token",
                           "system:authenticated")
    assert bt.token_id_of(user) == "abcdef"
    with pytest.raises(ValueError, match="expired at 2026-12-03T11:00:00Z"):
        bt.authenticate(s, "abcdef.0123456789abcdef", NOW + timedelta(hours=1))
    with pytest.raises(ValueError, match="secret does not match"):
        bt.authenticate(s, "abcdef.0123456789abcdeg", NOW)
    s["metadata"]["deletionTimestamp"] = "2026-12-03T10:00:00Z"
    with pytest.raises(ValueError, match="being deleted"):
        bt.authenticate(s, "abcdef.0123456789abcdef", NOW)
    forever = bt.BootstrapToken.from_secret(bt.secret_object("abcdef.0123456789abcdef", None))
    assert forever.expiration is None and forever.ttl() == "<forever>"
    t = bt.BootstrapToken.from_secret(bt.secret_object("abcdef.0123456789abcdef", timedelta(hours=24), now=NOW))
    assert t.ttl(NOW) == "24h" and t.ttl(NOW + timedelta(hours=23, minutes=30)) == "30m"
    assert t.ttl(NOW + timedelta(days=2)) == "<invalid>"


def test_cluster_info_round_trips_and_pins_the_ca(tmp_path):
    _, _, ca = pki.ensure(tmp_path)
    info = clusterinfo.ClusterInfo("https://10.0.0.1:6443", ca.read_bytes(), ("tls://10.0.0.1:4222",))
    cm = info.configmap()
    assert cm["metadata"] == {"name": "cluster-info", "namespace": "kube-public"}
    assert clusterinfo.ClusterInfo.from_configmap(cm) == info
    assert pki.ca_hash(ca.read_bytes()).startswith("sha256:") and len(pki.ca_hash(ca.read_bytes())) == 71
    with pytest.raises(ValueError, match="names no NATS servers"):
        clusterinfo.ClusterInfo.from_configmap({"data": {"kubeconfig": cm["data"]["kubeconfig"]}})


def test_the_node_credential_request_carries_only_a_public_key():
    key = Key.generate(nkeys.PREFIX_BYTE_USER)
    csr = nodecsr.request_object("w1", key.public)
    assert key.seed.decode() not in str(csr)
    assert nodecsr.parse_request(csr["spec"]) == ("w1", key.public, None)
    ingress = Key.generate(nkeys.PREFIX_BYTE_USER)
    both = nodecsr.request_object("w1", key.public, ingress.public)  # with its ingress controller's key
    assert ingress.seed.decode() not in str(both)
    assert nodecsr.parse_request(both["spec"]) == ("w1", key.public, ingress.public)
    for wrong, says in ((key.public, "another key pair"), ("Unope", "not a NATS user public key")):
        with pytest.raises(ValueError, match=says):
            nodecsr.parse_request(nodecsr.request_object("w1", key.public, wrong)["spec"])
    account = Key.generate(nkeys.PREFIX_BYTE_ACCOUNT).public
    bad = nodecsr.request_object("w1", account)
    with pytest.raises(ValueError, match="no NATS user public key"):
        nodecsr.parse_request(bad["spec"])
    res = by_plural("certificatesigningrequests")
    _, causes = validate_object(res, {**csr, "metadata": {"name": "x"}})
    assert causes == []
    _, causes = validate_object(res, {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                                      "metadata": {"name": "x"}, "spec": {"signerName": "nodomain",
                                                                          "expirationSeconds": 60}})
    assert [c.field for c in causes] == ["spec.request", "spec.signerName", "spec.usages", "spec.expirationSeconds"]


def test_kubectl_columns_of_a_csr():
    cols = columns("CertificateSigningRequest")
    assert [c[0] for c in cols] == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]
    cond = dict(cols)["CONDITION"]
    assert cond({"status": {}}, NOW) == "Pending"
    assert cond({"status": {"conditions": [{"type": "Approved"}], "certificate": "eA=="}}, NOW) == "Approved,Issued"
    assert cond({"status": {"conditions": [{"type": "Denied"}]}}, NOW) == "Denied"


def test_the_token_cleaner_knows_when_a_token_expires():
    from master.controllers.tokencleaner import seconds_left

    s = bt.secret_object("abcdef.0123456789abcdef", timedelta(minutes=10), now=NOW)
    assert seconds_left(s, NOW.timestamp()) == 600 and seconds_left(s, NOW.timestamp() + 601) == -1
    assert seconds_left(bt.secret_object("abcdef.0123456789abcdef", None), NOW.timestamp()) is None
    assert seconds_left({"type": "Opaque", "metadata": {"name": "x"}}, NOW.timestamp()) is None


def test_the_control_plane_keys_travel_sealed(tmp_path):
    from bus.cli.common import CliError
    from bus.cli.controlplane import new_key, seal, unseal

    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.key").write_bytes(b"-----BEGIN EC PRIVATE KEY-----\nsecret\n")
    (tmp_path / "tokens.csv").write_text("tok,admin,admin\n")
    (tmp_path / "pki" / "other.key").write_text("not part of it")
    key = new_key()
    blob = seal(tmp_path, key)
    assert b"secret" not in base64.b64decode(blob) and "tok,admin" not in blob
    assert unseal(blob, key) == {"pki/ca.key": b"-----BEGIN EC PRIVATE KEY-----\nsecret\n",
                                 "tokens.csv": b"tok,admin,admin\n"}
    with pytest.raises(CliError, match="does not open"):
        unseal(blob, new_key())
