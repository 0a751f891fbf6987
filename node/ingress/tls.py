"""TLS material for the ingress: the cert+key PEM haproxy loads from a ``kubernetes.io/tls`` Secret
(checked: a certificate, an unencrypted key, and the key matching it; errors never carry the
material), and a self-signed default certificate for SNI names without an Ingress certificate."""

from __future__ import annotations

import base64
import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def pem_pair(secret: dict) -> tuple[bytes, str]:
    """cert+key PEM for haproxy from a kubernetes.io/tls Secret, or an error (never the key itself)."""
    if secret.get("type") != "kubernetes.io/tls":
        return b"", "secret is not of type kubernetes.io/tls"
    data = secret.get("data") or {}
    try:
        crt = base64.b64decode(data.get("tls.crt") or "", validate=True)
        key = base64.b64decode(data.get("tls.key") or "", validate=True)
        cert = x509.load_pem_x509_certificates(crt)[0]
        pkey = serialization.load_pem_private_key(key, password=None)
    except Exception:  # noqa: BLE001 - any decoding failure: report without the material
        return b"", "tls.crt/tls.key: not a PEM certificate and unencrypted private key"
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(serialization.Encoding.PEM, pub) != pkey.public_key().public_bytes(
            serialization.Encoding.PEM, pub):
        return b"", "tls.key does not match tls.crt"
    return crt.rstrip(b"\n") + b"\n" + key.rstrip(b"\n") + b"\n", ""


def self_signed_pem(common_name: str = "k8n-ingress-default") -> bytes:
    """A fresh self-signed cert+key (PEM, SAN = ``common_name``) for SNI names no Ingress has a certificate for."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
