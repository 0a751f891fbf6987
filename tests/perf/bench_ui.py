"""The web view (``/ui/``) with 3,000 pods, in Debian's headless chromium (selenium + chromium-driver):
- first screen: navigation → the first rows on screen, and → all pods listed and on screen (the page's own
  ``performance.mark``s, ms after navigation start), over ``--loads`` fresh loads of the page;
- change → page: a pod created on the bus → its row in the page (a MutationObserver stamps the moment the row is
  in the DOM), and deleted → row gone, one change at a time, while every pod is watched (filter typed: ``lat-``);
- a burst: ``--burst`` pods created 64 at a time → all counted on the page, and the page's long tasks meanwhile.

Run:  python -m tests.perf.bench_ui [--pods 3000] [--changes 50] [--loads 5] [--burst 500]

Starts its own nats-server, one API server process and one gateway process (bench_gateway's stack; HTTPS, the
token file's user is in system:masters, RBAC on), creates the pods directly on the bus (objects only: no node runs
them, they stay Pending), logs in through the login page. Prints figures, CPU seconds of the gateway and of the
browser (all chromium processes), and conditions. Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

from selenium.webdriver.common.keys import Keys

from bus import aio
from bus.client import ApiClient, resource_of
from tests.e2e.test_ui import browser, log_in, wait_for
from tests.perf.bench_api import pct, pod
from tests.perf.bench_gateway import TOKEN, gateway_stack
from tests.perf.bench_list_chunks import pid_of
from tests.perf.conditions import cpu_seconds, cpu_snapshot, descendants, describe

PODS = resource_of("pods")
IDLE_SECONDS = 3.0
MARKS = "return Object.fromEntries(performance.getEntriesByType('mark').map(m => [m.name, m.startTime]))"
OBSERVE = """
window.seen = {}; window.gone = {}; window.waiters = {};
const table = document.getElementById('table');
new MutationObserver(() => {
  const now = performance.timeOrigin + performance.now();
  const present = new Set([...table.querySelectorAll('.vt-row[data-key^="default/lat-"]')].map(r => r.dataset.key));
  const stamp = (which, k) => { which[k] = now; waiters[k + (which === gone ? ' gone' : '')]?.(now); };
  for (const k of present) if (!(k in seen)) stamp(seen, k);
  for (const k in seen) if (!present.has(k) && !(k in gone)) stamp(gone, k);
}).observe(table, {subtree: true, childList: true, attributes: true, attributeFilter: ['data-key']});
window.longTasks = [];
new PerformanceObserver((l) => longTasks.push(...l.getEntries().map(e => e.duration))).observe({type: 'longtask'});
"""


WHEN = """const [which, key, done] = arguments;  // when the row came (or went): now, or once it does
const v = window[which][key];
if (v) done(v); else window.waiters[key + (which === 'gone' ? ' gone' : '')] = done;"""


def when(d, which: str, key: str) -> float:
    """The wall-clock time (s) the page's row ``key`` appeared (``seen``) or went (``gone``), waiting for it."""
    return d.execute_async_script(WHEN, which, key) / 1e3


def status(d) -> str:
    return d.execute_script("return document.getElementById('status').textContent")


async def create_all(client: ApiClient, names: list[str]) -> float:
    sem = asyncio.Semaphore(64)

    async def one(name: str) -> None:
        async with sem:
            await client.create(pod(name))

    t = time.perf_counter()
    await asyncio.gather(*(one(n) for n in names))
    return time.perf_counter() - t


def first_screen(d, base: str, pods: int, loads: int) -> dict:
    rows, listed, walls = [], [], []
    for _ in range(loads):
        d.get("about:blank")
        t = time.perf_counter()
        d.get(base + "/ui/#pods")  # a fresh page: scripts, list, watch
        wait_for(d, "every pod listed", lambda: d.execute_script(MARKS).get("k8n:pods:listed") is not None, 60)
        walls.append(time.perf_counter() - t)
        m = d.execute_script(MARKS)
        rows.append(m["k8n:pods:first-rows"])
        listed.append(m["k8n:pods:listed"])
        assert status(d).startswith(f"{pods} pods"), status(d)
    return {"first rows": rows, "listed": listed, "wall": walls,
            "visible": d.execute_script("return document.querySelectorAll('.vt-row').length")}


async def changes(d, client: ApiClient, n: int) -> tuple[list[float], list[float]]:
    d.execute_script(OBSERVE)
    d.find_element("id", "filter").send_keys("lat-")
    created, deleted = [], []
    for i in range(n):
        name = f"lat-{i:03d}"
        t = time.time()
        await client.create(pod(name))
        created.append(when(d, "seen", f"default/{name}") - t)
        t = time.time()
        await client.delete(PODS, name, "default", grace_period_seconds=0)
        deleted.append(when(d, "gone", f"default/{name}") - t)
        await asyncio.sleep(0.1)
    return created, deleted


