"""Pure translation of Kubernetes container specs into Docker create arguments (no Docker calls here)."""

from __future__ import annotations

import re
from typing import Any

from docker.types import LogConfig, Mount as DockerMount

from bus.quantity import cpu_millis, memory_bytes

from .model import Mount

# kubelet's log rotation defaults (containerLogMaxSize 10Mi, containerLogMaxFiles 5)
LOG_CONFIG = LogConfig(type="json-file", config={"max-size": "10m", "max-file": "5"})
_MIN_SHARES, _MIN_NANO_CPUS = 2, 10_000_000  # kubelet's MilliCPUToShares floor; Docker's 0.01 CPU floor
_VAR_REF = re.compile(r"\$\$|\$\(([^)]*)\)")


def normalize_image(image: str) -> str:
    """``busybox`` → ``busybox:latest``; a reference with a tag or a digest is kept as written."""
    if "@" in image:
        return image
    return image if ":" in image.rsplit("/", 1)[-1] else image + ":latest"


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion of command and args: unknown references stay, ``$$`` escapes ``$``."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR_REF.sub(sub, value)


def resources(container: dict) -> dict[str, Any]:
    """limits.cpu → nano_cpus, limits.memory → mem_limit (= memswap: no swap), requests.cpu → cpu_shares."""
    res = container.get("resources") or {}
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    out: dict[str, Any] = {}
    if limits.get("cpu") is not None and (millis := cpu_millis(limits["cpu"])) > 0:
        out["nano_cpus"] = max(_MIN_NANO_CPUS, millis * 1_000_000)
    if limits.get("memory") is not None and (mem := memory_bytes(limits["memory"])) > 0:
        out["mem_limit"] = out["memswap_limit"] = mem
    request = requests.get("cpu", limits.get("cpu"))  # the API server defaults requests to limits
    out["cpu_shares"] = max(_MIN_SHARES, cpu_millis(request) * 1024 // 1000) if request is not None else _MIN_SHARES
    return out


def container_create_args(container: dict, env: dict[str, str],
                          mounts: list[Mount]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Arguments for ``APIClient.create_container`` and for ``create_host_config`` (all but name, labels and
    network mode).

    Kubernetes semantics: ``command`` replaces the image ENTRYPOINT (and then the image CMD is not used),
    ``args`` replaces the image CMD; with only ``args`` the image ENTRYPOINT stays. Docker's create does exactly
    that when given ``entrypoint``/``command``, so the image need not be inspected.
    """
    command = [expand(s, env) for s in container.get("command") or []] or None
    args = [expand(s, env) for s in container.get("args") or []] or None
    return dict(
        image=normalize_image(container["image"]), entrypoint=command, command=args,
        environment=[f"{k}={v}" for k, v in env.items()], working_dir=container.get("workingDir") or None,
        tty=bool(container.get("tty")), stdin_open=bool(container.get("stdin")),
    ), dict(
        mounts=[DockerMount(m.target, m.source, type="bind", read_only=m.read_only) for m in mounts],
        log_config=LOG_CONFIG, **resources(container),
    )
