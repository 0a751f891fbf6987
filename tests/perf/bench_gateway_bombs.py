"""How long a `/healthz` waits at the gateway while other clients send hostile bodies (YAML alias bombs, 5,000 levels
of nesting in JSON and YAML, invalid UTF-8): p50/p99 of sequential `/healthz` requests with no other load and with
``--attackers`` connections sending bombs back to back, in alternating rounds of the same run, and how every bomb was
answered (each must be a 4xx Status). Goal from issue 12: p99 ≤ 50 ms under bombs.

Run:  python -m tests.perf.bench_gateway_bombs [--n 1000] [--attackers 4]

Starts its own nats-server, one API server process and one gateway process (HTTPS, bearer token, as kubectl talks to
it); the attackers and the probe run in this process on their own keep-alive connections. Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import platform
import ssl
import sys
import time

import aiohttp

from bus import aio
from tests.perf.bench_api import pct
from tests.perf.bench_gateway import TOKEN, gateway_stack, summary

ROUNDS = 4
ALIAS_BOMB = ("a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))).encode()
BOMBS = {  # name -> (content type, body)
    "yaml alias bomb": ("application/yaml", ALIAS_BOMB),
    "json nesting 5000": ("application/json", b"[" * 5000 + b"]" * 5000),
    "yaml nesting 5000": ("application/yaml", b"data: " + b"[" * 5000 + b"]" * 5000),
    "invalid utf-8": ("application/json", b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"\xff"}}'),
}


async def attack(session: aiohttp.ClientSession, url: str, stop: asyncio.Event, answers: collections.Counter) -> None:
    kinds = list(BOMBS.items())
    i = 0
    while not stop.is_set():
        name, (ctype, body) = kinds[i % len(kinds)]
        i += 1
        async with session.post(url, data=body, headers={"Content-Type": ctype}) as r:
            await r.read()
            answers[(name, r.status)] += 1


async def probe(session: aiohttp.ClientSession, url: str, n: int) -> list[float]:
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        async with session.get(url) as r:
            await r.read()
        assert r.status == 200
        lat.append(time.perf_counter() - t)
    return lat


async def main(n: int, attackers: int) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    async with gateway_stack("k8n-bench-bombs-") as (_srv, tmp, base):
        ctx = ssl.create_default_context(cafile=str(tmp / "pki" / "ca.crt"))
        answers: collections.Counter = collections.Counter()
        quiet: list[float] = []
        loud: list[float] = []
        per = max(1, n // ROUNDS)
        post_url = f"{base}/api/v1/namespaces/default/configmaps"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1, ssl=ctx), headers=headers) as ps, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=attackers, ssl=ctx),
                                      headers=headers) as bs:
            await probe(ps, base + "/healthz", 50)  # warm up
            started = time.perf_counter()
            for _ in range(ROUNDS):
                quiet += await probe(ps, base + "/healthz", per)
                stop = asyncio.Event()
                tasks = [asyncio.create_task(attack(bs, post_url, stop, answers)) for _ in range(attackers)]
                await asyncio.sleep(0.2)  # the bombs are in flight before the first probe
                loud += await probe(ps, base + "/healthz", per)
                stop.set()
                await asyncio.gather(*tasks)
            elapsed = time.perf_counter() - started
        print(summary("GET /healthz, no other load", quiet))
        print(summary(f"GET /healthz while {attackers} connections send bombs back to back", loud))
        total = sum(answers.values())
        print(f"bombs answered: {total} ({total / elapsed:.0f}/s over the run); by kind and status:")
        for (name, status), count in sorted(answers.items()):
            print(f"  {name}: HTTP {status} × {count}")
        bad = sum(c for (_, status), c in answers.items() if not 400 <= status < 500)
        print(f"answers that were not a 4xx: {bad}")
        print(f"goal: p99 under bombs ≤ 50 ms → {'met' if pct(loud, 99) <= 0.050 else 'NOT met'}")
        print(f"[{os.cpu_count()} cores shared, {platform.python_implementation()} {platform.python_version()}, "
              f"1 nats-server, 1 API server process, 1 gateway process (HTTPS, keep-alive, bearer token), "
              f"probe and {attackers} attackers in 1 process, {ROUNDS} alternating rounds, "
              f"bombs {', '.join(f'{k} {len(v[1])} B' for k, v in BOMBS.items())}]")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000, help="/healthz requests per measurement (default 1000)")
    ap.add_argument("--attackers", type=int, default=4, help="connections sending bombs (default 4)")
    a = ap.parse_args()
    aio.run(main(a.n, a.attackers))
    sys.exit(0)
