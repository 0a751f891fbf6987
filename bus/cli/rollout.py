"""``k8n rollout status|history|undo|pause|resume|restart`` and ``k8n scale``, as kubectl does them:
rollbacks are client-side (the template of the chosen revision's ReplicaSet is copied back into the
Deployment), status watches the Deployment and prints kubectl's progress lines."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, List, Optional

import typer

from bus import errors
from bus.meta import parse_duration
from bus.cli.common import CliError, DataDirOpt, NamespaceOpt, ServerOpt, fail, parse_targets, run
from bus.cli.main import app

if TYPE_CHECKING:
    from bus.client import ApiClient
    from bus.resources import Resource

rollout = typer.Typer(help="Manage the rollout of a Deployment.", no_args_is_help=True)
app.add_typer(rollout, name="rollout")

REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
HASH_LABEL = "pod-template-hash"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
# what a rollback does not copy from the ReplicaSet back to the Deployment (kubectl's annotationsToSkip)
_SKIP = {"kubectl.kubernetes.io/last-applied-configuration", REVISION, "deployment.kubernetes.io/revision-history",
         "deployment.kubernetes.io/desired-replicas", "deployment.kubernetes.io/max-replicas",
         "deprecated.deployment.rollback.to"}
Args = typer.Argument(..., help="TYPE/NAME or TYPE NAME (e.g. deployment/web)")


def _target(args: list[str], kinds: tuple[str, ...] = ("Deployment",)) -> tuple[Resource, str]:
    targets = parse_targets(args, "rollout")
    if len(targets) != 1 or len(targets[0][1]) != 1:
        raise CliError("exactly one TYPE/NAME is required, e.g. deployment/web")
    res, [name] = targets[0]
    if res.kind not in kinds:
        raise CliError(f"no {' or '.join(kinds)} support for {res.cli_name}: kind {res.kind} is not supported")
    return res, name


def _cli(args: list[str], server, data_dir, body, kinds: tuple[str, ...] = ("Deployment",)) -> None:
    try:
        res, name = _target(args, kinds)
    except CliError as e:
        fail(e)
    run(server, data_dir, lambda client: body(client, res, name))


def _revision(obj: dict) -> int:
    try:
        return int(((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION) or 0)
    except ValueError:
        return 0


def _without_hash(template: dict) -> dict:
    import copy

    t = copy.deepcopy(template or {})
    ((t.get("metadata") or {}).get("labels") or {}).pop(HASH_LABEL, None)
    return t


async def _history(client: ApiClient, d: dict) -> dict[int, dict]:
    """revision → ReplicaSet, for the ReplicaSets the Deployment controls."""
    uid = d["metadata"]["uid"]
    rss, _ = await client.list("replicasets", d["metadata"]["namespace"])
    owned = [rs for rs in rss if any(r.get("controller") and r.get("uid") == uid
                                     for r in rs["metadata"].get("ownerReferences") or [])]
    return {_revision(rs): rs for rs in owned if _revision(rs) > 0}


def _duration(text: str) -> float:
    """kubectl's ``--timeout``: ``30s``, ``5m``, ``1h``, ``1m30s`` or seconds; 0 waits forever."""
    try:
        return parse_duration(text)
    except ValueError:
        raise CliError(f'invalid argument "{text}" for "--timeout" flag: time: invalid duration "{text}"') from None


# ---- status ------------------------------------------------------------------------------------


def status_message(d: dict) -> tuple[str, bool]:
    """kubectl's DeploymentStatusViewer: (message, done); raises CliError past the deadline."""
    name = d["metadata"]["name"]
    st, sp = d.get("status") or {}, d.get("spec") or {}
    if int(d["metadata"].get("generation") or 0) > int(st.get("observedGeneration") or 0):
        return "Waiting for deployment spec update to be observed...", False
    cond = next((c for c in st.get("conditions") or [] if c.get("type") == "Progressing"), None)
    if cond and cond.get("reason") == "ProgressDeadlineExceeded":
        raise CliError(f'deployment "{name}" exceeded its progress deadline')
    want = int(sp.get("replicas", 1))
    updated, total, available = (int(st.get(k) or 0) for k in ("updatedReplicas", "replicas", "availableReplicas"))
    if updated < want:
        return (f'Waiting for deployment "{name}" rollout to finish: {updated} out of {want} new replicas have been '
                "updated..."), False
    if total > updated:
        return (f'Waiting for deployment "{name}" rollout to finish: {total - updated} old replicas are pending '
                "termination..."), False
    if available < updated:
        return (f'Waiting for deployment "{name}" rollout to finish: {available} of {updated} updated replicas are '
                "available..."), False
    return f'deployment "{name}" successfully rolled out', True


