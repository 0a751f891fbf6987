"""The ingress data path: Kubernetes Ingress objects → an HAProxy configuration (config.py) and the
running haproxy it programs (haproxy.py)."""
