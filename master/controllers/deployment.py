"""The Deployment controller (Kubernetes' pkg/controller/deployment): a Deployment's pods are run by
ReplicaSets named ``<deployment>-<pod-template-hash>``; a changed template gets a new ReplicaSet
that is scaled up while the old ones are scaled down (RollingUpdate with maxSurge/maxUnavailable,
or Recreate), with revisions, history limit, pause, proportional scaling and the progress deadline.

The decisions are pure functions (``deployment_plan``, ``deployment_status``); this module reads
the caches, claims ReplicaSets, and writes what the plans say.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from bus import errors
from bus.controller import Controller, controller_owner
from bus.events import NORMAL, WARNING
from bus.informer import BY_OWNER, Informer, deep_copy, key_of
from bus.labels import selector_from_label_selector
from bus.meta import name_of
from bus.workqueue import Result, TerminalError
from master.controllers import deployment_plan as plan
from master.controllers import deployment_status as st
from master.controllers._ownership import controller_ref, deleting, owner_ref_to, owner_refs, set_owner_refs
from master.controllers.deployment_util import (
    REVISION, compute_hash, equal_ignore_hash, max_revision, max_surge, replicas_annotations_need_update,
    replicas_of, revision_of, selector_with_hash, set_new_rs_annotations, set_replicas_annotations,
    template_with_hash, by_creation,
)

log = logging.getLogger(__name__)

SCALING = "ScalingReplicaSet"


def setup(ctx) -> list:
    inf = ctx.informers
    dc = DeploymentController(ctx.client, inf.informer("deployments"), inf.informer("replicasets"),
                              inf.informer("pods"), ctx.recorder("deployment-controller"),
                              workers=ctx.settings.deployment_workers)
    return [dc.controller]


def _selector(d: dict):
    try:
        return selector_from_label_selector((d.get("spec") or {}).get("selector"))
    except ValueError as e:
        raise TerminalError(f"invalid selector: {e}") from None


def _recreate(d: dict) -> bool:
    return (((d.get("spec") or {}).get("strategy") or {}).get("type") or "RollingUpdate") == "Recreate"


class DeploymentController:
    def __init__(self, client: Any, deployments: Informer, replicasets: Informer, pods: Informer, recorder: Any,
                 workers: int = 4) -> None:
        self.client = client
        self.deployments = deployments
        self.rss = replicasets
        self.pods = pods
        self.recorder = recorder
        self.controller = Controller("deployment", self.reconcile, workers)
        self.controller.watches(deployments)
        self.controller.informers += [replicasets, pods]  # workers start once these caches synced too
        replicasets.add_handler(on_add=self._rs_event, on_update=lambda o, n: (self._rs_event(o), self._rs_event(n)),
                                on_delete=self._rs_event)
        pods.add_handler(on_delete=self._pod_deleted)

    # ---- events → keys -------------------------------------------------------------------------

    def _rs_event(self, rs: dict) -> None:
        """The controlling Deployment; for an orphan, every Deployment of its namespace that selects it."""
        key = controller_owner(rs, "Deployment")
        if key:
            self.controller.queue.add(key)
            return
        if controller_ref(rs) is not None:
            return
        labels = rs["metadata"].get("labels") or {}
        for d in self.deployments.list(rs["metadata"].get("namespace")):
            try:
                if _selector(d).matches(labels):
                    self.controller.queue.add(key_of(d))
            except TerminalError:
                continue

    def _pod_deleted(self, pod: dict) -> None:
        """A Recreate rollout waits for the old pods to be gone."""
        rs_key = controller_owner(pod, "ReplicaSet")
        rs = self.rss.get_by_key(rs_key) if rs_key else None
        d_key = controller_owner(rs, "Deployment") if rs else None
        d = self.deployments.get_by_key(d_key) if d_key else None
        if d is not None and _recreate(d):
            self.controller.queue.add(d_key)

    # ---- reconcile -----------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        cached = self.deployments.get_by_key(key)
        if cached is None:
            return None
        d = deep_copy(cached)
        orig = deep_copy(d.get("status") or {})
        d["status"] = d.get("status") or {}
        rss = await self._claim(d)
        now = time.time()
        if deleting(d):
            new_rs, olds = await self._sync_revision(d, rss, create=False)
            return await self._write(d, orig, st.calculate_status(d, olds + _one(new_rs), new_rs, now))
        st.paused_condition(d, d["status"], now)
        if d["spec"].get("paused"):
            return await self._sync(d, rss, orig)
        new_rs, olds = await self._sync_revision(d, rss, create=False)
        if plan.is_scaling_event(d, olds + _one(new_rs)):
            return await self._sync(d, rss, orig)
        if _recreate(d):
            return await self._rollout_recreate(d, rss, orig)
        return await self._rollout_rolling(d, rss, orig)

    async def _claim(self, d: dict) -> list[dict]:
        """The ReplicaSets this Deployment controls: adopt matching orphans, release non-matching ones."""
        meta = d["metadata"]
        sel = _selector(d)
        out = []
        for rs in self.rss.list(meta["namespace"]):
            ref = controller_ref(rs)
            labels = rs["metadata"].get("labels") or {}
            if ref is not None:
                if ref.get("uid") != meta["uid"]:
                    continue
                if sel.matches(labels):
                    out.append(rs)
                elif not deleting(d):
                    await set_owner_refs(self.client, "replicasets", rs,
                                         [r for r in owner_refs(rs) if r.get("uid") != meta["uid"]])
            elif sel.matches(labels) and not deleting(d) and not deleting(rs):
                out.append(await set_owner_refs(self.client, "replicasets", rs, owner_refs(rs) + [owner_ref_to(d)]))
        return out

    # ---- the new ReplicaSet and revisions --------------------------------------------------------

    async def _sync_revision(self, d: dict, rss: list[dict], create: bool) -> tuple[dict | None, list[dict]]:
        """``getAllReplicaSetsAndSyncRevision``: the new ReplicaSet (its template is the Deployment's),
        made when ``create``, carrying the next revision; and the old ones."""
        template = d["spec"].get("template") or {}
        new_rs = next((rs for rs in sorted(rss, key=by_creation) if equal_ignore_hash(rs["spec"].get("template"),
                                                                                       template)), None)
        olds = [rs for rs in rss if rs is not new_rs]
        revision = max_revision(olds) + 1
        if new_rs is not None:
            rs = deep_copy(new_rs)
            changed = set_new_rs_annotations(d, rs, revision, exists=True)
            min_ready = int(d["spec"].get("minReadySeconds") or 0)
            if changed or int(rs["spec"].get("minReadySeconds") or 0) != min_ready:
                rs["spec"]["minReadySeconds"] = min_ready
                new_rs = await self.client.update(rs)
            await self._set_revision(d, revision_of(new_rs))
            if st.has_progress_deadline(d) and st.get_deployment_condition(d["status"], st.PROGRESSING) is None:
                st.set_deployment_condition(d["status"], st.new_condition(
                    st.PROGRESSING, "True", st.FOUND_NEW_RS, f'Found new replica set "{name_of(new_rs)}"', time.time()))
            return new_rs, olds
        if not create:
            return None, olds
        return await self._create_new_rs(d, olds, revision), olds

    async def _create_new_rs(self, d: dict, olds: list[dict], revision: int) -> dict:
        meta, spec = d["metadata"], d["spec"]
        h = compute_hash(spec.get("template") or {}, d["status"].get("collisionCount"))
        template = template_with_hash(spec.get("template") or {}, h)
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": f"{meta['name']}-{h}", "namespace": meta["namespace"],
                           "labels": dict(template["metadata"]["labels"]), "ownerReferences": [owner_ref_to(d)]},
              "spec": {"replicas": 0, "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                       "selector": selector_with_hash(spec.get("selector") or {}, h), "template": template}}
        rs["spec"]["replicas"] = plan.new_rs_replicas(d, olds + [rs], rs)
        set_new_rs_annotations(d, rs, revision, exists=False)
        name, existed = rs["metadata"]["name"], False
        try:
            created = await self.client.create(rs)
        except errors.AlreadyExists:
            created = await self.client.get("replicasets", name, meta["namespace"])
            ref = controller_ref(created)
            if not (ref and ref.get("uid") == meta["uid"]
                    and equal_ignore_hash(created["spec"].get("template"), spec.get("template"))):
                await self._hash_collision(d)
                raise errors.Conflict(409, f'hash collision: replica set "{name}" exists') from None
            existed = True
        except (errors.Forbidden, errors.Conflict):
            raise
        except errors.ApiError as e:
            msg = f'Failed to create new replica set "{name}": {e.message}'
            await self.recorder.event(d, WARNING, st.FAILED_RS_CREATE, msg)
            if st.has_progress_deadline(d):
                st.set_deployment_condition(d["status"], st.new_condition(st.PROGRESSING, "False", st.FAILED_RS_CREATE, msg,
                                                               time.time()))
                await self._write(d, {}, d["status"])
            raise
        if not existed and replicas_of(created) > 0:
            await self.recorder.event(d, NORMAL, SCALING, f"Scaled up replica set {name} to {replicas_of(created)}")
        await self._set_revision(d, revision)
        if not existed and st.has_progress_deadline(d):
            st.set_deployment_condition(d["status"], st.new_condition(st.PROGRESSING, "True", st.NEW_RS_CREATED,
                                                           f'Created new replica set "{name}"', time.time()))
        return created

    async def _hash_collision(self, d: dict) -> None:
        """Another template hashes to the same name: bump collisionCount so the next hash differs."""
        fresh = await self.client.get("deployments", d["metadata"]["name"], d["metadata"]["namespace"])
        fresh.setdefault("status", {})["collisionCount"] = int(fresh["status"].get("collisionCount") or 0) + 1
        await self.client.update_status(fresh)
        log.info("deployment %s: hash collision, collisionCount now %d", key_of(d), fresh["status"]["collisionCount"])

    async def _set_revision(self, d: dict, revision: int) -> None:
        ann = d["metadata"].setdefault("annotations", {})
        if ann.get(REVISION) == str(revision):
            return
        out = await self.client.patch("deployments", d["metadata"]["name"], {"metadata": {
            "resourceVersion": d["metadata"].get("resourceVersion"), "annotations": {REVISION: str(revision)}}},
            d["metadata"]["namespace"])
        ann[REVISION] = str(revision)
        d["metadata"]["resourceVersion"] = out["metadata"]["resourceVersion"]

    # ---- scaling ---------------------------------------------------------------------------------

    async def _scale_rs(self, d: dict, rs: dict, n: int) -> dict:
        """``scaleReplicaSet``: the size, and the replica annotations of the Deployment's size."""
        want, top = replicas_of(d), replicas_of(d) + max_surge(d)
        was = replicas_of(rs)
        if was == n and not replicas_annotations_need_update(rs, want, top):
            return rs
        c = deep_copy(rs)
        c["spec"]["replicas"] = n
        set_replicas_annotations(c, want, top)
        out = await self.client.update(c)
        if was != n:
            direction = "up" if n > was else "down"
            await self.recorder.event(d, NORMAL, SCALING,
                                      f"Scaled {direction} replica set {name_of(rs)} to {n} from {was}")
        return out

    async def _apply(self, d: dict, rss: list[dict], sizes: plan.Plan) -> list[dict]:
        out = []
        for rs in rss:
            if rs is not None and name_of(rs) in sizes:
                rs = await self._scale_rs(d, rs, sizes[name_of(rs)])
            out.append(rs)
        return out

    async def _cleanup(self, d: dict, olds: list[dict]) -> None:
        for name in plan.cleanup(d, olds):
            rs = next(r for r in olds if name_of(r) == name)
            try:
                await self.client.delete("replicasets", name, d["metadata"]["namespace"],
                                         preconditions={"uid": rs["metadata"]["uid"]})
            except errors.NotFound:
                pass

    # ---- strategies ----------------------------------------------------------------------------

    async def _sync(self, d: dict, rss: list[dict], orig: dict) -> Result | None:
        """Scaling (and a paused Deployment): resize without moving the rollout on."""
        new_rs, olds = await self._sync_revision(d, rss, create=False)
        all_rss = await self._apply(d, olds + _one(new_rs), plan.scale(d, new_rs, olds))
        new_rs, olds = _split(all_rss, new_rs)
        if d["spec"].get("paused"):
            await self._cleanup(d, olds)
        return await self._write(d, orig, st.calculate_status(d, all_rss, new_rs, time.time()))

    async def _rollout_rolling(self, d: dict, rss: list[dict], orig: dict) -> Result | None:
        new_rs, olds = await self._sync_revision(d, rss, create=True)
        all_rss = olds + [new_rs]
        sizes = plan.rolling_scale_up(d, all_rss, new_rs) or plan.rolling_scale_down(d, all_rss, olds, new_rs)
        if sizes:  # one step per pass; the ReplicaSets' next status brings the next one
            all_rss = await self._apply(d, all_rss, sizes)
            new_rs, _ = _split(all_rss, new_rs)
            return await self._progress(d, all_rss, new_rs, orig)
        if st.complete(d, d["status"]):
            await self._cleanup(d, olds)
        return await self._progress(d, all_rss, new_rs, orig)

    async def _rollout_recreate(self, d: dict, rss: list[dict], orig: dict) -> Result | None:
        new_rs, olds = await self._sync_revision(d, rss, create=False)
        down = plan.recreate_scale_down(olds)
        if down:
            all_rss = await self._apply(d, olds + _one(new_rs), down)
            return await self._progress(d, all_rss, new_rs, orig)
        pods = {rs["metadata"]["uid"]: [p for p in self.pods.by_index(BY_OWNER, rs["metadata"]["uid"])
                                        if (controller_ref(p) or {}).get("uid") == rs["metadata"]["uid"]]
                for rs in olds + _one(new_rs)}
        if plan.old_pods_running(new_rs, olds, pods):
            return await self._progress(d, olds + _one(new_rs), new_rs, orig)
        if new_rs is None:
            new_rs, olds = await self._sync_revision(d, rss, create=True)
        all_rss = await self._apply(d, olds + [new_rs], {name_of(new_rs): replicas_of(d)})
        new_rs, olds = _split(all_rss, new_rs)
        if st.complete(d, d["status"]):
            await self._cleanup(d, olds)
        return await self._progress(d, all_rss, new_rs, orig)

    # ---- status --------------------------------------------------------------------------------

    async def _progress(self, d: dict, all_rss: list[dict], new_rs: dict | None, orig: dict) -> Result | None:
        """``syncRolloutStatus``: write the status, and come back in time for the progress deadline."""
        now = time.time()
        status = st.rollout_status(d, all_rss, new_rs, now)
        await self._write(d, orig, status)
        after = st.requeue_after(d, status, now)
        return Result(requeue_after=after) if after else None

    async def _write(self, d: dict, orig: dict, status: dict) -> None:
        if status == orig:
            return
        was = st.get_deployment_condition(orig, st.PROGRESSING) or {}
        now = st.get_deployment_condition(status, st.PROGRESSING) or {}
        c = {**d, "status": status}
        await self.client.update_status(c)
        if now.get("reason") == st.TIMED_OUT and was.get("reason") != st.TIMED_OUT:
            await self.recorder.event(d, WARNING, st.TIMED_OUT, now.get("message", ""))


def _one(rs: dict | None) -> list[dict]:
    return [rs] if rs is not None else []


def _split(all_rss: list[dict], new_rs: dict | None) -> tuple[dict | None, list[dict]]:
    """(new, olds) again after some ReplicaSets were replaced by their written versions."""
    new_name = name_of(new_rs) if new_rs is not None else None
    new = next((rs for rs in all_rss if name_of(rs) == new_name), None)
    return new, [rs for rs in all_rss if name_of(rs) != new_name]

