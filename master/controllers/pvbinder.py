"""PersistentVolume binder: binds each pending PersistentVolumeClaim to the smallest matching
Available PersistentVolume (capacity, accessModes, storageClassName, volumeMode, selector; a PV
pre-bound with ``claimRef`` or a claim naming ``volumeName`` binds only that pair), and applies the
reclaim policy when a bound claim is deleted: Retain → Released (claimRef kept), Delete → the PV and
its hostPath data removed, Recycle → the directory scrubbed and the PV Available again.

hostPath data is touched only under the roots named by the ``pv-reclaim-roots`` option
(``$K8N_PV_RECLAIM_ROOTS``, ``:``-separated; none by default), never a root itself, never the data
directory nor a directory holding it; a refused reclaim marks the volume Failed with the reason.
Keys are ``pv/<name>`` and ``pvc/<namespace>.<name>``; one queue serves both."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from bus import errors, subjects
from bus.config import data_dir
from bus.controller import Controller
from bus.events import NORMAL, WARNING
from bus.informer import key_of
from bus.labels import selector_from_label_selector
from bus.quantity import memory_bytes

log = logging.getLogger(__name__)

BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"


def setup(ctx) -> list:
    return [PvBinder(ctx.client, ctx.informers.informer("persistentvolumes"),
                     ctx.informers.informer("persistentvolumeclaims"), ctx.recorder("persistentvolume-controller"),
                     ctx.settings.reclaim_roots).controller]


# ---- pure matching -------------------------------------------------------------------------------


def _spec(obj: dict) -> dict:
    return obj.get("spec") or {}


def storage(resources: dict | None) -> int:
    value = (resources or {}).get("storage")
    return memory_bytes(value) if value is not None else 0


def claim_ref_matches(pv: dict, pvc: dict) -> bool:
    """The PV's claimRef names this claim (and, when it has a uid, this very claim)."""
    ref, meta = _spec(pv).get("claimRef") or {}, pvc["metadata"]
    return (ref.get("name") == meta["name"] and ref.get("namespace") == meta.get("namespace")
            and ref.get("uid") in (None, "", meta.get("uid")))


def compatible(pv: dict, pvc: dict) -> bool:
    """Whether ``pv`` can serve ``pvc`` (ignoring who claimed it)."""
    ps, cs = _spec(pv), _spec(pvc)
    if (pv.get("metadata") or {}).get("deletionTimestamp"):
        return False
    if (ps.get("storageClassName") or "") != (cs.get("storageClassName") or ""):
        return False
    if (ps.get("volumeMode") or "Filesystem") != (cs.get("volumeMode") or "Filesystem"):
        return False
    if not set(cs.get("accessModes") or []) <= set(ps.get("accessModes") or []):
        return False
    if storage(ps.get("capacity")) < storage((cs.get("resources") or {}).get("requests")):
        return False
    sel = cs.get("selector")
    if sel is not None:
        try:
            if not selector_from_label_selector(sel).matches((pv.get("metadata") or {}).get("labels") or {}):
                return False
        except ValueError:
            return False
    return True


def available(pv: dict) -> bool:
    return (pv.get("status") or {}).get("phase") in (None, "Pending", "Available")


def choose_volume(pvc: dict, pvs: list[dict]) -> dict | None:
    """The PV to bind ``pvc`` to: the one it names, else one pre-bound to it, else the smallest
    compatible unclaimed Available PV (ties by name); None if there is none."""
    wanted = _spec(pvc).get("volumeName")
    if wanted:
        pv = next((p for p in pvs if p["metadata"]["name"] == wanted), None)
        if pv is None or not compatible(pv, pvc):
            return None
        if _spec(pv).get("claimRef"):
            return pv if claim_ref_matches(pv, pvc) else None
        return pv if available(pv) else None
    prebound = [p for p in pvs if _spec(p).get("claimRef") and claim_ref_matches(p, pvc) and compatible(p, pvc)]
    if prebound:
        return prebound[0]
    free = [p for p in pvs if not _spec(p).get("claimRef") and available(p) and compatible(p, pvc)]
    if not free:
        return None
    return min(free, key=lambda p: (storage(_spec(p).get("capacity")), p["metadata"]["name"]))


def claim_ref(pvc: dict) -> dict:
    meta = pvc["metadata"]
    return {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": meta.get("namespace"),
            "name": meta["name"], "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")}


class ReclaimRefused(Exception):
    """Why a Delete/Recycle reclaim may not touch a volume's hostPath (the PV's Failed message)."""


