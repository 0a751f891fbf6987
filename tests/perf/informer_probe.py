"""Benchmark helper process: an informer on configmaps in one namespace that prints
``<name> <time.perf_counter()>`` for each add (CLOCK_MONOTONIC, comparable across processes)."""

from __future__ import annotations

import asyncio
import sys
import time

from bus import aio
from bus.client import ApiClient
from bus.informer import Informer


async def main(url: str, namespace: str) -> None:
    client = await ApiClient.connect(url)
    inf = Informer(client, "configmaps", namespace)
    out = sys.stdout

    def on_add(obj: dict) -> None:
        out.write(f"{obj['metadata']['name']} {time.perf_counter()}\n")
        out.flush()

    inf.add_handler(on_add=on_add)
    await inf.start()
    out.write("synced\n")
    out.flush()
    await asyncio.Event().wait()


if __name__ == "__main__":
    aio.run(main(sys.argv[1], sys.argv[2]))
