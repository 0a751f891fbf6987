"""How ``k8n get`` prints objects, as kubectl does: tables laid out as text, ``-o name`` and ``-o json|yaml`` lists.

The columns per kind and their cells are the shared vocabulary of ``bus.tables``; this module only lays
them out (kubectl's tabwriter widths and padding).
"""

from __future__ import annotations

from datetime import datetime, timezone

from bus.resources import Resource
from bus.tables import NAME, columns, format_labels, meta, name

PAD = 3
MIN_WIDTH = 6  # kubectl's tabwriter minimum cell width (padding included)


# ---- tables -------------------------------------------------------------------------------------

def table(res: Resource, objs: list[dict], *, wide: bool = False, all_namespaces: bool = False,
          show_labels: bool = False, show_kind: bool = False,
          now: datetime | None = None) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) for ``objs`` of one resource. ``show_kind`` prefixes names with
    ``deployment.apps/`` as kubectl does when several kinds are printed."""
    now = now or datetime.now(timezone.utc)
    cols = columns(res.kind, wide, res)
    headers = [h for h, _ in cols]
    if all_namespaces and res.namespaced:
        headers.insert(0, "NAMESPACE")
    if show_labels:
        headers.append("LABELS")
    rows = []
    for o in objs:
        row = [fn(o, now) for _, fn in cols]
        if show_kind and cols[0] is NAME:
            row[0] = f"{res.cli_name}/{row[0]}"
        if all_namespaces and res.namespaced:
            row.insert(0, meta(o).get("namespace", ""))
        if show_labels:
            row.append(format_labels(meta(o).get("labels")))
        rows.append(row)
    return headers, rows


def widths(rows: list[list[str]], pad: int = PAD, min_width: int = MIN_WIDTH) -> list[int]:
    n = max((len(r) for r in rows), default=0)
    return [max(min_width, max(len(r[i]) for r in rows if i < len(r)) + pad) for i in range(n)]


def format_row(row: list[str], col_widths: list[int]) -> str:
    """Cells left-aligned in their columns; the last cell is not padded (kubectl's tabwriter)."""
    cells = [c.ljust(col_widths[i]) if i < len(col_widths) else c + " " * PAD for i, c in enumerate(row[:-1])]
    return "".join(cells) + (row[-1] if row else "")


def render(headers: list[str], rows: list[list[str]], pad: int = PAD, min_width: int = MIN_WIDTH) -> str:
    ws = widths([headers, *rows], pad, min_width)
    return "\n".join(format_row(r, ws) for r in [headers, *rows])


def name_line(res: Resource, obj: dict) -> str:
    """``-o name``: ``pod/x``, ``deployment.apps/web``."""
    return f"{res.cli_name}/{name(obj)}"


def as_list(objs: list[dict]) -> dict:
    return {"apiVersion": "v1", "kind": "List", "items": objs, "metadata": {"resourceVersion": ""}}
