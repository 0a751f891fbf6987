"""``k8n upgrade plan`` and ``k8n upgrade apply``: what runs at which version, and the storage schema raised once
nothing older reads it (``master/apiserver/upgrade.py`` answers; the admin identity asks).

The order of a rolling upgrade (the version-skew policy, bus.skew): each API server replica in turn, then the
controller managers, schedulers, node views, gateways and ingress controllers, then the node agents; then
``k8n upgrade apply`` rewrites the stored objects in the newest schema (bus.schema)."""

from __future__ import annotations

from typing import Any, Optional

import typer

from bus.cli.common import DataDirOpt, ServerOpt, run
from bus.cli.main import app

upgrade = typer.Typer(help="Upgrades: the versions on the bus, the skew policy, the stored-object schema.",
                      no_args_is_help=True)
app.add_typer(upgrade, name="upgrade")

APPLY_TIMEOUT = 3600.0  # a storage migration rewrites every object: a large cluster takes a while


async def ask(client: Any, op: str, timeout: float) -> dict:
    """The API server's answer to ``op`` (``plan`` or ``apply``); ApiError for an error Status."""
    from bus import codec, errors, subjects

    msg = await client.nc.request(subjects.upgrade_subject(client.identity.token), codec.pack({"op": op}),
                                  timeout=timeout)
    reply = codec.unpack(msg.data)
    if int(reply.get("code", 500)) >= 400:
        raise errors.ApiError.from_status(reply.get("body") or {"code": reply.get("code")})
    return reply["body"]


def render(p: dict) -> str:
    from bus.cli.printers import render as render_table

    lines = [f"API server (answering): k8n {p['apiserver']}",
             f"storage schema: {p['storageSchema']} (newest: {p['latestSchema']})", ""]
    rows = [[c["identity"], c["version"], c["address"], c["server"], c["skew"]] for c in p["components"]]
    lines.append(render_table(["COMPONENT", "VERSION", "ADDRESS", "NATS SERVER", "SKEW"], rows))
    if p["nodes"]:
        lines.append("")
        lines.append(render_table(["NODE", "AGENT VERSION"],
                                  [[n["name"], n["version"] or n["kubeletVersion"] or "?"] for n in p["nodes"]]))
    lines.append("")
    if p["blockers"]:
        lines.append(f"the storage schema cannot be raised to {p['latestSchema']} yet:")
        lines.extend(f"  - {b}" for b in p["blockers"])
    elif p["storageSchema"] < p["latestSchema"]:
        lines.append(f"ready: `k8n upgrade apply` raises the storage schema to {p['latestSchema']} and rewrites the "
                     "stored objects")
    else:
        lines.append("the storage schema is the newest; `k8n upgrade apply` rewrites any object still stored in an "
                     "older one")
    return "\n".join(lines)


@upgrade.command("plan")
def plan_cmd(server: Optional[str] = ServerOpt, data_dir: Optional[str] = DataDirOpt) -> None:
    """Every component on the bus with its version and whether the version-skew policy allows it, every node's
    agent version, and whether the storage schema can be raised."""

    async def body(client: Any) -> int:
        print(render(await ask(client, "plan", 30.0)))
        return 0

    run(server, data_dir, body)


@upgrade.command("apply")
def apply_cmd(server: Optional[str] = ServerOpt, data_dir: Optional[str] = DataDirOpt) -> None:
    """Raise the storage schema to the newest once every component reads it, and rewrite every object stored in an
    older schema. Refused, saying what is still old, until then."""

    async def body(client: Any) -> int:
        out = await ask(client, "apply", APPLY_TIMEOUT)
        per = ", ".join(f"{b}={n}" for b, n in sorted(out["migrated"].items())) or "none needed"
        print(f"storage schema {out['storageSchema']}; rewrote {out['objects']} objects ({per})")
        return 0

    run(server, data_dir, body)