async def burst(d, client: ApiClient, pods: int, n: int) -> tuple[float, float, list[float]]:
    d.find_element("id", "filter").send_keys(Keys.CONTROL, "a", Keys.BACKSPACE)  # clear() fires no input event
    d.execute_script("window.longTasks = []")
    t = time.perf_counter()
    created = await create_all(client, [f"burst-{i:05d}" for i in range(n)])
    wait_for(d, "the burst counted", lambda: status(d).startswith(f"{pods + n} pods"), 60)
    return created, time.perf_counter() - t, d.execute_script("return window.longTasks")


def ms(values: list[float], scale: float = 1.0) -> str:
    v = [x * scale for x in values]
    return f"median {statistics.median(v):.0f} ms, max {max(v):.0f} ms"


async def main(pods: int, n_changes: int, loads: int, n_burst: int) -> None:
    async with gateway_stack("k8n-bench-ui-") as (srv, _tmp, base):
        client = await ApiClient.connect(srv.url)
        made = await create_all(client, [f"p-{i:05d}" for i in range(pods)])
        print(f"created {pods} pods on the bus in {made:.1f} s")
        gw = pid_of(f"-m master.gateway --server {srv.url}")
        d = browser(1400, 900)
        try:
            chrome = lambda: descendants(d.service.process.pid)  # noqa: E731
            d.set_script_timeout(30)
            log_in(d, base, TOKEN)
            wait_for(d, "the view", lambda: d.execute_script(MARKS).get("k8n:pods:listed") is not None, 60)
            cpu0 = cpu_snapshot({"gateway": gw, "browser": chrome()})
            fs = first_screen(d, base, pods, loads)
            cpu1 = cpu_snapshot({"gateway": gw, "browser": chrome()})
            print(f"first screen with {pods} pods ({loads} fresh loads, ms after navigation start): first rows "
                  f"{ms(fs['first rows'])}; all {pods} listed and shown {ms(fs['listed'])}; "
                  f"selenium get → listed {ms(fs['wall'], 1e3)}; {fs['visible']} rows in the DOM; CPU per load: "
                  f"gateway {(cpu1['gateway'] - cpu0['gateway']) / loads * 1e3:.0f} ms, browser "
                  f"{(cpu1['browser'] - cpu0['browser']) / loads * 1e3:.0f} ms")
            idle0 = cpu_snapshot({"browser": chrome()})
            await asyncio.sleep(IDLE_SECONDS)
            idle = (cpu_snapshot({"browser": chrome()})["browser"] - idle0["browser"]) / IDLE_SECONDS
            print(f"browser CPU with the page open and nothing changing: {idle * 1e3:.0f} ms/s")
            cpu0 = cpu_snapshot({"gateway": gw, "browser": chrome()})
            created, deleted = await changes(d, client, n_changes)
            cpu1 = cpu_snapshot({"gateway": gw, "browser": chrome()})
            print(f"change → page, {n_changes} changes one at a time, {pods} pods watched: create → row visible "
                  f"p50 {pct(created, 50) * 1e3:.0f} ms, p99 {pct(created, 99) * 1e3:.0f} ms; delete → row gone "
                  f"p50 {pct(deleted, 50) * 1e3:.0f} ms, p99 {pct(deleted, 99) * 1e3:.0f} ms; CPU per change "
                  f"(create + delete, 0.1 s apart): gateway {(cpu1['gateway'] - cpu0['gateway']) / n_changes * 1e3:.1f} "
                  f"ms, browser {(cpu1['browser'] - cpu0['browser']) / n_changes * 1e3:.1f} ms (selenium's calls "
                  f"included)")
            if n_burst:
                made, shown, long_tasks = await burst(d, client, pods, n_burst)
                print(f"burst of {n_burst} creates (64 in flight) on {pods} pods: created in {made:.2f} s, all on "
                      f"the page {shown:.2f} s after the first; long tasks (> 50 ms) meanwhile: {len(long_tasks)}"
                      f"{f', longest {max(long_tasks):.0f} ms' if long_tasks else ''}")
            heap = d.execute_script("return performance.memory && performance.memory.usedJSHeapSize") or 0
            print(f"page JS heap {heap / 2**20:.0f} MiB")
        finally:
            d.quit()
            await client.close()
        print(f"[{os.cpu_count()} cores shared; chromium {d.capabilities.get('browserVersion', '?')} headless "
              f"(1400x900), selenium; 1 nats-server, 1 apiserver process, 1 gateway process (HTTPS, RBAC on); pods "
              f"created directly on the bus, Pending (no nodes); the load generator and the browser on the same "
              f"cores; gateway CPU so far {cpu_seconds(gw) if os.path.exists(f'/proc/{gw}') else float('nan'):.1f} s]")
        print(describe())


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=3000)
    ap.add_argument("--changes", type=int, default=50)
    ap.add_argument("--loads", type=int, default=5)
    ap.add_argument("--burst", type=int, default=500)
    a = ap.parse_args()
    aio.run(main(a.pods, a.changes, a.loads, a.burst))
    sys.exit(0)
