"""``k8n get``: tables, ``-o json|yaml|name|wide``, selectors, ``-A``, and ``-w`` watches."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Optional

import typer

from bus import errors, tables
from bus.cli import printers
from bus.cli.common import (DEFAULT_NAMESPACE, CliError, DataDirOpt, Failures, NamespaceOpt, ServerOpt, Target,
                            parse_targets, run)
from bus.cli.main import app
from bus.resources import Resource

if TYPE_CHECKING:
    from bus.client import ApiClient

OUTPUTS = ("", "wide", "json", "yaml", "name")


def _single_object(targets: list[Target]) -> bool:
    """kubectl prints the bare object (not a List) for exactly one named object."""
    return len(targets) == 1 and len(targets[0][1]) == 1


class Output:
    """Prints objects in one ``-o`` format, for a one-shot get or a stream of watch events."""

    def __init__(self, fmt: str, *, all_namespaces: bool, show_labels: bool, show_kind: bool) -> None:
        if fmt not in OUTPUTS:
            raise CliError(f'unable to match a printer suitable for the output format "{fmt}", '
                           f"allowed formats are: json,name,wide,yaml")
        self.fmt, self.show_kind = fmt, show_kind
        self.table_opts = dict(wide=fmt == "wide", all_namespaces=all_namespaces, show_labels=show_labels)
        self.widths: list[int] = []
        self.documents = 0

    def _table(self, res: Resource, objs: list[dict]) -> tuple[list[str], list[list[str]]]:
        return printers.table(res, objs, show_kind=self.show_kind, **self.table_opts)

    def print_groups(self, groups: list[tuple[Resource, list[dict]]], single: bool) -> None:
        """A one-shot get: tables separated by blank lines, or one document for json/yaml."""
        if self.fmt in ("json", "yaml"):
            objs = [o for _, items in groups for o in items]
            self._document(objs[0] if single and len(objs) == 1 else printers.as_list(objs))
            return
        blocks = []
        for res, objs in groups:
            if self.fmt == "name":
                blocks.append("\n".join(printers.name_line(res, o) for o in objs))
            elif objs:
                headers, rows = self._table(res, objs)
                self.widths = printers.widths([headers, *rows])
                blocks.append(printers.render(headers, rows))
        text = ("\n" if self.fmt == "name" else "\n\n").join(b for b in blocks if b)
        if text:
            print(text, flush=True)

    def print_headers(self, res: Resource) -> None:
        if self.fmt in ("", "wide") and not self.widths:
            headers, _ = self._table(res, [])
            self.widths = printers.widths([headers])
            print(printers.format_row(headers, self.widths), flush=True)

    def print_event(self, res: Resource, etype: str, obj: dict) -> None:
        if self.fmt in ("json", "yaml"):
            self._document({"type": etype, "object": obj}, compact=True)
        elif self.fmt == "name":
            print(printers.name_line(res, obj), flush=True)
        else:
            _, rows = self._table(res, [obj])
            print(printers.format_row(rows[0], self.widths), flush=True)

    def _document(self, doc: Any, compact: bool = False) -> None:
        from bus import codec

        if self.fmt == "json":
            text = codec.to_json(doc, pretty=not compact).decode()
        else:
            text = ("---\n" if self.documents else "") + codec.to_yaml(doc).rstrip("\n")
        self.documents += 1
        print(text, flush=True)


def _no_resources(targets: list[Target], namespace: str | None) -> str:
    if namespace and any(r.namespaced for r, _ in targets):
        return f"No resources found in {namespace} namespace."
    return "No resources found"


async def _fetch(client: ApiClient, res: Resource, names: list[str], ns: str | None, selector: str | None,
                 field_selector: str | None, failures: Failures) -> list[dict]:
    if not names:
        items, _ = await client.list(res, ns, label_selector=selector, field_selector=field_selector)
        return items
    out = []
    for n in names:
        try:
            out.append(await client.get(res, n, ns))
        except errors.NotFound as e:
            failures.report(e)
    return out


async def _watch(client: ApiClient, out: Output, target: Target, ns: str | None, selector: str | None,
                 field_selector: str | None, watch_only: bool) -> None:
    res, names = target
    items, rv = await client.list(res, ns, label_selector=selector, field_selector=field_selector)
    wanted = (lambda o: tables.name(o) in names) if names else (lambda o: True)
    items = [o for o in items if wanted(o)]
    if not watch_only:
        if out.fmt in ("json", "yaml"):
            for o in items:
                out.print_event(res, "ADDED", o)
        else:
            out.print_groups([(res, items)], single=False)
    out.print_headers(res)
    watch = await client.watch(res, ns, since=rv, label_selector=selector, field_selector=field_selector,
                               initial=items)
    try:
        async for ev in watch:
            if wanted(ev.object):
                out.print_event(res, ev.type, ev.object)
    finally:
        await watch.stop()


@app.command()
def get(
    args: Optional[list[str]] = typer.Argument(None, metavar="KIND [NAME...] | KIND/NAME..."),
    namespace: Optional[str] = NamespaceOpt,
    all_namespaces: bool = typer.Option(False, "--all-namespaces", "-A", help="list across all namespaces"),
    selector: Optional[str] = typer.Option(None, "--selector", "-l", help="label selector"),
    field_selector: Optional[str] = typer.Option(None, "--field-selector", help="field selector"),
    output: str = typer.Option("", "--output", "-o", help="wide|json|yaml|name"),
    show_labels: bool = typer.Option(False, "--show-labels", help="add a LABELS column"),
    watch: bool = typer.Option(False, "--watch", "-w", help="after listing, watch for changes"),
    watch_only: bool = typer.Option(False, "--watch-only", help="watch for changes without listing first"),
    server: Optional[str] = ServerOpt,
    data_dir: Optional[str] = DataDirOpt,
) -> None:
    """Display one or many resources."""
    ns = None if all_namespaces else (namespace or DEFAULT_NAMESPACE)

    async def body(client: ApiClient) -> int:
        targets = parse_targets(args or [])
        out = Output(output, all_namespaces=all_namespaces, show_labels=show_labels,
                     show_kind=len(targets) > 1)
        if watch or watch_only:
            if len(targets) != 1:
                raise CliError("you may only specify a single resource type")
            await _watch(client, out, targets[0], ns, selector, field_selector, watch_only)
            return 0
        failures = Failures()
        groups = [(res, await _fetch(client, res, names, ns, selector, field_selector, failures))
                  for res, names in targets]
        if failures.count and not any(objs for _, objs in groups):
            return 1
        if not any(objs for _, objs in groups) and out.fmt not in ("json", "yaml"):
            print(_no_resources(targets, ns), file=sys.stderr)
            return 0
        out.print_groups(groups, single=_single_object(targets))
        return 1 if failures.count else 0

    run(server, data_dir, body)
