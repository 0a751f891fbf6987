"""The pod's ``/etc/hosts`` and ``/etc/resolv.conf``, written by the runtime and bind-mounted into every app
container, as the kubelet does (the sandbox runs with networking disabled, so Docker writes neither)."""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

HOSTS, RESOLV = "/etc/hosts", "/etc/resolv.conf"
_HOSTS_BASE = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
               "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
_DEFAULT_NAMESERVERS = ("8.8.8.8", "8.8.4.4")  # Docker's fallback when the host only has local resolvers


def resolv_conf(host_resolv: str) -> str:
    """The host's resolv.conf without loopback nameservers (useless inside a pod), as Docker copies it."""
    lines, servers = [], 0
    for line in host_resolv.splitlines():
        parts = line.split()
        if parts[:1] == ["nameserver"] and len(parts) > 1:
            try:
                if ipaddress.ip_address(parts[1].split("%")[0]).is_loopback:
                    continue
            except ValueError:
                pass
            servers += 1
        lines.append(line)
    if not servers:
        lines += [f"nameserver {ns}" for ns in _DEFAULT_NAMESERVERS]
    return "\n".join(lines) + "\n"


def write(pod_dir: Path, host_resolv_path: str = RESOLV) -> dict[str, str]:
    """Write the files; returns target → source for the bind mounts."""
    pod_dir.mkdir(parents=True, exist_ok=True)
    try:
        host_resolv = Path(host_resolv_path).read_text()
    except OSError:
        host_resolv = ""
    (pod_dir / "hosts").write_text(_HOSTS_BASE)
    (pod_dir / "resolv.conf").write_text(resolv_conf(host_resolv))
    return paths(pod_dir)


def paths(pod_dir: Path) -> dict[str, str]:
    return {HOSTS: str(pod_dir / "hosts"), RESOLV: str(pod_dir / "resolv.conf")}


def remove(pod_dir: Path) -> None:
    shutil.rmtree(pod_dir, ignore_errors=True)
