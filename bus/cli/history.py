"""``k8n history KIND NAME``: the kept revisions of an object and who made them (``bus.history``), ``--diff REV1
REV2`` a unified diff of two revisions' YAML, ``--deleted`` the final states of a kind's deleted objects."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Optional

import typer

from bus.cli import printers
from bus.cli.common import CliError, DataDirOpt, NamespaceOpt, ServerOpt, namespace_of, resource, run
from bus.cli.main import app
from bus.resources import Resource

if TYPE_CHECKING:
    from bus.client import ApiClient

NONE = "<none>"


def revisions_table(items: list[dict]) -> str:
    rows = [[str(it["revision"]), it.get("time") or NONE, it.get("user") or NONE, it.get("verb") or NONE,
             it.get("fieldManager") or NONE] for it in items]
    return printers.render(["REVISION", "TIME", "USER", "VERB", "MANAGER"], rows)


def deleted_table(items: list[dict]) -> str:
    rows = []
    for it in items:
        meta = (it.get("object") or {}).get("metadata") or {}
        rows.append([meta.get("name", ""), str(it["revision"]), it.get("time") or NONE, it.get("user") or NONE])
    return printers.render(["NAME", "REVISION", "DELETED", "USER"], rows)


def _yaml(obj: dict) -> list[str]:
    from bus import codec

    return codec.to_yaml(obj).splitlines(keepends=True)


def revision_diff(res: Resource, name: str, items: list[dict], rev1: int, rev2: int) -> str:
    """The unified diff of two kept revisions' YAML (``metadata.resourceVersion`` left out: it always differs)."""
    by_rev = {it["revision"]: it for it in items}
    for r in (rev1, rev2):
        if r not in by_rev:
            kept = ", ".join(str(x) for x in by_rev) or "none"
            raise CliError(f"revision {r} of {res.cli_name}/{name} is not kept (kept: {kept})")

    def lines(r: int) -> list[str]:
        obj = dict(by_rev[r]["object"])
        obj["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"}
        return _yaml(obj)

    what = f"{res.cli_name}/{name}"
    return "".join(difflib.unified_diff(lines(rev1), lines(rev2), f"{what} revision {rev1}",
                                        f"{what} revision {rev2}"))


@app.command("history")
def history(
    kind: str = typer.Argument(..., help="the kind (deployment, cm, secrets, ...)"),
    name: Optional[str] = typer.Argument(None, help="the object's name (not with --deleted)"),
    namespace: Optional[str] = NamespaceOpt,
    diff: Optional[tuple[int, int]] = typer.Option(None, "--diff", help="REV1 REV2: unified diff of two revisions"),
    deleted: bool = typer.Option(False, "--deleted", help="the deleted objects of KIND and their final state"),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="yaml or json: the ObjectHistory itself"),
    server: Optional[str] = ServerOpt,
    data_dir: Optional[str] = DataDirOpt,
) -> None:
    """Show the kept revisions of an object: when, who, which verb and field manager."""
    from bus.history import HISTORY

    if output not in (None, "yaml", "json"):
        raise typer.BadParameter("must be yaml or json", param_hint="--output")
    if deleted == bool(name):
        raise typer.BadParameter("give NAME, or --deleted without a name", param_hint="NAME")

    async def body(client: ApiClient) -> int:
        from bus import codec

        res = resource(kind)
        ns = namespace_of(res, None, namespace)
        doc = await client.request(res, "list" if deleted else "get", ns, name, subresource=HISTORY)
        items = doc.get("items") or []
        if output == "json":
            print(codec.encode(doc, True).decode())
        elif output == "yaml":
            print(codec.to_yaml(doc), end="")
        elif deleted:
            print(deleted_table(items) if items else f"No deleted {res.plural} found" +
                  (f" in {ns} namespace." if ns else "."))
        elif diff:
            print(revision_diff(res, name or "", items, *diff), end="")
        else:
            print(revisions_table(items))
        return 0

    run(server, data_dir, body)


def audit_table(records: list[dict]) -> str:
    rows = []
    for e in records:
        ref = e.get("objectRef") or {}
        res = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        rows.append([e.get("stageTimestamp") or NONE, (e.get("user") or {}).get("username") or NONE,
                     e.get("verb") or NONE, res, ref.get("namespace") or NONE, ref.get("name") or NONE,
                     str((e.get("responseStatus") or {}).get("code", ""))])
    return printers.render(["TIME", "USER", "VERB", "RESOURCE", "NAMESPACE", "NAME", "CODE"], rows)


@app.command("audit")
def audit(
    tail: int = typer.Option(100, "--tail", min=1, help="the last N messages of the audit stream (each holds the "
                                                        "records of up to 20 ms)"),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="json: one audit Event per line"),
    server: Optional[str] = ServerOpt,
    data_dir: Optional[str] = DataDirOpt,
) -> None:
    """Show the audit records of recent mutating requests (stream K8N_AUDIT; the admin identity only)."""
    if output not in (None, "json"):
        raise typer.BadParameter("must be json", param_hint="--output")

    async def body(client: ApiClient) -> int:
        import orjson

        from bus import history, subjects

        try:
            info = orjson.loads((await client.nc.request(subjects.js_stream_info(subjects.AUDIT_STREAM), b"",
                                                         timeout=5)).data)
            last = int((info.get("state") or {}).get("last_seq") or 0)
            records = await history.read_audit(client.nc, max(1, last - tail + 1), tail) if last else []
        except Exception as e:  # noqa: BLE001 - refused (another identity) or not there
            raise CliError(f"cannot read the audit stream {subjects.AUDIT_STREAM} (the admin identity may): "
                           f"{type(e).__name__} {e}") from None
        if output == "json":
            for r in records:
                print(orjson.dumps(r).decode())
        else:
            print(audit_table(records) if records else "No audit records.")
        return 0

    run(server, data_dir, body)
