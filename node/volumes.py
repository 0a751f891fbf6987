"""Pod volumes on the node: emptyDir, hostPath, secret and configMap projected as files,
persistentVolumeClaim through its bound PersistentVolume's hostPath, and the bind mounts
each container gets."""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

from bus import errors
from node.env import Getter
from node.runtime.model import Mount


class VolumeError(Exception):
    """A volume cannot be prepared yet (reason, message) — the pod waits with an event."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _write_files(directory: Path, files: dict[str, bytes], items: list[dict] | None, mode: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if items:
        files = {i["path"]: files[i["key"]] for i in items if i.get("key") in files and i.get("path")}
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
                files = {k: base64.b64decode(v) for k, v in ((obj or {}).get("data") or {}).items()}
                _write_files(base, files, src.get("items"), int(src.get("defaultMode") or 0o644))
                paths[name] = str(base)
            elif vol.get("configMap"):
                src = vol["configMap"]
                obj = await self._source("configmaps", src.get("name", ""), ns, bool(src.get("optional")), name)
                files = {k: str(v).encode() for k, v in ((obj or {}).get("data") or {}).items()}
                files.update({k: base64.b64decode(v) for k, v in ((obj or {}).get("binaryData") or {}).items()})
                _write_files(base, files, src.get("items"), int(src.get("defaultMode") or 0o644))
                paths[name] = str(base)
            elif vol.get("persistentVolumeClaim"):
                paths[name] = await self._claim_path(vol["persistentVolumeClaim"].get("claimName", ""), ns)
            else:
                base.mkdir(parents=True, exist_ok=True)  # unsupported kinds get an empty directory
                paths[name] = str(base)
        return paths

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
