"""The k8n API server: Kubernetes verbs over NATS request/reply, objects in JetStream KV.

The process is ``master.apiserver.server.ApiServer``; this package imports nothing eagerly, so reading one of
its pure modules (strategy, patch, ssa, …) does not load the server.
"""
