"""The cluster's TLS: one CA and the certificates it signs, made once in the data directory.

- The gateway serves HTTPS (kubectl sends bearer tokens only over TLS); the kubeconfig ``k8n up`` writes carries the
  CA (``certificate-authority-data``): ``apiserver.crt``/``apiserver.key`` as kubeadm names them.
- NATS uses TLS whenever it listens beyond loopback: ``nats.crt``/``nats.key`` serve clients and, with client
  authentication too, the routes between the servers of a NATS cluster (:func:`ensure` with ``name="nats"``).
Files (``<dir>/``): ``ca.crt``, ``ca.key``, ``<name>.crt``, ``<name>.key`` (keys 0600); during a CA rotation
(:func:`rotate_ca`) ``ca.crt`` is the bundle of the new CA and the former one (kept alone in ``ca.crt.previous``).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bus.files import write_atomic

DNS_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
             "kubernetes.default.svc.cluster.local")
VALID_DAYS = 3650


def _write(path: Path, data: bytes, private: bool = False) -> None:
    write_atomic(path, data, 0o600 if private else 0o644)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _new_ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    k = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(k.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False)
            .sign(k, hashes.SHA256()))
    return cert, k


def _ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA that signs (the first certificate of ``ca.crt``, which holds the former CA too during a rotation) and its
    key; made when missing."""
    crt, key = directory / "ca.crt", directory / "ca.key"
    if crt.exists() and key.exists():
        return (x509.load_pem_x509_certificate(crt.read_bytes()),
                serialization.load_pem_private_key(key.read_bytes(), None))  # type: ignore[return-value]
    cert, k = _new_ca("k8n-ca")
    _write(key, _key_pem(k), private=True)
    _write(crt, cert.public_bytes(serialization.Encoding.PEM))
    return cert, k


def _covers(cert: x509.Certificate, host: str) -> bool:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        return ipaddress.ip_address(host) in sans.get_values_for_type(x509.IPAddress)
    except ValueError:
        return host in sans.get_values_for_type(x509.DNSName)


