"""The k8n API server: Kubernetes verbs over NATS request/reply, objects in JetStream KV."""

from master.apiserver.server import ApiServer

__all__ = ["ApiServer"]
