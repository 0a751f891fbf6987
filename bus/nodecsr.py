"""A node's request for its own bus credentials, as a CertificateSigningRequest for signer ``k8n.io/bus-node``.

The joining machine makes a NATS user key pair itself (the seed never leaves it) and sends the public key in
``spec.request`` (base64 of ``{"node": NAME, "publicKey": "U..."}``); the API server answers with the user JWT, with
``node:<NAME>``'s permissions, in ``status.certificate`` (base64). The pair is an ordinary NATS ``.creds`` file
(:func:`bus.natsauth.creds_text`). Shared by ``k8n join`` (which builds the request) and the API server (which
parses and signs it).

A machine that runs an ingress controller too (``k8n join`` does, unless ``--no-ingress``) adds the public key of a
second pair, ``"ingressPublicKey"``: the same request is then also signed for the bus identity ``ingress`` (read
Ingresses, IngressClasses, Services, EndpointSlices and Secrets; the API as ``system:k8n-ingress``), that JWT in the
annotation ``k8n.io/bus-ingress-credentials``. Both keys are the node's: revoked together when the Node is deleted or
the node asks again."""

from __future__ import annotations

import base64
import json

from bus.natsauth import is_user_public_key

SIGNER = "k8n.io/bus-node"
NODE_LABEL = "k8n.io/node"  # set by the API server on a signed request: the node it is for
USER_KEY_ANNOTATION = "k8n.io/bus-user"  # the NATS user public key the request was signed for
INGRESS_KEY_ANNOTATION = "k8n.io/bus-ingress-user"  # the ingress controller's NATS user public key, when asked for
INGRESS_JWT_ANNOTATION = "k8n.io/bus-ingress-credentials"  # the ingress controller's user JWT, when asked for
SIGNED_ANNOTATIONS = (USER_KEY_ANNOTATION, INGRESS_KEY_ANNOTATION, INGRESS_JWT_ANNOTATION)  # the API server's alone
USAGES = ("client auth",)


def request_object(node: str, public_key: str, ingress_key: str | None = None) -> dict:
    doc = {"node": node, "publicKey": public_key, **({"ingressPublicKey": ingress_key} if ingress_key else {})}
    body = json.dumps(doc, separators=(",", ":")).encode()
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"generateName": "node-csr-"},
            "spec": {"signerName": SIGNER, "request": base64.b64encode(body).decode(), "usages": list(USAGES)}}


def parse_request(spec: dict) -> tuple[str, str, str | None]:
    """``(node, user public key, the ingress controller's user public key or None)`` of a request's spec; ValueError
    saying what is wrong."""
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
    ingress = doc.get("ingressPublicKey")
    if ingress is not None and (not isinstance(ingress, str) or not is_user_public_key(ingress)):
        raise ValueError(f"ingressPublicKey {ingress!r} is not a NATS user public key")
    if ingress == key:
        raise ValueError("ingressPublicKey must be another key pair than publicKey")
    return node, key, ingress


def issued_jwt(csr: dict) -> str | None:
    """The user JWT a signed request carries (None while it has none)."""
    cert = (csr.get("status") or {}).get("certificate")
    return base64.b64decode(cert).decode() if cert else None


def issued_ingress_jwt(csr: dict) -> str | None:
    """The ingress controller's user JWT a signed request carries (None when it asked for none)."""
    return ((csr.get("metadata") or {}).get("annotations") or {}).get(INGRESS_JWT_ANNOTATION) or None


def signed_keys(csr: dict) -> list[str]:
    """The NATS user public keys a signed request was signed for (the node's, then the ingress controller's)."""
    ann = (csr.get("metadata") or {}).get("annotations") or {}
    return [k for k in (ann.get(USER_KEY_ANNOTATION), ann.get(INGRESS_KEY_ANNOTATION)) if k]