def safe_reclaim_path(path: str | None, roots: list[str], protected: tuple[Path, ...] = ()) -> Path:
    """The hostPath as a resolved path strictly below one of ``roots`` and neither inside nor above a
    ``protected`` directory (the data directory); else ReclaimRefused saying why."""
    if not roots:
        raise ReclaimRefused("no reclaim roots are configured (K8N_PV_RECLAIM_ROOTS)")
    if not path or not os.path.isabs(path):
        raise ReclaimRefused(f"hostPath {path!r} is not an absolute path")
    p = Path(path).resolve()
    if not any(p != r and r in p.parents for r in (Path(root).resolve() for root in roots)):
        raise ReclaimRefused(f"hostPath {path!r} is not below a reclaim root ({':'.join(roots)})")
    for d in protected:
        d = d.resolve()
        if p == d or d in p.parents or p in d.parents:
            raise ReclaimRefused(f"hostPath {path!r} overlaps the data directory {str(d)!r}")
    return p


# ---- the controller ------------------------------------------------------------------------------


def _pv_key(obj: dict) -> str:
    return "pv/" + key_of(obj)


def _pvc_key(obj: dict) -> str:
    return "pvc/" + key_of(obj)


def _volume_of_claim(pvc: dict) -> str | None:
    name = _spec(pvc).get("volumeName")
    return "pv/" + subjects.object_key(None, name) if name else None


