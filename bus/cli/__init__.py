"""The ``k8n`` command line."""
