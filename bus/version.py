"""What ``/version`` answers, on the bus (the API server's version subject) and over HTTP (the gateway)."""

from __future__ import annotations

import platform

import bus


def version_info() -> dict:
    return {"major": "1", "minor": "32", "gitVersion": f"v{bus.__version__}", "k8nVersion": bus.__version__,
            "platform": f"{platform.system().lower()}/{platform.machine()}",
            "pythonVersion": platform.python_version()}
