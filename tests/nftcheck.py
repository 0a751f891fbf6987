"""Real nftables in private network namespaces, for the tests of transaction builders (service proxy, NetworkPolicy):
full(old) + diff(old→new) must hold exactly what full(new) holds."""

from __future__ import annotations

import json
import random
import subprocess
from typing import Any, Callable, Iterable


def table_content(ns: str, table: str) -> list[str]:
    """The table's objects in ``ns`` as sorted JSON texts, without handles and with set elements sorted."""
    out = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "table", "ip", table],
                         capture_output=True, text=True, check=True).stdout
    items = []
    for obj in json.loads(out)["nftables"]:
        body = next(iter(obj.values()))
        if isinstance(body, dict):
            body.pop("handle", None)
            if isinstance(body.get("elem"), list):
                body["elem"] = sorted(body["elem"], key=json.dumps)
        items.append(json.dumps(obj, sort_keys=True))
    return sorted(items)


def _apply(ns: str, tx: Any) -> None:
    r = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "-f", "-"], input=tx.payload(), capture_output=True)
    assert r.returncode == 0, r.stderr.decode()


def assert_diffs_converge(table: str, states: Iterable[Any], full: Callable[[str, Any], Any],
                          diff: Callable[[str, Any, Any], Any]) -> None:
    """Apply full(first state) then each diff to one namespace, each full(state) over the previous one in a second one: after every
    step both hold the same table, and no step is empty. The namespaces (``t-nftconv-…``) are removed after."""
    names = [f"t-nftconv-{random.getrandbits(24):06x}-{x}" for x in "ab"]
    for ns in names:
        subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        it = iter(states)
        old = next(it)
        _apply(names[0], full(table, old))
        for new in it:
            tx = diff(table, old, new)
            assert len(tx) > 0
            _apply(names[0], tx)
            _apply(names[1], full(table, new))
            assert table_content(names[0], table) == table_content(names[1], table)
            old = new
    finally:
        for ns in names:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