@rollout.command("status")
def status_(
    args: List[str] = Args,
    watch: bool = typer.Option(True, "--watch", "-w", help="watch until the rollout finishes"),
    timeout: str = typer.Option("0s", "--timeout", help="how long to wait (e.g. 60s, 5m); 0 waits forever"),
    namespace: Optional[str] = NamespaceOpt,
    server: Optional[str] = ServerOpt,
    data_dir: Optional[str] = DataDirOpt,
) -> None:
    """Show the status of a rollout; with --watch (default) wait until it is complete."""
    import asyncio
    import time

    try:
        limit = _duration(timeout)
    except CliError as e:
        fail(e)

    async def body(client: ApiClient, res: Resource, name: str) -> int:
        ns = namespace or "default"
        deadline = time.monotonic() + limit if limit > 0 else None
        d = await client.get(res, name, ns)
        w = await client.watch(res, ns, since=int(d["metadata"]["resourceVersion"]),
                               field_selector=f"metadata.name={name}") if watch else None
        last = None
        try:
            while True:
                msg, done = status_message(d)
                if msg != last:
                    print(msg, flush=True)
                    last = msg
                if done or w is None:
                    return 0
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise CliError("timed out waiting for the condition")
                try:
                    ev = await asyncio.wait_for(w.__anext__(), left)
                except asyncio.TimeoutError:
                    raise CliError("timed out waiting for the condition") from None
                except StopAsyncIteration:
                    raise CliError("watch closed before the rollout finished") from None
                if ev.type == "DELETED":
                    raise CliError(f'deployment "{name}" was deleted')
                d = ev.object
        finally:
            if w is not None:
                await w.stop()

    _cli(args, server, data_dir, body)


# ---- history and undo --------------------------------------------------------------------------


@rollout.command("history")
def history(
    args: List[str] = Args,
    revision: int = typer.Option(0, "--revision", help="show the pod template of this revision"),
    namespace: Optional[str] = NamespaceOpt,
    server: Optional[str] = ServerOpt,
    data_dir: Optional[str] = DataDirOpt,
) -> None:
    """List the revisions of a Deployment (its ReplicaSets), or show one with --revision."""
    from bus.cli.describe import Writer, _pod_template
    from bus.cli.printers import render

    async def body(client: ApiClient, res: Resource, name: str) -> int:
        d = await client.get(res, name, namespace or "default")
        revs = await _history(client, d)
        if revision:
            rs = revs.get(revision)
            if rs is None:
                raise CliError(f"unable to find the specified revision {revision}")
            w = Writer()
            _pod_template(w, rs["spec"].get("template") or {})
            print(f"{res.cli_name}/{name} with revision #{revision}\n{w.text()}")
            return 0
        rows = [[str(r), ((revs[r]["metadata"].get("annotations") or {}).get(CHANGE_CAUSE) or "<none>")]
                for r in sorted(revs)]
        print(f"{res.cli_name}/{name} \n{render(['REVISION', 'CHANGE-CAUSE'], rows)}\n")
        return 0

    _cli(args, server, data_dir, body)


