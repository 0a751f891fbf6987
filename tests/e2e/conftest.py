"""Fixtures shared by the end-to-end modules: ``machines`` (k8n on three machines of a rig, one cluster per module
that uses it; tests/e2e/machines.py)."""

from tests.e2e.machines import machines  # noqa: F401
