"""Pod volumes on the node: emptyDir, hostPath, secret and configMap projected as files,
projected (secret, configMap, downwardAPI and serviceAccountToken sources), persistentVolumeClaim through its
bound PersistentVolume's hostPath, and the bind mounts each container gets.

ServiceAccount tokens (a projected ``serviceAccountToken`` source, e.g. the ``kube-api-access-*`` volume the API
server adds to every pod, mounted at ``/var/run/secrets/kubernetes.io/serviceaccount``) are obtained as the kubelet
obtains them: a TokenRequest for the pod's account (``audience``, ``expirationSeconds`` — 3600 when the source
does not say, as Kubernetes defaults it; the ``kube-api-access`` volume asks for 3607 — bound to the pod by name
and uid, so the token dies with the pod), kept by ``node.tokenmanager`` and rewritten while the pod lives once
older than 80 % of its lifetime (or 24 h). Files are replaced atomically (written beside, then renamed over).

Ownership and permissions are the kubelet's. An emptyDir is 0777 (any container user may write it); a secret,
configMap, downwardAPI or projected volume has 0755 directories and files of the volume's ``defaultMode`` (0644). A
ServiceAccount token file is owned by the containers' user when every container runs as the same ``runAsUser`` (the
kubelet's ``FsUserFrom``), mode 0600 then or when the pod has an ``fsGroup``, else the ``defaultMode`` (0644): a
non-root container can always read its token. With ``securityContext.fsGroup`` every volume but hostPath and PVCs gets
the kubelet's ``SetVolumeOwnership``: group fsGroup, files group-readable (0440 added; read-write emptyDirs 0660),
directories setgid and group-searchable. The pod's own directory on the node is 0750 root. Every item path is checked
again here: relative, without ``..``."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from bus import errors
from bus.files import write_atomic
from node.admission import valid_uid
from node.env import ConfigError, Getter, field_ref
from node.runtime.model import Mount
from node.tokenmanager import TokenError, TokenManager, refresh_at

log = logging.getLogger(__name__)


class VolumeError(Exception):
    """A volume cannot be prepared yet (reason, message) — the pod waits with an event."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


TOKEN_WAIT = (0.25, 12)  # a projected source not there yet: retry every 0.25 s, 12 times, then FailedMount
DEFAULT_TOKEN_SECONDS = 3600  # a serviceAccountToken source without expirationSeconds (Kubernetes' default)
TOKEN_RETRY_SECONDS = 10.0  # a token renewal that failed is tried again this soon
MAX_SLEEP_SECONDS = 3600.0  # the token files of a pod are looked at at least hourly
TOKEN_API_VERSION = "authentication.k8s.io/v1"
DIR_MODE, EMPTY_DIR_MODE, POD_DIR_MODE, TOKEN_MODE = 0o755, 0o777, 0o750, 0o600
# fsGroup (SetVolumeOwnership): read (read-write volumes: read and write) for the group; directories also setgid and
# group-searchable
GROUP_RO, GROUP_RW, GROUP_DIR = 0o440, 0o660, 0o2110


@dataclass(frozen=True)
class Ownership:
    """Who the files of a pod's volumes belong to (None: root / unchanged)."""

    user: int | None = None  # the kubelet's FsUser: the runAsUser every container shares
    group: int | None = None  # the pod's fsGroup

    @classmethod
    def of(cls, pod: dict) -> "Ownership":
        spec = pod.get("spec") or {}
        psc = spec.get("securityContext") or {}
        group = psc.get("fsGroup")
        user: int | None = None
        containers = [c for k in ("initContainers", "containers") for c in spec.get(k) or [] if isinstance(c, dict)]
        for c in containers:
            run_as = (c.get("securityContext") or {}).get("runAsUser", psc.get("runAsUser"))
            if not _uid(run_as) or (user is not None and run_as != user):
                user = None  # one container without a user, or two different ones: nobody in particular
                break
            user = run_as
        return cls(user if containers else None, group if _uid(group) else None)

    def dir_mode(self, mode: int = DIR_MODE, rw: bool = False) -> int:
        return mode | (GROUP_RW if rw else GROUP_RO) | GROUP_DIR if self.group is not None else mode

    def file_mode(self, mode: int) -> int:
        return mode | GROUP_RO if self.group is not None else mode

    def token_mode(self, default_mode: int) -> int:
        """The kubelet's: 0600 when the pod names a user or a group (then group-readable), else defaultMode."""
        return self.file_mode(TOKEN_MODE if self.user is not None or self.group is not None else default_mode)


