"""The Kubernetes-compatible HTTP API gateway: stock kubectl and client libraries talk HTTP to it; it turns
each request into the same API server request on the bus, and serves watches off the same KV streams."""
