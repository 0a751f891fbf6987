"""What every gateway handler reaches through the aiohttp application."""

from __future__ import annotations

from aiohttp import web

from bus.client import ApiClient
from bus.crd import CrdRegistry

# The bus client (request/reply to the API server, KV reads and watches, node calls via bus.nodeclient).
CLIENT = web.AppKey("client", ApiClient)
# The CustomResourceDefinitions, watched: what custom resources are served (discovery, paths, tables).
CRDS = web.AppKey("crds", CrdRegistry)
