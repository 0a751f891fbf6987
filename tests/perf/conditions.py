"""Measuring conditions shared by the benchmarks: CPU seconds and RSS of processes (Linux /proc), the raw fsync rate of
the disk under a data directory (the ceiling for writes acknowledged only once on disk), the machine facts every
figure is printed with, KV writes per bucket (nats-server's monitoring endpoint) and py-spy profiles."""

from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (index 0 is the state)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (all its threads); NaN once it is gone."""
    try:
        f = stat_fields(pid)
    except OSError:
        return float("nan")
    return (int(f[11]) + int(f[12])) / _TICK


def cpu_snapshot(pids: dict[str, int | list[int]]) -> dict[str, float]:
    """CPU seconds so far of each named process (or group of processes, summed)."""
    return {name: sum(cpu_seconds(p) for p in ([p] if isinstance(p, int) else p)) for name, p in pids.items()}


def rss_bytes(pid: int) -> int:
    """Resident set size of one process now (0 once it is gone)."""
    try:
        return int(stat_fields(pid)[21]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def children(pid: int) -> list[int]:
    """The direct children of a process (every thread's), from /proc/<pid>/task/*/children."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def descendants(pid: int) -> list[int]:
    out, todo = [], children(pid)
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def fsync_rate(directory: str | os.PathLike, seconds: float = 2.0, size: int = 256) -> float:
    """Appends of ``size`` bytes, each followed by fsync, per second on the disk holding ``directory`` (as JetStream
    with ``sync_interval: always`` appends and fsyncs every write): the raw ceiling for writes acknowledged once on
    disk. The file it writes is removed."""
    path = Path(directory) / f".fsync-probe-{os.getpid()}"
    buf = os.urandom(size)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    n = 0
    try:
        t0 = time.perf_counter()
        deadline = t0 + seconds
        while True:
            os.write(fd, buf)
            os.fsync(fd)
            n += 1
            if time.perf_counter() >= deadline:
                break
        return n / (time.perf_counter() - t0)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)


def fsync_line(directory: str | os.PathLike, seconds: float = 2.0) -> str:
    """One printable line: the fsync rate of the disk under ``directory`` and which filesystem that is."""
    rate = fsync_rate(directory, seconds)
    return (f"fsync rate of the data disk: {rate:,.0f} fsyncs/s (256 B appends + fsync for {seconds:g}s, "
            f"{_fs(directory)})")


def _fs(directory: str | os.PathLike) -> str:
    """``fstype device`` of the mount holding ``directory`` (from /proc/self/mounts: the longest matching prefix)."""
    d = os.path.realpath(directory)
    best = ("", "?", "?")
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            dev, mnt, fstype = line.split()[:3]
            if (d == mnt or d.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best[0]):
                best = (mnt, fstype, dev)
    except OSError:
        pass
    return f"{best[1]} on {best[2]} at {best[0]}"


def nats_server_version() -> str:
    from bus.natsserver import binary

    try:
        out = subprocess.run([binary(), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, RuntimeError, subprocess.SubprocessError):
        return "nats-server ?"
    return out.strip().replace("nats-server: ", "nats-server ") or "nats-server ?"


def conf_value(conf: str | os.PathLike, key: str) -> str:
    """A setting of a nats-server configuration file as written (``sync_interval``, ``http``; ``?`` if absent)."""
    try:
        for line in Path(conf).read_text().splitlines():
            if line.strip().startswith(key + ":"):
                return line.split(":", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "?"


def conditions(sync_interval: str | None = None) -> dict[str, str]:
    """Machine facts: cores, CPU model, Python, nats-server version, load average, JetStream sync_interval."""
    from bus.natsserver import DURABLE_SYNC

    model = "?"
    try:
        model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                      if ln.startswith("model name")), "?")
    except OSError:
        pass
    return {"cores": str(os.cpu_count()), "cpu": model,
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "nats": nats_server_version(),
            "load average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "sync_interval": sync_interval or DURABLE_SYNC}


def describe(sync_interval: str | None = None) -> str:
    """``conditions()`` as one printable line."""
    c = conditions(sync_interval)
    return (f"conditions: {c['cores']} cores ({c['cpu']}), {c['python']}, {c['nats']}, "
            f"load average {c['load average']}, JetStream sync_interval {c['sync_interval']}")



def kv_writes(monitor: str) -> dict[str, int]:
    """Writes so far per JetStream stream (a KV bucket's: its last sequence counts puts and deletes, memory buckets
    included) from nats-server's monitoring endpoint (``host:port``, the configuration's ``http``): the difference
    of two calls is what a phase wrote, e.g. how many writes a pod create costs once the controllers reacted to it."""
    import json
    import urllib.request

    with urllib.request.urlopen(f"http://{monitor}/jsz?accounts=true&streams=true", timeout=10) as r:
        jsz = json.load(r)
    return {st["name"].removeprefix("KV_"): st["state"]["last_seq"]
            for acc in jsz.get("account_details", []) for st in acc.get("stream_detail", [])}


def interrupt(proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """SIGINT (a clean stop: ``k8n up``, py-spy), then SIGKILL if it has not exited after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class PySpy:
    """``py-spy record`` (raw collapsed stacks, 100 Hz, non-blocking: the process is not paused to sample) of some
    processes, from construction until :meth:`stop`, which prints each one's top functions (:func:`top_functions`).
    ``with_children``: labels whose processes are sampled with their subprocesses."""

    BINARY = Path(sys.executable).parent / "py-spy"

    def __init__(self, pids: dict[str, int], out_dir: str | os.PathLike, with_children: tuple[str, ...] = ()) -> None:
        self.spies = []
        for name, pid in pids.items():
            out = Path(out_dir) / f"py-spy-{name.replace(' ', '-')}{'' if str(pid) in name else f'-{pid}'}.raw"
            self.spies.append((name, out, subprocess.Popen(
                [str(self.BINARY), "record", "-p", str(pid), "-f", "raw", "-o", str(out), "-r", "100", "--nolineno",
                 "--nonblocking", *(["-s"] if name in with_children else [])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
        time.sleep(1.0)  # attached before what is to be measured starts

    def stop(self, top: int = 25) -> None:
        for name, out, proc in self.spies:
            interrupt(proc)  # py-spy writes its file on SIGINT
            print(f"\n  py-spy, {name}: " + top_functions(out, top))


def top_functions(path: str | os.PathLike, k: int = 25) -> str:
    """The ``k`` functions with the highest self share and with the highest inclusive share of the samples in a raw
    py-spy file, side by side. Frames in over 90 % of the samples (the entry point, the event loop's ``run``) are
    left out of the inclusive list; ``Runner.run``'s self time is the event loop's own (uvloop: I/O, callbacks)."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in Path(path).read_text().splitlines() if Path(path).exists() else []:
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if frames and count.isdigit():
            total += int(count)
            own[frames[-1]] += int(count)
            incl.update(dict.fromkeys(frames, int(count)))
    by_self = own.most_common(k)
    by_incl = [(f, n) for f, n in incl.most_common() if n <= 0.9 * total][:k]
    out = [f"{total} samples, raw collapsed stacks in {path}",
           f"    {'self %':>6}  {'function':<60}   incl %  function"]
    for i in range(max(len(by_self), len(by_incl))):
        s = f"{100 * by_self[i][1] / total:6.1f}  {by_self[i][0][:60]:<60}" if i < len(by_self) else " " * 68
        c = f"{100 * by_incl[i][1] / total:6.1f}  {by_incl[i][0][:70]}" if i < len(by_incl) else ""
        out.append(f"    {s}   {c}")
    return "\n".join(out)
