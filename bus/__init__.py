"""k8n bus: the shared contract (models, codecs, subjects, store, client) and the k8n CLI."""

__version__ = "0.2.0"
