"""Run one haproxy (master-worker) for the ingress: write a configuration generation, validate it with
``haproxy -c`` before it can replace the running one, reload hitlessly (the master re-executes, the
new worker takes the listeners over the admin socket, old workers finish their connections), and
apply endpoint/weight/map changes through the runtime API without any reload.

Layout of ``base_dir`` (0700): ``gen-N/`` (haproxy.cfg, maps, certs/ 0600) per generation,
``current`` → the live generation, ``admin.sock`` (runtime API), ``master.sock``, ``haproxy.log``."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from bus.proc import die_with_parent

BINARY = "haproxy"


class InvalidConfig(Exception):
    """haproxy -c refused a configuration; the running one was kept."""


class RuntimeAPIError(Exception):
    pass


def check(cfg_path: str | Path, binary: str = BINARY) -> tuple[bool, str]:
    """Validate a configuration file (and the maps/certs it loads) without running it."""
    p = subprocess.run([binary, "-c", "-q", "-f", str(cfg_path)], capture_output=True, text=True, timeout=30)
    return p.returncode == 0, (p.stderr or p.stdout).strip()


def _ask(path: str | Path, command: str, timeout: float = 5.0) -> str:
    """One command on a haproxy CLI socket (non-interactive: it answers and closes)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(command.replace(";", "\\;").encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode(errors="replace")


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


class HAProxy:
    def __init__(self, base_dir: str | Path, binary: str = BINARY):
        self.base = Path(base_dir)
        self.binary = binary
        self.proc: subprocess.Popen | None = None
        self.generation = 0

    @property
    def admin_socket(self) -> Path:
        return self.base / "admin.sock"

    @property
    def master_socket(self) -> Path:
        return self.base / "master.sock"

    # --- files -------------------------------------------------------------------------------------
    def _write_generation(self, cfg: str, maps: dict[str, str], certs: dict[str, bytes]) -> Path:
        self.base.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o700)
        self.generation += 1
        gen = self.base / f"gen-{self.generation}"
        shutil.rmtree(gen, ignore_errors=True)
        (gen / "certs").mkdir(parents=True, mode=0o700)
        for name, text in {"haproxy.cfg": cfg, **maps}.items():
            (gen / name).write_text(text)
        for name, data in certs.items():
            p = gen / name
            p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        return gen

    def _switch(self, gen: Path) -> None:
        tmp = self.base / "current.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(gen.name)
        os.replace(tmp, self.base / "current")
        for old in self.base.glob("gen-*"):  # keep the live one and its predecessor
            if old.is_dir() and int(old.name[4:]) < self.generation - 1:
                shutil.rmtree(old, ignore_errors=True)

    def _stage(self, cfg: str, maps: dict[str, str], certs: dict[str, bytes]) -> Path:
        gen = self._write_generation(cfg, maps, certs)
        ok, msg = check(gen / "haproxy.cfg", self.binary)
        if not ok:
            shutil.rmtree(gen, ignore_errors=True)
            self.generation -= 1
            raise InvalidConfig(msg)
        return gen

    # --- process -----------------------------------------------------------------------------------
    @property
    def pid_file(self) -> Path:
        return self.base / "haproxy.pid"

    def stop_stale(self, timeout: float = 10.0) -> bool:
        """Stop a haproxy a previous controller started from this directory and left running (it holds the
        ports; haproxy gets SIGTERM when its controller dies, so only when that failed). True when there was one."""
        try:
            pid = int(self.pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return False
        if not cmdline or Path(cmdline[0].decode(errors="replace")).name != Path(self.binary).name \
                or str(self.master_socket).encode() not in b" ".join(cmdline):
            return False  # the pid was reused by something else
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                return True
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if _gone(pid):
                    return True
                time.sleep(0.05)
        return True

    def start(self, cfg: str, maps: dict[str, str], certs: dict[str, bytes], timeout: float = 10.0) -> None:
        self.stop_stale()
        self._switch(self._stage(cfg, maps, certs))
        log = open(self.base / "haproxy.log", "ab")
        self.proc = subprocess.Popen(
            [self.binary, "-W", "-S", f"{self.master_socket},mode,600",
             "-f", str(self.base / "current" / "haproxy.cfg")],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=die_with_parent)  # a controller killed outright takes its haproxy with it
        log.close()
        self.pid_file.write_text(f"{self.proc.pid}\n")
        deadline = time.monotonic() + timeout
        while not (self.worker_pid() and self.admin_socket.exists()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"haproxy did not start; see {self.base / 'haproxy.log'}")
            time.sleep(0.02)

    def worker_pid(self) -> int:
        """The current worker's pid from the master CLI (0: none yet)."""
        try:
            out = _ask(self.master_socket, "show proc", timeout=2)
        except OSError:
            return 0
        lines = out.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("# workers"):
                for w in lines[i + 1:]:
                    if w.startswith("#"):
                        return 0
                    parts = w.split()
                    if len(parts) > 1 and parts[1] == "worker":
                        return int(parts[0])
        return 0

    def reload(self, cfg: str, maps: dict[str, str], certs: dict[str, bytes], timeout: float = 10.0) -> float:
        """Validate, switch and reload hitlessly; returns seconds until the new worker serves.
        Raises InvalidConfig (the running configuration stays) when haproxy -c refuses it."""
        t0 = time.monotonic()
        gen = self._stage(cfg, maps, certs)
        old = self.worker_pid()
        self._switch(gen)
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGUSR2)
        deadline = time.monotonic() + timeout
        while True:
            pid = self.worker_pid()
            if pid and pid != old:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"haproxy reload did not finish; see {self.base / 'haproxy.log'}")
            time.sleep(0.005)
        while not self.admin_socket.exists():
            time.sleep(0.005)
        return time.monotonic() - t0

    def update(self, cfg: str, maps: dict[str, str], certs: dict[str, bytes], commands: list[str]) -> float:
        """Apply ``commands`` (config.runtime_commands) to the running haproxy without a reload, then
        write the same state as a new validated generation so that a later reload starts from it.
        Returns the seconds until the change was effective (the runtime commands alone)."""
        t0 = time.monotonic()
        self.runtime(commands)
        took = time.monotonic() - t0
        self._switch(self._stage(cfg, maps, certs))
        return took

    def runtime(self, commands: list[str]) -> list[str]:
        """Send runtime-API commands one by one; RuntimeAPIError on the first answer that is not a success."""
        out = []
        for c in commands:
            ans = _ask(self.admin_socket, c).strip()
            if ans and ans != "Done." and "changed from" not in ans and "no need to change" not in ans:
                raise RuntimeAPIError(f"{' '.join(c.split()[:3])}: {ans}")
            out.append(ans)
        return out

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        self.pid_file.unlink(missing_ok=True)