class PvBinder:
    def __init__(self, client, pvs, pvcs, recorder, reclaim_roots: list[str] | None = None) -> None:
        self.client, self.pvs, self.pvcs, self.recorder = client, pvs, pvcs, recorder
        self.roots = list(reclaim_roots or ())
        self.controller = Controller("pvbinder", self.reconcile)
        self.controller.watches(pvs, _pv_key)
        self.controller.watches(pvcs, _pvc_key)
        self.controller.watches(pvcs, _volume_of_claim)  # a bound claim deleted: its volume is released

    async def reconcile(self, key: str) -> None:
        kind, _, k = key.partition("/")
        if kind == "pv":
            await self.sync_volume(k)
        else:
            await self.sync_claim(k)

    # ---- claims ----------------------------------------------------------------------------

    async def sync_claim(self, key: str) -> None:
        pvc = self.pvcs.get_by_key(key)
        if pvc is None or pvc["metadata"].get("deletionTimestamp"):
            return
        phase = (pvc.get("status") or {}).get("phase")
        name = _spec(pvc).get("volumeName")
        if phase == "Bound" and name:
            pv = self.pvs.get(None, name)
            if pv is None:
                await self._claim_status(pvc, {"phase": "Lost"})
                await self.recorder.event(pvc, WARNING, "ClaimLost", f"Bound claim has lost its PersistentVolume {name}")
            return
        pv = choose_volume(pvc, self.pvs.list())
        if pv is None:
            msg = (f'volume "{name}" is not available for this claim' if name else
                   "no persistent volumes available for this claim and no storage class is set"
                   if not _spec(pvc).get("storageClassName") else
                   f'no persistent volumes of storage class "{_spec(pvc)["storageClassName"]}" available for this claim')
            if phase != "Pending":
                await self._claim_status(pvc, {"phase": "Pending"})
            await self.recorder.event(pvc, NORMAL, "FailedBinding", msg)
            return
        await self.bind(pv, pvc)

    async def bind(self, pv: dict, pvc: dict) -> None:
        """PV claimRef (CAS: a PV taken meanwhile is a Conflict and the claim is retried), PV
        Bound, claim volumeName, claim Bound with the PV's capacity and access modes."""
        vol = pv["metadata"]["name"]
        if (_spec(pv).get("claimRef") or {}).get("uid") != pvc["metadata"].get("uid"):
            spec = {**_spec(pv), "claimRef": claim_ref(pvc)}
            ann = {**(pv["metadata"].get("annotations") or {}), BOUND_BY_CONTROLLER: "yes"}
            pv = await self.client.update({**pv, "metadata": {**pv["metadata"], "annotations": ann}, "spec": spec})
        if (pv.get("status") or {}).get("phase") != "Bound":
            pv = await self.client.update_status({**pv, "status": {**(pv.get("status") or {}), "phase": "Bound"}})
        if _spec(pvc).get("volumeName") != vol:
            ann = {**(pvc["metadata"].get("annotations") or {}), BIND_COMPLETED: "yes"}
            pvc = await self.client.update({**pvc, "metadata": {**pvc["metadata"], "annotations": ann},
                                            "spec": {**_spec(pvc), "volumeName": vol}})
        await self._claim_status(pvc, {"phase": "Bound", "capacity": _spec(pv).get("capacity"),
                                       "accessModes": _spec(pv).get("accessModes")})
        await self.recorder.event(pvc, NORMAL, "Bound", f'Successfully bound to volume "{vol}"')
        log.info("bound claim %s/%s to volume %s", pvc["metadata"].get("namespace"), pvc["metadata"]["name"], vol)

    async def _claim_status(self, pvc: dict, status: dict) -> None:
        new = {**(pvc.get("status") or {}), **{k: v for k, v in status.items() if v is not None}}
        if new != (pvc.get("status") or {}):
            await self.client.update_status({**pvc, "status": new})

    # ---- volumes ---------------------------------------------------------------------------

    async def sync_volume(self, key: str) -> None:
        pv = self.pvs.get_by_key(key)
        if pv is None or pv["metadata"].get("deletionTimestamp"):
            return
        ref = _spec(pv).get("claimRef")
        phase = (pv.get("status") or {}).get("phase")
        if not ref or not ref.get("uid"):  # unclaimed or pre-bound to a claim not yet bound
            if phase in (None, "Pending"):
                await self._volume_status(pv, "Available")
            if ref:
                self.controller.queue.add("pvc/" + subjects.object_key(ref.get("namespace"), ref.get("name", "")))
            else:
                self._wake_pending_claims()
            return
        claim = await self._live_claim(ref)
        if claim is not None:
            if _spec(claim).get("volumeName") == pv["metadata"]["name"]:
                if phase != "Bound":
                    await self._volume_status(pv, "Bound")
            else:  # binding in progress: the claim finishes it
                self.controller.queue.add("pvc/" + key_of(claim))
            return
        if phase == "Failed":
            return
        await self.reclaim(pv)

    async def _live_claim(self, ref: dict) -> dict | None:
        """The claim named by ``ref`` — read from the API, not the cache, before releasing a volume."""
        try:
            claim = await self.client.get("persistentvolumeclaims", ref.get("name", ""), ref.get("namespace"))
        except errors.NotFound:
            return None
        return claim if claim["metadata"].get("uid") == ref.get("uid") else None

    def _wake_pending_claims(self) -> None:
        for pvc in self.pvcs.list():
            if (pvc.get("status") or {}).get("phase") != "Bound":
                self.controller.queue.add(_pvc_key(pvc))

    async def reclaim(self, pv: dict) -> None:
        name = pv["metadata"]["name"]
        policy = _spec(pv).get("persistentVolumeReclaimPolicy") or "Retain"
        if (pv.get("status") or {}).get("phase") != "Released":
            pv = await self._volume_status(pv, "Released")
        if policy == "Retain":
            return
        host = (_spec(pv).get("hostPath") or {}).get("path")
        try:
            path = safe_reclaim_path(host, self.roots, (data_dir(),))
        except ReclaimRefused as refused:
            await self._volume_status(pv, "Failed", f"{policy} of volume {name} refused: {refused}")
            await self.recorder.event(pv, WARNING, f"VolumeFailed{policy}", str(refused))
            return
        if policy == "Delete":
            _remove(path)
            try:
                await self.client.delete("persistentvolumes", name, preconditions={"uid": pv["metadata"].get("uid")})
            except errors.NotFound:
                pass
            log.info("volume %s deleted with its data at %s", name, path)
        elif policy == "Recycle":
            _scrub(path)
            spec = {k: v for k, v in _spec(pv).items() if k != "claimRef"}
            pv = await self.client.update({**pv, "spec": spec})
            await self._volume_status(pv, "Available")
            await self.recorder.event(pv, NORMAL, "RecyclerPod", f"Recycler scrubbed {path}")
        else:
            await self._volume_status(pv, "Failed", f"unknown reclaim policy {policy!r}")

    async def _volume_status(self, pv: dict, phase: str, message: str | None = None) -> dict:
        status = {**(pv.get("status") or {}), "phase": phase}
        status.pop("message", None)
        if message:
            status["message"] = message
        if status == (pv.get("status") or {}):
            return pv
        return await self.client.update_status({**pv, "status": status})


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _scrub(path: Path) -> None:
    if not path.is_dir():
        return
    for child in path.iterdir():
        _remove(child)
