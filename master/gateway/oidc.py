"""Service account issuer discovery, as kube-apiserver serves it (``pkg/serviceaccount/openidmetadata.go``):
``/.well-known/openid-configuration`` and ``/openid/v1/jwks`` (the JSON Web Key Set of every public key
ServiceAccount tokens are accepted with: the signing key's and the former ones kept after a rotation). Read from the
API server's public key file (``sa.pub``: ``$K8N_SERVICE_ACCOUNT_KEY_FILE`` with suffix ``.pub``, else the one in
``--cert-dir``), reread when it changes. Authorized like any path: RBAC's ``system:service-account-issuer-discovery``
lets every ServiceAccount read them."""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp import web

from bus import errors, tokens
from master.gateway.respond import json_response

KEYS_PATH: web.AppKey[Path] = web.AppKey("oidc_keys_path", Path)
_CACHE: web.AppKey[dict] = web.AppKey("oidc_cache", dict)
JWKS_PATH = "/openid/v1/jwks"


def public_keys_path(cert_dir: Path | None) -> Path | None:
    """Where the gateway reads the public keys: beside ``$K8N_SERVICE_ACCOUNT_KEY_FILE``, else ``<cert dir>/sa.pub``."""
    env = os.environ.get("K8N_SERVICE_ACCOUNT_KEY_FILE")
    if env:
        return tokens.public_key_path(Path(env).expanduser())
    return Path(cert_dir) / f"sa{tokens.PUBLIC_SUFFIX}" if cert_dir else None


def current_jwks(app: web.Application) -> dict:
    path = app.get(KEYS_PATH)
    try:
        st = path.stat() if path else None
    except FileNotFoundError:
        st = None
    if st is None:
        raise errors.NotFound(404, "the server could not find the requested resource")
    cache = app[_CACHE]
    version = (st.st_mtime_ns, st.st_size, st.st_ino)
    if cache.get("version") != version:
        cache["jwks"] = tokens.jwks(tokens.parse_public_keys(path.read_bytes()))
        cache["version"] = version
    return cache["jwks"]


async def jwks(request: web.Request) -> web.Response:
    return json_response(current_jwks(request.app))


async def openid_configuration(request: web.Request) -> web.Response:
    current_jwks(request.app)  # 404 without keys
    issuer = tokens.DEFAULT_ISSUER
    return json_response({"issuer": issuer, "jwks_uri": issuer + JWKS_PATH, "response_types_supported": ["id_token"],
                          "subject_types_supported": ["public"],
                          "id_token_signing_alg_values_supported": [tokens.ALGORITHM]})


def add_routes(app: web.Application) -> None:
    app[_CACHE] = {}
    app.router.add_get("/.well-known/openid-configuration", openid_configuration)
    app.router.add_get(JWKS_PATH, jwks)
