"""A real haproxy programmed by node/ingress: host/path routing, TLS with SNI, canary by weight/header/
cookie, endpoint and weight changes through the runtime API, and reloads under steady traffic with 0
failed requests. Backends are tiny aiohttp processes on 127.0.0.1 (standing in for pod IPs)."""

import asyncio
import base64
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time

import aiohttp
import pytest

from bus import ingress as I
from node.ingress import config as C
from node.ingress.haproxy import HAProxy, InvalidConfig, RuntimeAPIError

pytestmark = pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy not installed (apt-get install haproxy)")

BACKEND = r"""
import sys
from aiohttp import web
name = sys.argv[1]
async def h(req):
    return web.Response(text=f"{name} {req.host} {req.path}")
app = web.Application()
app.router.add_route("*", "/{tail:.*}", h)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), print=None, access_log=None)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(port)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def backends():
    procs, ports = {}, {}
    for name in ("a", "b", "c", "a2"):
        ports[name] = free_port()
        procs[name] = subprocess.Popen([sys.executable, "-c", BACKEND, name, str(ports[name])])
    try:
        for p in ports.values():
            wait_port(p)
        yield ports
    finally:
        for p in procs.values():
            p.kill()
            p.wait()


def svc(name):
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def slice_(name, ports):
    return {"metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": ports[0], "protocol": "TCP"}] if ports else [],
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}] if ports else []}


def ing(name, host, path, service, ann=None, tls=None, ptype="Prefix"):
    spec = {"ingressClassName": "k8n", "rules": [{"host": host, "http": {"paths": [
        {"path": path, "pathType": ptype, "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]}
    if tls:
        spec["tls"] = tls
    return {"metadata": {"name": name, "namespace": "default", "annotations": ann or {},
                         "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": spec}


def tls_secret(host):
    """(the certificate a client trusts, a kubernetes.io/tls Secret with it and its key)."""
    pem = C.self_signed_pem(host)
    cut = pem.index(b"-----END CERTIFICATE-----") + 26
    crt, key = pem[:cut], pem[cut:].lstrip()
    return crt, {"metadata": {"name": "tls-" + host.replace(".", "-"), "namespace": "default"},
                 "type": "kubernetes.io/tls",
                 "data": {"tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(key).decode()}}


class Rig:
    def __init__(self, tmp, ports):
        self.ports = ports
        self.http, self.https = free_port(), free_port()
        self.dir = str(tmp / "hap")
        self.hap = HAProxy(self.dir)
        self.ca, self.secret = tls_secret("secure.test")
        self.default_pem = C.self_signed_pem()
        self.ingresses = [
            ing("web", "web.test", "/", "a"),
            ing("api", "web.test", "/api", "c"),
            {**ing("other-class", "web.test", "/api", "b", ptype="Exact"),  # another controller's: not ours
             "spec": {**ing("x", "web.test", "/api", "b", ptype="Exact")["spec"], "ingressClassName": "traefik"}},
            ing("wild", "*.wild.test", "/", "c"),
            ing("secure", "secure.test", "/", "a",
                tls=[{"hosts": ["secure.test"], "secretName": self.secret["metadata"]["name"]}]),
            ing("cmain", "canary.test", "/", "a"),
            ing("ccan", "canary.test", "/", "b", ann={I.NGINX_PREFIX + "canary": "true", I.NGINX_PREFIX + "canary-weight": "20",
                                                      I.NGINX_PREFIX + "canary-by-header": "X-Canary",
                                                      I.NGINX_PREFIX + "canary-by-cookie": "beta"}),
        ]
        self.endpoints = {"a": [ports["a"]], "b": [ports["b"]], "c": [ports["c"]]}
        self.plan = None

    def build(self):
        inputs = C.Inputs(ingresses=self.ingresses, services=[svc(n) for n in self.endpoints],
                          endpoint_slices=[slice_(n, p) for n, p in self.endpoints.items()], secrets=[self.secret],
                          state_dir=self.dir, bind_address="127.0.0.1", http_port=self.http, https_port=self.https,
                          default_cert=self.default_pem)
        plan = C.build(inputs, previous=self.plan)
        assert not plan.errors, plan.errors
        return plan

    def start(self):
        self.plan = self.build()
        self.hap.start(*C.render_plan(self.plan))

    def apply(self):
        """Runtime API when enough, else a validated hitless reload: ('runtime'|'reload', seconds)."""
        new = self.build()
        cmds = C.runtime_commands(self.plan, new)
        files = C.render_plan(new)
        if cmds is None:
            took, how = self.hap.reload(*files), "reload"
        else:
            took, how = self.hap.update(*files, cmds), "runtime"
        self.plan = new
        return how, took


@pytest.fixture
def rig(tmp_path, backends):
    r = Rig(tmp_path, backends)
    r.start()
    try:
        yield r
    finally:
        r.hap.stop()
    assert r.hap.proc is None


async def get(session, rig, host, path="/", **kw):
    async with session.get(f"http://127.0.0.1:{rig.http}{path}", headers={"Host": host, **kw.pop("headers", {})},
                           allow_redirects=False, **kw) as r:
        return r.status, await r.text(), r.headers


def run(coro):
    return asyncio.run(coro)


def test_host_path_routing_default_404_and_503(rig):
    async def main():
        async with aiohttp.ClientSession() as s:
            assert (await get(s, rig, "web.test", "/x"))[1].startswith("a ")
            assert (await get(s, rig, "WEB.test:80", "/api/v1"))[1].startswith("c ")
            assert (await get(s, rig, "web.test", "/api"))[1].startswith("c ")  # the traefik Ingress is ignored
            assert (await get(s, rig, "web.test", "/apix"))[1].startswith("a ")  # element-wise prefix
            assert (await get(s, rig, "x.wild.test"))[1].startswith("c ")
            assert (await get(s, rig, "y.x.wild.test"))[0] == 404
            assert (await get(s, rig, "nothing.test"))[0] == 404
    run(main())
    rig.endpoints["c"] = []  # no ready endpoints
    assert rig.apply()[0] == "runtime"

    async def after():
        async with aiohttp.ClientSession() as s:
            assert (await get(s, rig, "web.test", "/api"))[0] == 503
    run(after())


def test_tls_sni_and_redirect(rig):
    async def main():
        async with aiohttp.ClientSession() as s:
            st, _, h = await get(s, rig, "secure.test", "/p?q=1")
            assert st == 308 and h["Location"] == f"https://secure.test:{rig.https}/p?q=1"
            ctx = ssl.create_default_context(cadata=rig.ca.decode())
            async with s.get(f"https://127.0.0.1:{rig.https}/p", headers={"Host": "secure.test"}, ssl=ctx,
                             server_hostname="secure.test") as r:
                assert r.status == 200 and (await r.text()).startswith("a ")
            # unknown SNI: the default self-signed certificate, which that CA does not trust
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await s.get(f"https://127.0.0.1:{rig.https}/", ssl=ctx, server_hostname="other.test")
            assert (await get(s, rig, "web.test"))[0] == 200  # no TLS for this host: no redirect
    run(main())


def test_canary_weight_header_cookie_and_runtime_weight_change(rig):
    async def count(n, **kw):
        async with aiohttp.ClientSession() as s:
            sem = asyncio.Semaphore(32)

            async def one():
                async with sem:
                    return (await get(s, rig, "canary.test", **kw))[1][0]
            got = await asyncio.gather(*(one() for _ in range(n)))
        return got.count("b")

    b = run(count(1000))
    assert 160 <= b <= 240, b  # weight 20 → 20 % ± 4 %
    assert run(count(50, headers={"X-Canary": "always"})) == 50
    assert run(count(50, headers={"X-Canary": "never", "Cookie": "beta=always"})) == 0  # header before cookie
    assert run(count(50, headers={"Cookie": "beta=always"})) == 50
    assert run(count(50, headers={"Cookie": "beta=never"})) == 0
    pid = rig.hap.worker_pid()
    rig.ingresses[-1]["metadata"]["annotations"][I.NGINX_PREFIX + "canary-weight"] = "100"
    how, took = rig.apply()
    assert how == "runtime" and rig.hap.worker_pid() == pid  # no reload
    assert run(count(100)) == 100
    print(f"\nweight change via runtime API: {took * 1000:.1f} ms; canary share at weight 20: {b / 10:.1f} %")


def test_endpoint_change_through_runtime_api(rig):
    pid = rig.hap.worker_pid()
    rig.endpoints["a"] = [rig.ports["a2"]]
    how, took = rig.apply()
    assert how == "runtime" and rig.hap.worker_pid() == pid

    async def main():
        async with aiohttp.ClientSession() as s:
            return {(await get(s, rig, "web.test"))[1].split()[0] for _ in range(20)}
    assert run(main()) == {"a2"}
    print(f"\nendpoint change via runtime API: {took * 1000:.1f} ms")
    rig.ingresses.append(ing("extra", "extra.test", "/only;v='1'", "c", ptype="Exact"))  # same backends: map entries
    assert rig.apply()[0] == "runtime" and rig.hap.worker_pid() == pid

    async def extra():
        async with aiohttp.ClientSession() as s:
            return ((await get(s, rig, "extra.test", "/only;v='1'"))[1],
                    (await get(s, rig, "extra.test", "/only"))[0])
    body, other = run(extra())
    assert body.startswith("c ") and other == 404
    with pytest.raises(RuntimeAPIError):
        rig.hap.runtime(["set server default_a_80/s99 state ready"])


def test_invalid_config_never_replaces_the_running_one(rig):
    cfg, maps, certs = C.render_plan(rig.plan)
    pid = rig.hap.worker_pid()
    with pytest.raises(InvalidConfig):
        rig.hap.reload(cfg.replace("balance roundrobin", "balance nonsense"), maps, certs)
    assert rig.hap.worker_pid() == pid

    async def main():
        async with aiohttp.ClientSession() as s:
            return await get(s, rig, "web.test")
    assert run(main())[0] == 200


def test_reloads_under_steady_traffic_drop_nothing_and_throughput(rig):
    async def steady(stop: asyncio.Event, results: list, keepalive: bool):
        conn = aiohttp.TCPConnector(force_close=not keepalive)
        async with aiohttp.ClientSession(connector=conn) as s:
            while not stop.is_set():
                try:
                    st, body, _ = await get(s, rig, "web.test", "/x")
                    results.append(st if st == 200 else (st, body[:80]))
                except aiohttp.ClientError as e:
                    results.append(repr(e))

    async def main():
        stop, results = asyncio.Event(), []
        clients = [asyncio.create_task(steady(stop, results, ka)) for ka in (True, True, False, False)]
        loop = asyncio.get_running_loop()
        effective = []
        for n in range(5):
            await asyncio.sleep(0.3)
            # a new Service behind a new host with a canary (its rules are configuration): a reload
            rig.endpoints[f"n{n}"] = [rig.ports["c"]]
            rig.ingresses.append(ing(f"new{n}", f"new{n}.test", "/", f"n{n}"))
            rig.ingresses.append(ing(f"new{n}-canary", f"new{n}.test", "/", "a", ann={
                "nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "0"}))
            t0 = time.monotonic()
            how, _ = await loop.run_in_executor(None, rig.apply)
            assert how == "reload"
            async with aiohttp.ClientSession() as s:
                while (await get(s, rig, f"new{n}.test"))[0] != 200:
                    await asyncio.sleep(0.002)
            effective.append(time.monotonic() - t0)
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*clients)
        return results, effective

    results, effective = run(main())
    failed = [r for r in results if r != 200]
    assert len(results) > 200 and not failed, (len(results), failed[:5])
    print(f"\n{len(results)} requests during 5 reloads, {len(failed)} failed; Ingress change → effective: "
          f"p50 {sorted(effective)[2] * 1000:.0f} ms, max {max(effective) * 1000:.0f} ms")

    async def bench(url, host, seconds=2.0, conc=16):
        n = 0
        async with aiohttp.ClientSession() as s:
            end = time.monotonic() + seconds

            async def worker():
                nonlocal n
                while time.monotonic() < end:
                    async with s.get(url, headers={"Host": host}) as r:
                        await r.read()
                        assert r.status == 200
                    n += 1
            await asyncio.gather(*(worker() for _ in range(conc)))
        return n / seconds

    pid = rig.hap.worker_pid()
    c0 = cpu_seconds(pid)
    via = run(bench(f"http://127.0.0.1:{rig.http}/x", "web.test"))
    cpu = cpu_seconds(pid) - c0
    direct = run(bench(f"http://127.0.0.1:{rig.ports['a']}/x", "web.test"))
    print(f"requests/s through haproxy {via:.0f}, straight to the backend {direct:.0f} (ratio {via / direct:.2f}); "
          f"haproxy CPU {cpu * 1e6 / (via * 2):.0f} µs/request")
