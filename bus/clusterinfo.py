"""The ``kube-public/cluster-info`` ConfigMap (kubeadm's discovery document): how a machine that wants to join finds
the cluster. Anyone may read it, without a token: ``kubeconfig`` names the HTTPS API server and carries the cluster
CA, and k8n adds ``nats-servers``, the NATS URLs a node's agent connects to (and ``nats-routes``, the routes of a
clustered NATS, which a machine joining the control plane adds its server to). The joining machine trusts what it reads
only once the CA's public key hash matches the one it was given (``--ca-hash``, :func:`bus.pki.ca_hash`)."""

from __future__ import annotations

import base64
from dataclasses import dataclass

NAMESPACE = "kube-public"
NAME = "cluster-info"
PATH = f"/api/v1/namespaces/{NAMESPACE}/configmaps/{NAME}"
KUBECONFIG_KEY = "kubeconfig"
NATS_KEY = "nats-servers"
ROUTES_KEY = "nats-routes"  # the NATS cluster's route URLs, when it is one: what a joining control plane routes to


@dataclass(frozen=True)
class ClusterInfo:
    server: str  # https://host:port of the API (the gateway)
    ca_pem: bytes
    nats_servers: tuple[str, ...]
    nats_routes: tuple[str, ...] = ()

    def configmap(self) -> dict:
        import yaml

        kubeconfig = {"apiVersion": "v1", "kind": "Config", "preferences": {}, "users": None, "contexts": None,
                      "current-context": "",
                      "clusters": [{"name": "", "cluster": {
                          "server": self.server,
                          "certificate-authority-data": base64.b64encode(self.ca_pem).decode()}}]}
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": NAME, "namespace": NAMESPACE},
                "data": {KUBECONFIG_KEY: yaml.safe_dump(kubeconfig, sort_keys=False),
                         NATS_KEY: ",".join(self.nats_servers),
                         **({ROUTES_KEY: ",".join(self.nats_routes)} if self.nats_routes else {})}}

    @classmethod
    def from_configmap(cls, cm: dict) -> "ClusterInfo":
        """ValueError naming what is missing."""
        import yaml

        data = cm.get("data") or {}
        try:
            doc = yaml.safe_load(data.get(KUBECONFIG_KEY) or "")
            cluster = doc["clusters"][0]["cluster"]
            server, ca = cluster["server"], base64.b64decode(cluster["certificate-authority-data"])
        except (yaml.YAMLError, KeyError, IndexError, TypeError, ValueError):
            raise ValueError(f"{NAMESPACE}/{NAME} has no kubeconfig with a server and its CA") from None
        nats = tuple(u for u in (data.get(NATS_KEY) or "").split(",") if u)
        if not nats:
            raise ValueError(f"{NAMESPACE}/{NAME} names no NATS servers ({NATS_KEY})")
        routes = tuple(u for u in (data.get(ROUTES_KEY) or "").split(",") if u)
        return cls(str(server), ca, nats, routes)
