"""Placeholder: the kubectl-shaped verbs are being written."""