def ensure(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1",), name: str = "apiserver",
           common_name: str = "kube-apiserver", client_auth: bool = False) -> tuple[Path, Path, Path]:
    """``(cert, key, ca)`` paths of the serving certificate ``<name>``, made when missing (or when it does not name a
    host); ``client_auth``: usable as a client certificate too (NATS routes)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _ca(directory)
    crt, key = directory / f"{name}.crt", directory / f"{name}.key"
    wanted = {h for h in ("127.0.0.1", "::1", *hosts) if h not in ("", "0.0.0.0", "::")}
    if crt.exists() and key.exists():
        cur = x509.load_pem_x509_certificate(crt.read_bytes())
        if all(_covers(cur, h) for h in wanted):
            return crt, key, directory / "ca.crt"
    ips, dns = [], list(DNS_NAMES)
    for h in sorted(wanted):
        try:
            ips.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            dns.append(h)
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client_auth else [])
    _issue(directory, name, ca_cert, ca_key, _name(common_name),
           x509.SubjectAlternativeName([*(x509.DNSName(d) for d in dns), *ips]), usages)
    return crt, key, directory / "ca.crt"


def _issue(directory: Path, name: str, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
           subject: x509.Name, sans: x509.SubjectAlternativeName, usages: list) -> x509.Certificate:
    """A new key and certificate ``<name>.key``/``<name>.crt`` signed by the CA (each file replaced atomically;
    the key first, 0600)."""
    k = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
            .public_key(k.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(sans, critical=False)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    _write(directory / f"{name}.key", _key_pem(k), private=True)
    _write(directory / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM))
    return cert


def renew(directory: Path, name: str) -> x509.Certificate:
    """Re-issue the leaf certificate ``<directory>/<name>.crt`` from the existing CA with a new key and serial, the
    same subject, SANs and extended key usages, valid :data:`VALID_DAYS` from now (``kubeadm certs renew``).
    FileNotFoundError when the certificate or the CA key is missing, ValueError when the certificate does not parse
    or names no hosts; the CA itself is never renewed here."""
    directory = Path(directory)
    if not (directory / "ca.key").exists():
        raise FileNotFoundError(f"{directory / 'ca.key'}: no CA key to sign with")
    ca_cert, ca_key = _ca(directory)
    cur = x509.load_pem_x509_certificate((directory / f"{name}.crt").read_bytes())
    try:
        sans = cur.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise ValueError(f"{directory / f'{name}.crt'} names no hosts (no subjectAltName)") from None
    try:
        usages = list(cur.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        usages = [ExtendedKeyUsageOID.SERVER_AUTH]
    return _issue(directory, name, ca_cert, ca_key, cur.subject, sans, usages)


# ---- CA rotation (kubeadm's manual procedure, in two steps) ------------------------------------------------------
#
# rotate_ca: a new CA (its own subject: chains never mix the two) signs from now on; ``ca.crt`` becomes the bundle
# new + former, so whoever trusts ``ca.crt`` trusts the certificates of both while they change; every leaf is
# re-issued by the new CA. finish_ca_rotation: ``ca.crt`` holds the new CA alone again.

PREVIOUS_CA = "ca.crt.previous"  # the former CA during a rotation (not *.crt: no leaf, no CA of its own)


def rotating(directory: Path) -> bool:
    return (Path(directory) / PREVIOUS_CA).exists()


def leaf_names(directory: Path) -> list[str]:
    """The leaf certificates in ``directory`` (``<name>.crt`` with its key, the CA left out)."""
    return sorted(p.stem for p in Path(directory).glob("*.crt") if p.stem != "ca" and (p.with_suffix(".key")).exists())


def rotate_ca(directory: Path) -> x509.Certificate:
    """Start a rotation: a new CA signs; ``ca.crt`` is the bundle new + former; every leaf re-issued (new keys).
    ValueError while a rotation is in progress or when there is no CA key here (an external CA)."""
    directory = Path(directory)
    if rotating(directory):
        raise ValueError(f"a CA rotation is in progress ({directory / PREVIOUS_CA} exists): finish it first")
    if not (directory / "ca.key").exists() or not (directory / "ca.crt").exists():
        raise ValueError(f"{directory}: no CA and CA key here to rotate (an external CA is rotated where it lives)")
    former = (directory / "ca.crt").read_bytes()
    if len(x509.load_pem_x509_certificates(former)) != 1:
        raise ValueError(f"{directory / 'ca.crt'} holds several certificates: not a CA k8n made")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M%S")
    cert, k = _new_ca(f"k8n-ca-{stamp}")
    _write(directory / PREVIOUS_CA, former)  # first: the step that says a rotation runs
    _write(directory / "ca.key", _key_pem(k), private=True)
    _write(directory / "ca.crt", cert.public_bytes(serialization.Encoding.PEM) + former)
    for name in leaf_names(directory):
        renew(directory, name)
    return cert


def finish_ca_rotation(directory: Path) -> x509.Certificate:
    """End a rotation: ``ca.crt`` holds the new CA alone. ValueError when none runs, or when a leaf here is still
    signed by the former CA (re-issued leaves only are served after the rotation)."""
    directory = Path(directory)
    if not rotating(directory):
        raise ValueError("no CA rotation is in progress (start one with `k8n certs rotate-ca`)")
    ca_cert, _ = _ca(directory)
    stale = [n for n in leaf_names(directory)
             if x509.load_pem_x509_certificate((directory / f"{n}.crt").read_bytes()).issuer != ca_cert.subject]
    if stale:
        raise ValueError(f"still signed by the former CA: {', '.join(stale)} (`k8n certs renew all`)")
    _write(directory / "ca.crt", ca_cert.public_bytes(serialization.Encoding.PEM))
    (directory / PREVIOUS_CA).unlink()
    return ca_cert


def ca_hash(ca_pem: bytes) -> str:
    """kubeadm's CA pin: ``sha256:<hex>`` of the CA certificate's DER SubjectPublicKeyInfo (what ``k8n join
    --ca-hash`` and ``kubeadm join --discovery-token-ca-cert-hash`` compare); ValueError for what is not a PEM
    certificate."""
    cert = x509.load_pem_x509_certificate(ca_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()
