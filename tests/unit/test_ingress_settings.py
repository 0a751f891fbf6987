"""The ingress controller's flags (``k8n ingress``/``python -m node.ingress``): defaults, the environment, and bad
values refused as usage errors naming the flag."""

from __future__ import annotations

import pytest

from node.ingress import __main__ as entry
from node.ingress.settings import IngressSettings


def test_defaults_are_ports_80_and_443_on_every_address_for_both_built_in_classes(monkeypatch):
    for var in ("K8N_INGRESS_HTTP_PORT", "K8N_INGRESS_HTTPS_PORT", "K8N_INGRESS_CLASSES", "K8N_INGRESS_ADDRESSES"):
        monkeypatch.delenv(var, raising=False)
    s = entry.parse(["--name", "n1"]).settings
    assert (s.http_port, s.https_port, s.bind_address) == (80, 443, "0.0.0.0")
    assert s.class_set == {"k8n", "nginx"} and s.address_list == []


def test_flags_and_environment(monkeypatch):
    monkeypatch.setenv("K8N_INGRESS_HTTPS_PORT", "8443")
    s = entry.parse(["--name", "n1", "--ingress-http-port", "8080", "--ingress-addresses", "192.0.2.1, lb.test",
                     "--ingress-classes", "nginx"]).settings
    assert (s.http_port, s.https_port) == (8080, 8443)
    assert s.address_list == ["192.0.2.1", "lb.test"] and s.class_set == {"nginx"}


@pytest.mark.parametrize("argv, says", [
    (["--ingress-http-port", "0"], "--ingress-http-port 0"),
    (["--ingress-https-port", "70000"], "--ingress-https-port 70000"),
    (["--ingress-http-port", "8000", "--ingress-https-port", "8000"], "both 8000"),
    (["--ingress-bind-address", "eth0"], "--ingress-bind-address 'eth0'"),
    (["--ingress-classes", " , "], "--ingress-classes"),
])
def test_bad_values_are_usage_errors(argv, says, capsys):
    with pytest.raises(SystemExit) as e:
        entry.parse(["--name", "n1", *argv])
    assert e.value.code == 2
    assert says in capsys.readouterr().err


def test_the_default_certificate_is_made_once_and_kept(tmp_path):
    first = entry.default_cert(tmp_path)
    assert b"BEGIN CERTIFICATE" in first and b"PRIVATE KEY" in first
    assert (tmp_path / entry.DEFAULT_CERT).stat().st_mode & 0o777 == 0o600
    assert entry.default_cert(tmp_path) == first


def test_settings_refuse_what_haproxy_could_not_use():
    with pytest.raises(ValueError):
        IngressSettings(http_port=443, https_port=443)
