"""A node's request for its own bus credentials, as a CertificateSigningRequest for signer ``k8n.io/bus-node``.

The joining machine makes a NATS user key pair itself (the seed never leaves it) and sends the public key in
``spec.request`` (base64 of ``{"node": NAME, "publicKey": "U..."}``); the API server answers with the user JWT, with
``node:<NAME>``'s permissions, in ``status.certificate`` (base64). The pair is an ordinary NATS ``.creds`` file
(:func:`bus.natsauth.creds_text`). Shared by ``k8n join`` (which builds the request) and the API server (which
parses and signs it)."""

from __future__ import annotations

import base64
import json

from bus.natsauth import is_user_public_key

SIGNER = "k8n.io/bus-node"
NODE_LABEL = "k8n.io/node"  # set by the API server on a signed request: the node it is for
USER_KEY_ANNOTATION = "k8n.io/bus-user"  # the NATS user public key the request was signed for
USAGES = ("client auth",)


def request_object(node: str, public_key: str) -> dict:
    body = json.dumps({"node": node, "publicKey": public_key}, separators=(",", ":")).encode()
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"generateName": "node-csr-"},
            "spec": {"signerName": SIGNER, "request": base64.b64encode(body).decode(), "usages": list(USAGES)}}


def parse_request(spec: dict) -> tuple[str, str]:
    """``(node, user public key)`` of a request's spec; ValueError saying what is wrong."""
    try:
        doc = json.loads(base64.b64decode(spec.get("request") or "", validate=True))
    except (ValueError, TypeError):
        raise ValueError('must be base64 of {"node": NAME, "publicKey": NATS user public key}') from None
    node, key = (doc.get("node"), doc.get("publicKey")) if isinstance(doc, dict) else (None, None)
    if not isinstance(node, str) or not node:
        raise ValueError("names no node")
    if not isinstance(key, str) or not key.startswith("U"):
        raise ValueError("carries no NATS user public key")
    if not is_user_public_key(key):
        raise ValueError(f"{key!r} is not a NATS user public key")
    return node, key


def issued_jwt(csr: dict) -> str | None:
    """The user JWT a signed request carries (None while it has none)."""
    cert = (csr.get("status") or {}).get("certificate")
    return base64.b64decode(cert).decode() if cert else None
