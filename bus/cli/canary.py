"""``k8n canary ingress/NAME --weight N | --promote | --abort``: the common moves of a canary release on an Ingress
carrying ingress-nginx's canary annotations. The objects are computed by ``bus.canary`` (pure) and written with
their resourceVersion; a write that lost a race is redone from fresh reads."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, List, Optional

import typer

from bus import errors
from bus.cli.common import DEFAULT_NAMESPACE, CliError, DataDirOpt, NamespaceOpt, ServerOpt, fail, parse_targets, run
from bus.cli.main import app

if TYPE_CHECKING:
    from bus.client import ApiClient
    from bus.resources import Resource

ATTEMPTS = 5  # reads and writes again after a Conflict
ROUTES_NOTHING = "no header or cookie rule"


def _target(args: list[str]) -> tuple[Resource, str]:
    targets = parse_targets(args, "canary")
    if len(targets) != 1 or len(targets[0][1]) != 1:
        raise CliError("exactly one ingress/NAME is required, e.g. ingress/web-canary")
    res, [name] = targets[0]
    if res.kind != "Ingress":
        raise CliError(f"canary works on Ingresses (ingress/NAME), not {res.cli_name}")
    return res, name


def _where(host: str, path: str) -> str:
    return f"{host or '*'}{path}"


async def _classes(client: ApiClient) -> list[dict]:
    """The IngressClasses (to know the default one); none when this identity may not list them."""
    try:
        items, _ = await client.list("ingressclasses")
    except errors.Forbidden:
        return []
    return items


@app.command("canary")
def canary_(
    args: List[str] = typer.Argument(..., metavar="ingress/NAME", help="the canary Ingress"),
    weight: Optional[int] = typer.Option(None, "--weight", help="the canary's share: 0 to canary-weight-total "
                                         "(default 100)"),
    promote: bool = typer.Option(False, "--promote", help="the primary Ingresses' paths take the canary's "
                                 "backends; then the canary routes nothing"),
    abort: bool = typer.Option(False, "--abort", help="the canary routes nothing (weight 0, no header or cookie "
                               "rule); it stays"),
    namespace: Optional[str] = NamespaceOpt,
    server: Optional[str] = ServerOpt,
    data_dir: Optional[str] = DataDirOpt,
) -> None:
    """Move a canary release (ingress-nginx's canary annotations): set its weight, promote it, or abort it."""
    from bus import canary as moves
    from bus.ingress import canary as canary_view

    try:
        if (weight is not None) + promote + abort != 1:
            raise CliError("exactly one of --weight, --promote or --abort is required")
        if weight is not None and weight < 0:
            raise CliError(f"invalid weight {weight}: must be 0 or more")
        res, name = _target(args)
    except CliError as e:
        fail(e)
    ns = namespace or DEFAULT_NAMESPACE
    ref = f"{res.cli_name}/{name}"

    def summary(obj: dict) -> str:
        c = canary_view((obj.get("metadata") or {}).get("annotations"))
        return f"weight {c.weight}/{c.weight_total}"

    async def write(client: ApiClient, old: dict, new: dict) -> None:
        if new != old:
            warnings: list[str] = []
            await client.update(new, ns, warnings=warnings)
            for w in warnings:
                print(f"Warning: {w}", file=sys.stderr)

    async def promote_once(client: ApiClient, ing: dict) -> str:
        items, _ = await client.list(res, ns)
        new_primaries, changes, unserved = moves.promoted(ing, items, await _classes(client))
        by_name = {i["metadata"]["name"]: i for i in items}
        for new in new_primaries:
            pname = new["metadata"]["name"]
            await write(client, by_name[pname], new)
            for c in (c for c in changes if c.ingress == pname):
                print(f"{res.cli_name}/{pname} {_where(c.host, c.path)}: {c.old} -> {c.new}", flush=True)
        for host, path in unserved:
            print(f"Warning: no primary Ingress serves {_where(host, path)}: not promoted", file=sys.stderr)
        new = moves.routing_nothing(ing)
        await write(client, ing, new)
        return f"{ref} promoted: {summary(new)}, {ROUTES_NOTHING}"

    async def body(client: ApiClient) -> int:
        for _ in range(ATTEMPTS):
            ing = await client.get(res, name, ns)
            try:
                if promote:
                    line = await promote_once(client, ing)
                else:
                    new = moves.with_weight(ing, weight) if weight is not None else moves.routing_nothing(ing)
                    await write(client, ing, new)
                    line = f"{ref} {summary(new)}" if weight is not None else \
                        f"{ref} aborted: {summary(new)}, {ROUTES_NOTHING}"
            except moves.CanaryError as e:
                raise CliError(str(e)) from None
            except (errors.Conflict, errors.NotFound) as e:  # another writer won, or a primary went: read again
                last = e
                continue
            print(line)
            return 0
        raise CliError(f"the Ingresses kept changing ({last.message}); try again")

    run(server, data_dir, body)
