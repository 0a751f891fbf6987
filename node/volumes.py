"""Pod volumes on the node: emptyDir, hostPath, secret and configMap projected as files,
projected (secret, configMap, downwardAPI and serviceAccountToken sources: the token from the
account's token Secret), persistentVolumeClaim through its bound PersistentVolume's hostPath,
and the bind mounts each container gets."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
from pathlib import Path

from bus import errors
from node.env import ConfigError, Getter, field_ref
from node.runtime.model import Mount


class VolumeError(Exception):
    """A volume cannot be prepared yet (reason, message) — the pod waits with an event."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


TOKEN_WAIT = (0.25, 12)  # a projected token not there yet: retry every 0.25 s, 12 times, then FailedMount


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


def _write_files(directory: Path, files: dict[str, bytes], items: list[dict] | None, mode: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    files = _select(files, items)
    wanted = set()
    for rel, data in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.chmod(tmp, mode)
        tmp.replace(path)
        wanted.add(path)
    for old in directory.rglob("*"):
        if old.is_file() and old not in wanted:
            old.unlink()


class Volumes:
    def __init__(self, pods_dir: Path, get: Getter) -> None:
        self.pods_dir = pods_dir
        self.get = get

    def pod_dir(self, uid: str) -> Path:
        return self.pods_dir / uid

    async def prepare(self, pod: dict) -> dict[str, str]:
        """Make every volume of ``pod`` ready; returns volume name -> host path."""
        meta, spec = pod["metadata"], pod.get("spec") or {}
        ns, uid = meta.get("namespace") or "default", meta["uid"]
        paths: dict[str, str] = {}
        for vol in spec.get("volumes") or []:
            name = vol.get("name")
            base = self.pod_dir(uid) / "volumes" / name
            if "emptyDir" in vol and vol["emptyDir"] is not None:
                base.mkdir(parents=True, exist_ok=True)
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
                _write_files(base, _secret_files(obj), src.get("items"), int(src.get("defaultMode") or 0o644))
                paths[name] = str(base)
            elif vol.get("configMap"):
                src = vol["configMap"]
                obj = await self._source("configmaps", src.get("name", ""), ns, bool(src.get("optional")), name)
                _write_files(base, _configmap_files(obj), src.get("items"), int(src.get("defaultMode") or 0o644))
                paths[name] = str(base)
            elif vol.get("projected"):
                src = vol["projected"]
                _write_files(base, await self._projected(pod, src, name), None, int(src.get("defaultMode") or 0o644))
                paths[name] = str(base)
            elif vol.get("persistentVolumeClaim"):
                paths[name] = await self._claim_path(vol["persistentVolumeClaim"].get("claimName", ""), ns)
            else:
                base.mkdir(parents=True, exist_ok=True)  # unsupported kinds get an empty directory
                paths[name] = str(base)
        return paths

    async def _projected(self, pod: dict, src: dict, volume: str) -> dict[str, bytes]:
        """The files of a projected volume; a source not there yet (a new namespace's account
        token, its root CA) is waited for briefly before the pod gets FailedMount."""
        delay, tries = TOKEN_WAIT
        for attempt in range(tries):
            try:
                return await self._projected_once(pod, src, volume)
            except VolumeError:
                if attempt == tries - 1:
                    raise
                await asyncio.sleep(delay)
        return {}

    async def _projected_once(self, pod: dict, src: dict, volume: str) -> dict[str, bytes]:
        ns = pod["metadata"].get("namespace") or "default"
        files: dict[str, bytes] = {}
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
                for item in s["downwardAPI"].get("items") or []:
                    try:
                        files[item["path"]] = field_ref(pod, (item.get("fieldRef") or {}).get("fieldPath", ""), "").encode()
                    except (ConfigError, KeyError) as e:
                        raise VolumeError("FailedMount", f'MountVolume.SetUp failed for volume "{volume}" : {e}') from None
            elif s.get("serviceAccountToken"):
                files[s["serviceAccountToken"].get("path") or "token"] = await self._token(pod, ns, volume)
        return files

    async def _token(self, pod: dict, ns: str, volume: str) -> bytes:
        """The token of the pod's ServiceAccount, from the account's token Secret."""
        account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        try:
            sa = await self.get("serviceaccounts", account, ns)
        except errors.NotFound:
            sa = {}
        for ref in sa.get("secrets") or []:
            try:
                secret = await self.get("secrets", ref.get("name", ""), ns)
            except errors.NotFound:
                continue
            token = (secret.get("data") or {}).get("token")
            if secret.get("type") == "kubernetes.io/service-account-token" and token:
                return base64.b64decode(token)
        raise VolumeError("FailedMount", f'MountVolume.SetUp failed for volume "{volume}" : '
                                         f'no token yet for serviceaccount "{ns}/{account}"')

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
                sub = Path(src) / vm["subPath"]
                if not sub.exists():
                    sub.mkdir(parents=True, exist_ok=True)
                src = str(sub)
            out.append(Mount(src, vm.get("mountPath", ""), bool(vm.get("readOnly"))))
        return out

    def cleanup(self, uid: str) -> None:
        shutil.rmtree(self.pod_dir(uid), ignore_errors=True)
