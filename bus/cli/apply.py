"""``k8n apply`` (kubectl's client-side apply), ``k8n create -f`` and ``k8n replace -f``.

Apply keeps the manifest it applied in the ``last-applied-configuration`` annotation. On the next
apply it sends a JSON merge patch computed three ways, as kubectl's
``CreateThreeWayJSONMergePatch``: fields the last manifest had and the new one dropped are deleted
(``null``); fields of the new manifest that differ from the live object are set; everything else
live (status, defaults, what controllers wrote) is left alone. Lists are replaced whole (a merge
patch cannot address list items).
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any, Optional

import typer

from bus import errors
from bus.cli.common import (CliError, DataDirOpt, FilenameOpt, NamespaceOpt, ServerOpt, each_object, fail,
                            manifests_or_exit, namespace_of, object_ref, resource_for_object, run)
from bus.cli.main import app

if TYPE_CHECKING:
    from bus.client import ApiClient

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


# ---- the pure part ------------------------------------------------------------------------------

def contains(have: Any, want: Any) -> bool:
    """``want`` is already in ``have``: equal scalars, maps whose every wanted field is contained,
    lists of the same length whose items are contained pairwise (so server defaults inside list
    items, like a port's ``protocol: TCP``, don't count as a difference)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(k in have and contains(have[k], v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(have) == len(want) and all(map(contains, have, want))
    return have == want


def three_way_patch(original: dict | None, modified: dict, current: dict) -> dict:
    """The JSON merge patch that takes ``current`` (live) to what ``modified`` (the new manifest)
    asks, deleting what ``original`` (the last applied manifest) had and ``modified`` dropped.
    A list is sent whole when the manifest changed it or the live one no longer holds it.
    Empty when nothing needs to change."""
    original = original or {}
    out: dict[str, Any] = {k: None for k in original if k not in modified}
    for k, want in modified.items():
        had, have = original.get(k), current.get(k)
        if isinstance(want, dict) and isinstance(have, dict):
            sub = three_way_patch(had if isinstance(had, dict) else {}, want, have)
            if sub:
                out[k] = sub
        elif want is None:
            if k in current:
                out[k] = None
        elif isinstance(want, list):
            if (k in original and want != had) or not contains(have, want):
                out[k] = want
        elif k not in current or have != want:
            out[k] = want
    return out


def with_last_applied(obj: dict) -> dict:
    """A copy of ``obj`` carrying itself (minus that annotation) as the last-applied annotation."""
    out = copy.deepcopy(obj)
    meta = out.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    annotations.pop(LAST_APPLIED, None)
    recorded = copy.deepcopy(out)
    if annotations:
        recorded["metadata"]["annotations"] = annotations
    else:
        recorded["metadata"].pop("annotations", None)
    annotations[LAST_APPLIED] = json.dumps(recorded, separators=(",", ":"), sort_keys=True)
    meta["annotations"] = annotations
    return out


# ---- the verbs ----------------------------------------------------------------------------------

def _prepare(obj: dict, namespace: str | None) -> tuple[dict, str, str | None]:
    """A copy of a manifest with its namespace filled in, its name and namespace."""
    res = resource_for_object(obj)
    obj = copy.deepcopy(obj)
    meta = obj.setdefault("metadata", {})
    if not meta.get("name"):
        raise CliError("resource name may not be empty")
    ns = namespace_of(res, obj, namespace)
    if ns:
        meta["namespace"] = ns
    return obj, meta["name"], ns


async def apply_object(client: ApiClient, obj: dict, namespace: str | None, warnings: list[str]) -> str:
    obj, name, ns = _prepare(obj, namespace)
    res = resource_for_object(obj)
    modified = with_last_applied(obj)
    try:
        live = await client.get(res, name, ns)
    except errors.NotFound:
        await client.create(modified, ns, warnings=warnings)
        return f"{object_ref(obj)} created"
    recorded = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if recorded is None:
        warnings.append(f"resource {res.plural}/{name} is missing the {LAST_APPLIED} annotation which is "
                        "required by k8n apply. k8n apply should only be used on resources created "
                        "declaratively by either k8n create --save-config or k8n apply. The missing "
                        "annotation will be patched automatically.")
    try:
        original = json.loads(recorded) if recorded else None
    except ValueError:
        original = None
    patch = three_way_patch(original, modified, live)
    if not patch:
        return f"{object_ref(obj)} unchanged"
    await client.patch(res, name, patch, ns, patch_type="merge", warnings=warnings)
    return f"{object_ref(obj)} configured"


async def create_object(client: ApiClient, obj: dict, namespace: str | None, warnings: list[str]) -> str:
    obj, _, ns = _prepare(obj, namespace)
    await client.create(obj, ns, warnings=warnings)
    return f"{object_ref(obj)} created"


async def replace_object(client: ApiClient, obj: dict, namespace: str | None, warnings: list[str]) -> str:
    obj, name, ns = _prepare(obj, namespace)
    if not obj["metadata"].get("resourceVersion"):  # an unconditional replace: take the live version
        live = await client.get(resource_for_object(obj), name, ns)
        obj["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
    await client.update(obj, ns, warnings=warnings)
    return f"{object_ref(obj)} replaced"


def _manifest_verb(verb: str, action: Any, files: list[str] | None, namespace: str | None,
                   server: str | None, data_dir: str | None) -> None:
    objs = manifests_or_exit(files, verb)

    async def body(client: ApiClient) -> int:
        return await each_object(objs, lambda o, w: action(client, o, namespace, w))

    run(server, data_dir, body)


@app.command()
def apply(filename: Optional[list[str]] = FilenameOpt, namespace: Optional[str] = NamespaceOpt,
          wait: bool = typer.Option(False, "--wait", help="wait until the applied objects are ready: rollouts "
                                    "done, Jobs complete, Pods Ready, Services with a ready endpoint, PVCs Bound, "
                                    "CRDs Established"),
          timeout: str = typer.Option("5m", "--timeout", help="with --wait: how long to wait (e.g. 60s, 5m); "
                                      "0 waits forever"),
          server: Optional[str] = ServerOpt, data_dir: Optional[str] = DataDirOpt) -> None:
    """Create or update objects from manifests (client-side apply); with --wait, wait until they are ready."""
    if not wait:
        _manifest_verb("apply", apply_object, filename, namespace, server, data_dir)
        return
    from bus.cli.rollout import _duration
    from bus.cli.waiter import Target, wait as wait_for

    try:
        limit = _duration(timeout)
    except CliError as e:
        fail(e)
    objs = manifests_or_exit(filename, "apply")

    async def body(client: ApiClient) -> int:
        applied: list[Target] = []

        async def act(obj: dict, warnings: list[str]) -> str:
            line = await apply_object(client, obj, namespace, warnings)
            prepared, name, ns = _prepare(obj, namespace)
            applied.append(Target(resource_for_object(prepared), name, ns, object_ref(prepared), prepared))
            return line

        code = await each_object(objs, act)
        return max(code, await wait_for(client, applied, limit))

    run(server, data_dir, body)


@app.command()
def create(filename: Optional[list[str]] = FilenameOpt, namespace: Optional[str] = NamespaceOpt,
           server: Optional[str] = ServerOpt, data_dir: Optional[str] = DataDirOpt) -> None:
    """Create objects from manifests (fails if they exist)."""
    _manifest_verb("create", create_object, filename, namespace, server, data_dir)


@app.command()
def replace(filename: Optional[list[str]] = FilenameOpt, namespace: Optional[str] = NamespaceOpt,
            server: Optional[str] = ServerOpt, data_dir: Optional[str] = DataDirOpt) -> None:
    """Replace objects with manifests (a stale metadata.resourceVersion is a Conflict)."""
    _manifest_verb("replace", replace_object, filename, namespace, server, data_dir)
