"""Container CPU and memory usage read straight from the cgroup filesystem, as cAdvisor does.

Cheaper than Docker's stats endpoint, and the only source for app containers joined to a networking-disabled
sandbox (dockerd's stats then fail looking up a network sandbox: "invalid id"). Knows Docker's default cgroup
layouts (cgroupfs and systemd drivers, cgroup v1 and v2); ``None`` when the container's cgroup is not found.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def _field(path: Path, name: str) -> int:
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == name:
            return int(value)
    return 0


def _v1(rel: str) -> tuple[int, int, int] | None:
    cpu = ROOT / "cpuacct" / rel / "cpuacct.usage"
    if not cpu.exists():
        return None
    mem = ROOT / "memory" / rel
    return (int(cpu.read_text()), int((mem / "memory.usage_in_bytes").read_text()),
            _field(mem / "memory.stat", "total_inactive_file"))


def _v2(rel: str) -> tuple[int, int, int] | None:
    group = ROOT / rel
    if not (group / "cpu.stat").exists():
        return None
    return (_field(group / "cpu.stat", "usage_usec") * 1000, int((group / "memory.current").read_text()),
            _field(group / "memory.stat", "inactive_file"))


def container_stats(container_id: str) -> dict[str, int] | None:
    """Cumulative CPU time (ns), memory usage and working set (usage − inactive file cache) of a running
    container given by its full id."""
    for rel in (f"docker/{container_id}", f"system.slice/docker-{container_id}.scope"):
        for reader in (_v1, _v2):
            try:
                found = reader(rel)
            except (OSError, ValueError):  # the container stopped meanwhile
                return None
            if found:
                cpu, usage, inactive = found
                return {"cpu_usage_ns": cpu, "memory_usage_bytes": usage,
                        "memory_working_set_bytes": max(0, usage - inactive)}
    return None
