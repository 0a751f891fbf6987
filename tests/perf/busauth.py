"""The benchmarks' NATS server as the tests' (tests/conftest.py): authentication on, the control plane's and the
admin's credentials minted, and this process (and the components it starts) pointed at them."""

from __future__ import annotations

import os

from bus import roles
from bus.natsserver import NatsServer
from bus.roles import Identity

STANDARD = (roles.ADMIN, roles.APISERVER, roles.NODEVIEW, roles.CONTROLLER_MANAGER, roles.SCHEDULER, roles.GATEWAY)


def use_server(srv: NatsServer, *nodes: str) -> NatsServer:
    """Mint the standard identities (and ``nodes``' agents') into the server's creds dir and make it this process's
    ``$K8N_CREDS_DIR`` (children inherit it); the API server's token key beside them."""
    for role in STANDARD:
        srv.credentials(Identity(role))
    for node in nodes:
        srv.credentials(Identity.node(node))
    os.environ["K8N_CREDS_DIR"] = str(srv.creds_dir)
    os.environ.setdefault("K8N_SERVICE_ACCOUNT_KEY_FILE", str(srv.store_dir.parent / "pki" / "sa.key"))
    return srv
