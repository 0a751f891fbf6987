"""Where the cluster lives: the data directory, and how clients find the NATS server."""

from __future__ import annotations

import json
import os
from pathlib import Path

#: the image of the container that holds each pod's network namespace (built locally by deploy/images/build.sh)
PAUSE_IMAGE = "k8n/pause:3.9"

DEFAULT_SERVER = "nats://127.0.0.1:4222"
CLUSTER_FILE = "cluster.json"


def data_dir(flag: str | os.PathLike | None = None) -> Path:
    """``--data-dir``, else ``K8N_DATA_DIR``, else ``~/.k8n``."""
    if flag:
        return Path(flag).expanduser()
    env = os.environ.get("K8N_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".k8n"


def default_route_address() -> str:
    """The address this host uses for its default route (no packet is sent); loopback when it has none. A node's
    InternalIP and the address the gateway advertises to pods."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.254", 9))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def write_cluster_info(directory: Path, server: str, **extra: object) -> Path:
    """Record how to reach a running cluster (``k8n up`` does this)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CLUSTER_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"server": server, **extra}, indent=2))
    tmp.replace(path)
    return path


def read_cluster_info(directory: Path) -> dict | None:
    try:
        return json.loads((directory / CLUSTER_FILE).read_text())
    except (OSError, ValueError):
        return None


def clear_cluster_info(directory: Path) -> None:
    try:
        (directory / CLUSTER_FILE).unlink()
    except OSError:
        pass


def server_url(flag: str | None = None, data_dir_flag: str | os.PathLike | None = None) -> str:
    """``--server``, else ``K8N_SERVER``, else what ``k8n up`` recorded in the data directory,
    else the default local NATS URL."""
    if flag:
        return flag
    env = os.environ.get("K8N_SERVER")
    if env:
        return env
    info = read_cluster_info(data_dir(data_dir_flag))
    if info and info.get("server"):
        return str(info["server"])
    return DEFAULT_SERVER