@rollout.command("undo")
def undo(
    args: List[str] = Args,
    to_revision: int = typer.Option(0, "--to-revision", help="the revision to go back to (0: the previous one)"),
    namespace: Optional[str] = NamespaceOpt,
    server: Optional[str] = ServerOpt,
    data_dir: Optional[str] = DataDirOpt,
) -> None:
    """Roll back to an earlier revision: its pod template is copied into the Deployment."""

    async def body(client: ApiClient, res: Resource, name: str) -> int:
        ns = namespace or "default"
        for _ in range(5):  # a write raced ours: read again
            d = await client.get(res, name, ns)
            if (d.get("spec") or {}).get("paused"):
                raise CliError(f"you cannot rollback a paused deployment; resume it first with 'k8n rollout resume "
                               f"{res.cli_name}/{name}' and try again")
            revs = await _history(client, d)
            if to_revision:
                rs = revs.get(to_revision)
                if rs is None:
                    raise CliError(f"unable to find specified revision {to_revision} in history")
            else:
                if len(revs) < 2:
                    raise CliError(f'no rollout history found for deployment "{name}"')
                rs = revs[sorted(revs)[-2]]
            template = _without_hash(rs["spec"]["template"])
            if template == _without_hash(d["spec"].get("template")):
                print(f"{res.cli_name}/{name} skipped rollback (current template already matches revision "
                      f"{_revision(rs)})")
                return 0
            d["spec"]["template"] = template
            d["metadata"]["annotations"] = {k: v for k, v in (rs["metadata"].get("annotations") or {}).items()
                                            if k not in _SKIP}
            try:
                await client.update(d)
            except errors.Conflict:
                continue
            print(f"{res.cli_name}/{name} rolled back")
            return 0
        raise CliError("the deployment kept changing; try again")

    _cli(args, server, data_dir, body)


# ---- pause, resume, restart --------------------------------------------------------------------


def _patch_command(verb: str, done: str, check, patch_of) -> None:
    def command(
        args: List[str] = Args,
        namespace: Optional[str] = NamespaceOpt,
        server: Optional[str] = ServerOpt,
        data_dir: Optional[str] = DataDirOpt,
    ) -> None:
        async def body(client: ApiClient, res: Resource, name: str) -> int:
            d = await client.get(res, name, namespace or "default")
            problem = check(d)
            if problem:
                raise CliError(f'{res.plural}.{res.group} "{name}" {problem}' if res.group else problem)
            await client.patch(res, name, patch_of(d), namespace or "default")
            print(f"{res.cli_name}/{name} {done}")
            return 0

        _cli(args, server, data_dir, body)

    command.__doc__ = {"pause": "Pause a rollout: template changes are not rolled out until resumed.",
                       "resume": "Resume a paused rollout.",
                       "restart": "Restart every pod of a Deployment through a rolling update."}[verb]
    rollout.command(verb)(command)


def _paused(d: dict) -> bool:
    return bool((d.get("spec") or {}).get("paused"))


def _restart_patch(_d: dict) -> dict:
    from bus.meta import format_time

    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: format_time()}}}}}


_patch_command("pause", "paused", lambda d: "is already paused" if _paused(d) else None,
               lambda d: {"spec": {"paused": True}})
_patch_command("resume", "resumed", lambda d: None if _paused(d) else "is not paused",
               lambda d: {"spec": {"paused": None}})
_patch_command("restart", "restarted",
               lambda d: "can't restart paused deployment (run rollout resume first)" if _paused(d) else None,
               _restart_patch)


# ---- scale -------------------------------------------------------------------------------------


@app.command()
def scale(
    args: List[str] = Args,
    replicas: int = typer.Option(..., "--replicas", help="the new number of replicas"),
    current_replicas: int = typer.Option(-1, "--current-replicas",
                                         help="only scale if the current replicas are this many"),
    namespace: Optional[str] = NamespaceOpt,
    server: Optional[str] = ServerOpt,
    data_dir: Optional[str] = DataDirOpt,
) -> None:
    """Set the replicas of a Deployment, ReplicaSet or ReplicationController (its scale subresource)."""
    if replicas < 0:
        print("error: The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0",
              file=sys.stderr)
        raise typer.Exit(1)

    async def body(client: ApiClient, res: Resource, name: str) -> int:
        ns = namespace or "default"
        if current_replicas >= 0:
            cur = await client.get_scale(res, name, ns)
            if cur["spec"]["replicas"] != current_replicas:
                raise CliError(f"Expected replicas to be {current_replicas}, was {cur['spec']['replicas']}")
            cur["spec"]["replicas"] = replicas  # CAS on the resourceVersion read
            await client.update(cur, ns, subresource="scale", ref=res)
        else:
            await client.scale(res, name, replicas, ns)
        print(f"{res.cli_name}/{name} scaled")
        return 0

    _cli(args, server, data_dir, body, kinds=("Deployment", "ReplicaSet", "ReplicationController"))
