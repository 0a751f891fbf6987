"""``k8n delete``: by name, ``KIND/NAME``, ``-f`` manifests, or ``-l``/``--all``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Optional

import typer

from bus.cli.common import (CliError, DataDirOpt, FilenameOpt, NamespaceOpt, ServerOpt, each_object,
                            manifests_or_exit, namespace_of, parse_targets, resource_for_object, run)
from bus.cli.main import app
from bus.resources import Resource

if TYPE_CHECKING:
    from bus.client import ApiClient

CASCADE = {"background": "Background", "true": "Background", "foreground": "Foreground",
           "orphan": "Orphan", "false": "Orphan"}


def _stub(res: Resource, name: str, namespace: str | None) -> dict:
    """A reference to an object in the shape of a manifest, so all deletes take one path."""
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": res.api_version, "kind": res.kind, "metadata": meta}


async def _objects(client: ApiClient, args: list[str], namespace: str | None, selector: str | None,
                   everything: bool) -> list[dict]:
    out = []
    for res, names in parse_targets(args, "delete"):
        ns = namespace_of(res, None, namespace)
        if names:
            out.extend(_stub(res, n, ns) for n in names)
        elif selector or everything:
            items, _ = await client.list(res, ns, label_selector=selector)
            out.extend(_stub(res, o["metadata"]["name"], ns) for o in items)
        else:
            raise CliError("resource(s) were provided, but no name was specified")
    return out


@app.command()
def delete(
    args: Optional[list[str]] = typer.Argument(None, metavar="KIND NAME... | KIND/NAME..."),
    filename: Optional[list[str]] = FilenameOpt,
    namespace: Optional[str] = NamespaceOpt,
    selector: Optional[str] = typer.Option(None, "--selector", "-l", help="delete what matches this label selector"),
    everything: bool = typer.Option(False, "--all", help="delete every object of the given kinds"),
    grace_period: int = typer.Option(-1, "--grace-period", help="seconds to wait (-1: the object's default)"),
    cascade: str = typer.Option("background", "--cascade", help="background|foreground|orphan"),
    server: Optional[str] = ServerOpt,
    data_dir: Optional[str] = DataDirOpt,
) -> None:
    """Delete resources by name, by file, or by label selector."""
    policy = CASCADE.get(cascade.lower())
    if policy is None:
        print(f'error: invalid cascade value ({cascade}). Must be "background", "foreground", or "orphan".',
              file=sys.stderr)
        raise typer.Exit(1)
    manifests = manifests_or_exit(filename, "delete") if filename else None

    async def delete_one(client: ApiClient, obj: dict) -> str:
        res = resource_for_object(obj)
        name = obj["metadata"]["name"]
        await client.delete(res, name, namespace_of(res, obj, namespace),
                            grace_period_seconds=grace_period if grace_period >= 0 else None,
                            propagation_policy=policy)
        return f'{res.cli_name} "{name}" deleted'

    async def body(client: ApiClient) -> int:
        objs = manifests or await _objects(client, args or [], namespace, selector, everything)
        if not objs:
            print("No resources found", file=sys.stderr)
            return 0
        return await each_object(objs, lambda o, _w: delete_one(client, o))

    run(server, data_dir, body)