def _uid(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32


def _chown(path: Path, uid: int | None, gid: int | None) -> None:
    if uid is None and gid is None:
        return
    try:
        os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid, follow_symlinks=False)
    except PermissionError:
        log.warning("cannot give %s to uid %s gid %s (the agent is not root)", path, uid, gid)


def _safe_rel(rel: str, volume: str) -> PurePosixPath:
    """A projected item's path, checked again on the node: relative, no ``..``, not empty."""
    p = PurePosixPath(str(rel))
    if not str(rel) or p.is_absolute() or ".." in p.parts or str(p) in ("", "."):
        raise VolumeError("FailedMount", f'MountVolume.SetUp failed for volume "{volume}" : '
                                         f'invalid path {rel!r}: must be relative and may not contain ".."')
    return p


def _write_file(path: Path, data: bytes, mode: int, uid: int | None = None, gid: int | None = None) -> None:
    """Replace ``path`` atomically, its owner and mode set before anyone can read it."""
    write_atomic(path, data, mode, prepare=lambda tmp: _chown(tmp, uid, gid))


@dataclass
class TokenFile:
    """A token file of a pod's projected volume, kept fresh while the pod lives."""

    path: Path
    namespace: str
    account: str
    request: dict  # the TokenRequest asked for
    mode: int
    uid: int | None
    gid: int | None
    written: str = ""


def _default_mode(src: dict) -> int:
    mode = src.get("defaultMode")
    return mode if isinstance(mode, int) and not isinstance(mode, bool) and 0 <= mode <= 0o777 else 0o644


def _downward_files(pod: dict, items: list[dict] | None, volume: str) -> dict[str, bytes]:
    """The files of a downwardAPI volume or projection (``fieldRef`` items)."""
    files = {}
    for item in items or []:
        try:
            files[item["path"]] = field_ref(pod, (item.get("fieldRef") or {}).get("fieldPath", ""), "").encode()
        except (ConfigError, KeyError) as e:
            raise VolumeError("FailedMount", f'MountVolume.SetUp failed for volume "{volume}" : {e}') from None
    return files


def _select(files: dict[str, bytes], items: list[dict] | None) -> dict[str, bytes]:
    if not items:
        return files
    return {i["path"]: files[i["key"]] for i in items if i.get("key") in files and i.get("path")}


def _secret_files(obj: dict | None) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in ((obj or {}).get("data") or {}).items()}


def _configmap_files(obj: dict | None) -> dict[str, bytes]:
    files = {k: str(v).encode() for k, v in ((obj or {}).get("data") or {}).items()}
    files.update({k: base64.b64decode(v) for k, v in ((obj or {}).get("binaryData") or {}).items()})
    return files


def _write_files(directory: Path, files: dict[str, bytes], items: list[dict] | None, mode: int,
                 own: Ownership = Ownership()) -> None:
    """A secret, configMap or downwardAPI volume: ``_write_projected`` without tokens."""
    _write_projected(directory, _select(files, items), set(), mode, own)


def _empty_dir(directory: Path, own: Ownership) -> None:
    """An emptyDir as the kubelet makes it: 0777, and with fsGroup group-owned and setgid."""
    directory.mkdir(parents=True, exist_ok=True)
    _chown(directory, None, own.group)
    os.chmod(directory, own.dir_mode(EMPTY_DIR_MODE, rw=True))


def _write_projected(directory: Path, files: dict[str, bytes], tokens: set[str], mode: int,
                     own: Ownership) -> dict[str, Path]:
    """A projected volume's files (``tokens``: which of them are tokens) with the module's permissions; what is
    no longer projected goes. Returns the token paths."""
    directory.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    made = {directory}
    wanted, out = set(), {}
    for rel, data in files.items():
        path = directory / _safe_rel(rel, directory.name)
        for d in reversed(path.relative_to(directory).parents):
            sub = directory / d
            if sub not in made:
                sub.mkdir(exist_ok=True, mode=DIR_MODE)
                made.add(sub)
        if rel in tokens:
            _write_file(path, data, own.token_mode(mode), own.user, own.group)
            out[rel] = path
        else:
            _write_file(path, data, own.file_mode(mode), None, own.group)
        wanted.add(path)
    for d in made:
        _chown(d, None, own.group)
        os.chmod(d, own.dir_mode())
    for old in directory.rglob("*"):
        if old.is_file() and old not in wanted:
            old.unlink()
    return out


def token_request(pod: dict, source: dict) -> tuple[str, dict]:
    """``(account, TokenRequest)`` for a ``serviceAccountToken`` projection of ``pod``: the pod's account, the
    source's audience (none: the API's) and lifetime, bound to the pod by name and uid (as the kubelet asks)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    seconds = source.get("expirationSeconds")
    req_spec: dict = {"expirationSeconds": seconds if isinstance(seconds, int) and not isinstance(seconds, bool)
                      else DEFAULT_TOKEN_SECONDS,
                      "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta.get("name", ""),
                                         "uid": meta.get("uid", "")}}
    if source.get("audience"):
        req_spec["audiences"] = [str(source["audience"])]
    return account, {"apiVersion": TOKEN_API_VERSION, "kind": "TokenRequest", "spec": req_spec}


class Volumes:
    """``get(resource, name, namespace)`` reads objects; ``client`` (a ``bus.client.ApiClient``) asks for tokens —
    when not given, the client of the object ``get`` is a method of (the agent's) is used."""

    def __init__(self, pods_dir: Path, get: Getter, client: Any = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.pods_dir = pods_dir
        self.get = get
        self.client = client if client is not None else getattr(getattr(get, "__self__", None), "client", None)
        self.tokens = TokenManager(self._request_token, *((clock,) if clock is not None else ()))
        self._token_files: dict[str, list[TokenFile]] = {}  # pod uid -> its token files
        self._refreshers: dict[str, asyncio.Task] = {}

    def pod_dir(self, uid: str) -> Path:
        """The pod's directory; ValueError for a uid that is not a UUID (it would name another path)."""
        if not valid_uid(uid):
            raise ValueError(f"not a pod uid: {uid!r}")
        return self.pods_dir / uid

    def _volume_dir(self, uid: str, name: str) -> Path:
        """``<pod dir>/volumes/<name>``, the pod's directory made 0750 root first (volumes inside may be 0777)."""
        pod_dir = self.pod_dir(uid)
        if not pod_dir.is_dir():
            pod_dir.mkdir(parents=True, exist_ok=True, mode=POD_DIR_MODE)
            os.chmod(pod_dir, POD_DIR_MODE)
        return pod_dir / "volumes" / name

    async def _request_token(self, namespace: str, account: str, request: dict) -> dict:
        from bus.client import resource_of

        if self.client is None:
            raise TokenError("this node has no API client to request tokens with")
        return await self.client.request(resource_of("serviceaccounts"), "create", namespace, account,
                                         body=request, subresource="token")

    async def prepare(self, pod: dict) -> dict[str, str]:
        """Make every volume of ``pod`` ready; returns volume name -> host path."""
        meta, spec = pod["metadata"], pod.get("spec") or {}
        ns, uid = meta.get("namespace") or "default", meta["uid"]
        paths: dict[str, str] = {}
        token_files: list[TokenFile] = []
        own = Ownership.of(pod)
        for vol in spec.get("volumes") or []:
            name = vol.get("name")
            base = self._volume_dir(uid, name)
            if "emptyDir" in vol and vol["emptyDir"] is not None:
                _empty_dir(base, own)
                paths[name] = str(base)
            elif vol.get("hostPath"):
                hp = vol["hostPath"]
                path = Path(hp.get("path", "/"))
                kind = hp.get("type") or ""
                if kind == "DirectoryOrCreate":
                    path.mkdir(parents=True, exist_ok=True)
                elif kind == "FileOrCreate" and not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.touch()
                elif kind in ("Directory", "File") and not path.exists():
                    raise VolumeError("FailedMount", f'hostPath type check failed: {path} is not a {kind.lower()}')
                paths[name] = str(path)
            elif vol.get("secret"):
                src = vol["secret"]
                obj = await self._source("secrets", src.get("secretName", ""), ns, bool(src.get("optional")), name)
                _write_files(base, _secret_files(obj), src.get("items"), _default_mode(src), own)
                paths[name] = str(base)
            elif vol.get("configMap"):
                src = vol["configMap"]
                obj = await self._source("configmaps", src.get("name", ""), ns, bool(src.get("optional")), name)
                _write_files(base, _configmap_files(obj), src.get("items"), _default_mode(src), own)
                paths[name] = str(base)
            elif vol.get("downwardAPI"):
                src = vol["downwardAPI"]
                _write_files(base, _downward_files(pod, src.get("items"), name), None, _default_mode(src), own)
                paths[name] = str(base)
            elif vol.get("projected"):
                src = vol["projected"]
                files, requests = await self._projected(pod, src, name)
                written = _write_projected(base, files, set(requests), _default_mode(src), own)
                for rel, path in written.items():
                    account, request = requests[rel]
                    token_files.append(TokenFile(path, ns, account, request, own.token_mode(_default_mode(src)),
                                                 own.user, own.group, files[rel].decode()))
                paths[name] = str(base)
            elif vol.get("persistentVolumeClaim"):
                paths[name] = await self._claim_path(vol["persistentVolumeClaim"].get("claimName", ""), ns)
            else:
                _empty_dir(base, own)  # unsupported kinds get an empty directory
                paths[name] = str(base)
        self._keep_fresh(uid, token_files)
        return paths

    async def _projected(self, pod: dict, src: dict, volume: str) -> tuple[dict[str, bytes], dict[str, tuple]]:
        """The files of a projected volume, and which are tokens (path -> (account, TokenRequest)); a source not
        there yet (a new namespace's account, its root CA) is waited for briefly before the pod gets FailedMount."""
        delay, tries = TOKEN_WAIT
        for attempt in range(tries):
            try:
                return await self._projected_once(pod, src, volume)
            except VolumeError:
                if attempt == tries - 1:
                    raise
                await asyncio.sleep(delay)
        return {}, {}

    async def _projected_once(self, pod: dict, src: dict, volume: str) -> tuple[dict[str, bytes], dict[str, tuple]]:
        ns = pod["metadata"].get("namespace") or "default"
        files: dict[str, bytes] = {}
        requests: dict[str, tuple] = {}
        for s in src.get("sources") or []:
            if s.get("secret"):
                sec = s["secret"]
                obj = await self._source("secrets", sec.get("name", ""), ns, bool(sec.get("optional")), volume)
                files.update(_select(_secret_files(obj), sec.get("items")))
            elif s.get("configMap"):
                cm = s["configMap"]
                obj = await self._source("configmaps", cm.get("name", ""), ns, bool(cm.get("optional")), volume)
                files.update(_select(_configmap_files(obj), cm.get("items")))
            elif s.get("downwardAPI"):
                files.update(_downward_files(pod, s["downwardAPI"].get("items"), volume))
            elif s.get("serviceAccountToken"):
                path = s["serviceAccountToken"].get("path") or "token"
                account, request = token_request(pod, s["serviceAccountToken"])
                files[path] = await self._token(ns, account, request, volume)
                requests[path] = (account, request)
        return files, requests

    async def _token(self, ns: str, account: str, request: dict, volume: str) -> bytes:
        """A token of the pod's ServiceAccount bound to the pod, from the token manager."""
        try:
            tr = await self.tokens.get(ns, account, request)
        except TokenError as e:
            raise VolumeError("FailedMount", f'MountVolume.SetUp failed for volume "{volume}" : {e}') from None
        return str(tr["status"]["token"]).encode()

    # ---- keeping tokens fresh ------------------------------------------------------------------------

    def _keep_fresh(self, uid: str, files: list[TokenFile]) -> None:
        if not files:
            self._token_files.pop(uid, None)
            return
        self._token_files[uid] = files
        task = self._refreshers.get(uid)
        if task is None or task.done():
            self._refreshers[uid] = asyncio.create_task(self._refresh_loop(uid), name=f"token-refresh-{uid}")

    async def _refresh_loop(self, uid: str) -> None:
        try:
            while (delay := await self.refresh_tokens(uid)) is not None:
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("keeping the tokens of pod %s fresh failed", uid)
        finally:
            if self._refreshers.get(uid) is asyncio.current_task():
                del self._refreshers[uid]

    async def refresh_tokens(self, uid: str) -> float | None:
        """Rewrite the token files of pod ``uid`` whose tokens are due for renewal; seconds until the next one is
        (None: the pod has no token files)."""
        files = self._token_files.get(uid)
        if not files:
            return None
        now = self.tokens.clock()
        due = now + MAX_SLEEP_SECONDS
        for f in files:
            try:
                tr = await self.tokens.get(f.namespace, f.account, f.request)
            except TokenError as e:
                log.warning("pod %s: %s", uid, e)
                due = min(due, now + TOKEN_RETRY_SECONDS)
                continue
            token = str(tr["status"]["token"])
            if token != f.written and f.path.parent.is_dir():
                _write_file(f.path, token.encode(), f.mode, f.uid, f.gid)
                f.written = token
            at = refresh_at(tr)
            due = min(due, at if at > now else now + TOKEN_RETRY_SECONDS)
        return max(due - now, 1.0)

    async def stop(self) -> None:
        """Stop keeping tokens fresh (the agent is shutting down)."""
        tasks = list(self._refreshers.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _source(self, resource: str, name: str, ns: str, optional: bool, volume: str) -> dict | None:
        try:
            return await self.get(resource, name, ns)
        except errors.NotFound:
            if optional:
                return None
            kind = "secret" if resource == "secrets" else "configmap"
            raise VolumeError("FailedMount",
                              f'MountVolume.SetUp failed for volume "{volume}" : {kind} "{name}" not found') from None

    async def _claim_path(self, claim: str, ns: str) -> str:
        try:
            pvc = await self.get("persistentvolumeclaims", claim, ns)
        except errors.NotFound:
            raise VolumeError("FailedMount", f'persistentvolumeclaim "{claim}" not found') from None
        volume = (pvc.get("spec") or {}).get("volumeName")
        if not volume or (pvc.get("status") or {}).get("phase") != "Bound":
            raise VolumeError("FailedMount", f'persistentvolumeclaim "{claim}" is not bound')
        pv = await self.get("persistentvolumes", volume, "")
        host = ((pv.get("spec") or {}).get("hostPath") or {}).get("path")
        if not host:
            raise VolumeError("FailedMount", f'persistentvolume "{volume}" has no hostPath (the only kind k8n mounts)')
        Path(host).mkdir(parents=True, exist_ok=True)
        return host

    @staticmethod
    def mounts(container: dict, paths: dict[str, str]) -> list[Mount]:
        out = []
        for vm in container.get("volumeMounts") or []:
            src = paths.get(vm.get("name"))
            if src is None:
                continue
            if vm.get("subPath"):
                src = str(safe_subpath(Path(src), vm["subPath"]))
            out.append(Mount(src, vm.get("mountPath", ""), bool(vm.get("readOnly"))))
        return out

    def cleanup(self, uid: str) -> None:
        if not valid_uid(uid):
            log.error("not cleaning up after a pod whose uid is not a UUID: %r", uid)
            return
        task = self._refreshers.pop(uid, None)
        if task is not None:
            task.cancel()
        self._token_files.pop(uid, None)
        self.tokens.delete_pod(uid)
        self.tokens.cleanup()
        shutil.rmtree(self.pod_dir(uid), ignore_errors=True)


def safe_subpath(volume: Path, sub: str) -> Path:
    """The directory ``sub`` inside ``volume``, made when missing, without following a symlink at any step (the
    kubelet's safe-subpath idea: a container that made ``sub`` a link to ``/`` gets a refusal, not the host).
    VolumeError for a path that is absolute, steps up, or meets a symlink."""
    parts = [p for p in sub.split("/") if p not in ("", ".")]
    if sub.startswith("/") or ".." in parts:
        raise VolumeError("CreateContainerConfigError", f"subPath {sub!r} must be a relative path without '..'")
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(volume, flags)
    try:
        for i, part in enumerate(parts):
            try:
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                os.mkdir(part, 0o755, dir_fd=fd)
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                raise VolumeError("CreateContainerConfigError",
                                  f"subPath {sub!r} meets a symlink inside its volume: refused")
            if i == len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
                break  # a file (a configMap key mounted alone): fine, it is not a link
            try:
                nxt = os.open(part, flags, dir_fd=fd)
            except OSError as e:
                raise VolumeError("CreateContainerConfigError",
                                  f"subPath {sub!r} is not a directory inside its volume: {e.strerror}") from None
            os.close(fd)
            fd = nxt
    finally:
        os.close(fd)
    return volume.joinpath(*parts)
