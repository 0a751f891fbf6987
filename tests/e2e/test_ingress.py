"""k8n's ingress end to end, as a user runs it: ``k8n up`` plus a node, ``k8n ingress`` started by hand on free
ports of 127.0.0.1, real pods (busybox httpd answering ``<service> <pod name>``) behind real ClusterIP Services,
Ingresses applied with kubectl, and plain HTTP(S) requests with a Host header / SNI. Checked: host (exact, ``*.``)
and path (Prefix, Exact) routing and the defaultBackend; ``kubectl get ingress`` ADDRESS; TLS from a Secret the test
makes (SNI, the certificate, the HTTP → HTTPS redirect); canaries by weight (1,000 requests), header and cookie
(with ingress-nginx's precedence), abort and promote with ``k8n canary``; 0 failed requests while the Ingress and
the Deployment change under steady traffic; classes ``k8n`` and ``nginx`` served side by side, another
controller's class not; an invalid Ingress reported as a Warning event while the others keep serving. The
controller exits 0 on SIGTERM and takes its haproxy with it."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import ssl
import subprocess
import threading
from collections import Counter
from pathlib import Path

import pytest

from node.ingress.tls import self_signed_pem
from tests.builders import container, deployment, service
from tests.e2e.upcluster import K8N, UpCluster
from tests.harness import NEEDS_DOCKER
from tests.waiting import eventually_sync, stays_sync

pytestmark = [*NEEDS_DOCKER, pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy not installed")]

BACKENDS = ("stable", "canary", "api", "wild")  # a Deployment (1 pod) and a Service (port 80 → 8080) each
# every backend answers "<service> <pod name>" on each of these paths (busybox httpd redirects directories
# asked without their trailing slash, so the tests ask for directories with one)
FILES = ("index.html", "api/index.html", "api/v1/index.html", "apiary", "exact", "exactly", "new/index.html")
CANARY = "nginx.ingress.kubernetes.io/canary"
WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
BY_HEADER = "nginx.ingress.kubernetes.io/canary-by-header"
BY_COOKIE = "nginx.ingress.kubernetes.io/canary-by-cookie"
NOT_FOUND = "default backend - 404"


def backend_deployment(name: str, replicas: int = 1) -> dict:
    script = (f"for f in {' '.join(FILES)}; do mkdir -p $(dirname /www/$f); echo \"{name} $(hostname)\" > /www/$f; "
              "done; exec httpd -f -p 8080 -h /www")
    probe = {"httpGet": {"path": "/index.html", "port": 8080}, "periodSeconds": 1}
    return deployment(name, replicas=replicas, grace=2, containers=[container(
        "httpd", script, ports=[{"name": "http", "containerPort": 8080}], readinessProbe=probe)])


def backend_service(name: str) -> dict:
    return service(name, selector={"app": name}, ports=[{"name": "http", "port": 80, "targetPort": 8080}])


def path(p: str, svc: str, port: int | str = 80, kind: str = "Prefix") -> dict:
    return {"path": p, "pathType": kind, "backend": {"service": {
        "name": svc, "port": {"number": port} if isinstance(port, int) else {"name": port}}}}


def ingress(name: str, rules: dict[str, list[dict]] | None = None, *, cls: str | None = None,
            annotations: dict | None = None, default: str | None = None, tls: dict | None = None) -> dict:
    """An Ingress with ``rules`` (host → paths), of class ``cls`` (None: the default class)."""
    spec: dict = {"rules": [{"host": h, "http": {"paths": ps}} if h else {"http": {"paths": ps}}
                            for h, ps in (rules or {}).items()]}
    if cls:
        spec["ingressClassName"] = cls
    if default:
        spec["defaultBackend"] = path("/", default)["backend"]
    if tls:
        spec["tls"] = [{"hosts": hosts, "secretName": secret} for secret, hosts in tls.items()]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "default", "annotations": annotations or {}}, "spec": spec}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    """Nothing listens on ``port`` (a server could bind it; connections of the past in TIME_WAIT do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def running_from(directory: Path) -> list[int]:
    """The live processes (haproxy's master and workers) whose command line names ``directory``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(directory).encode() in (proc / "cmdline").read_bytes() \
                    and (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(proc.name))
        except (OSError, IndexError):
            pass
    return found


class Ingress:
    """``k8n ingress`` on 127.0.0.1:``http``/``https``, as a user starts it next to ``k8n up``."""

    def __init__(self, cluster: UpCluster) -> None:
        self.cluster = cluster
        self.http, self.https = free_port(), free_port()
        self.log = cluster.tmp / "ingress.log"
        self.state = cluster.data / "ingress" / cluster.node
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [K8N, "ingress", "--name", cluster.node, "--ingress-http-port", str(self.http),
                 "--ingress-https-port", str(self.https), "--ingress-bind-address", "127.0.0.1",
                 "--ingress-addresses", "127.0.0.1"], stdout=out, stderr=subprocess.STDOUT, env=cluster.env,
                cwd=cluster.tmp)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def wait_serving(self) -> None:
        def serving():
            assert self.proc.poll() is None, f"k8n ingress exited {self.proc.returncode}:\n{self.tail()}"
            return get(self.http, "nothing.test")[0] == 404
        eventually_sync(serving, 60, lambda: f"k8n ingress to answer 404:\n{self.tail()}",
                        ignore=(OSError, http.client.HTTPException))
        assert running_from(self.state), "no haproxy running from the controller's state directory"

    def stop(self) -> None:
        """SIGTERM: the controller exits 0, its haproxy is gone and the ports are free again."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"k8n ingress did not exit on SIGTERM:\n{self.tail()}") from None
        finally:
            eventually_sync(lambda: not running_from(self.state), 15, "haproxy to exit with its controller")
        assert rc == 0, f"k8n ingress exited {rc}:\n{self.tail()}"
        assert port_free(self.http) and port_free(self.https)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = UpCluster(tmp_path_factory.mktemp("ingress"))
    ing = None
    try:
        c.start()
        objs = [o for name in BACKENDS for o in (backend_deployment(name), backend_service(name))]
        apply(c, *objs)
        ing = Ingress(c)
        ing.wait_serving()

        def available():
            items = json.loads(c.kubectl("get", "deployments", "-o", "json").stdout)["items"]
            return sorted(d["metadata"]["name"] for d in items
                          if (d.get("status") or {}).get("availableReplicas") == 1) == sorted(BACKENDS)
        eventually_sync(available, 90, "the backend Deployments available")
        c.ingress = ing
        yield c
    finally:
        try:
            if ing is not None:
                ing.stop()
        finally:
            if c.up is not None and c.up.poll() is None:  # else their ReplicaSets recreate the pods stop() deletes
                c.kubectl("delete", "deployments", "--all", "--cascade=foreground", "--timeout=30s", check=False)
            c.stop()


# --- requests -------------------------------------------------------------------------------------------------------
def get(port: int, host: str, target: str = "/", headers: dict | None = None,
        conn: http.client.HTTPConnection | None = None) -> tuple[int, str, http.client.HTTPResponse]:
    """One GET to 127.0.0.1:``port`` with Host ``host``: (status, body, response)."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", target, headers={"Host": host, **(headers or {})})
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace").strip(), r
    finally:
        if own:
            conn.close()


def who(cluster, host: str, target: str = "/", headers: dict | None = None) -> str:
    """The Service that answered (the first word of the page), else the status and the body."""
    status, body, _ = get(cluster.ingress.http, host, target, headers)
    return body.split()[0] if status == 200 and body else f"{status} {body}"


def routes_to(cluster, host: str, target: str, want: str, timeout: float = 30) -> None:
    eventually_sync(lambda: who(cluster, host, target) == want, timeout, f"{host}{target} answered by {want}")


def apply(cluster, *objs: dict) -> None:
    """``kubectl apply`` of these objects (a stream of JSON documents)."""
    cluster.kubectl("apply", "-f", "-", input="\n".join(json.dumps(o) for o in objs))


def delete(cluster, *names: str) -> None:
    cluster.kubectl("delete", "ingress", *names, "--ignore-not-found")


def address(cluster, name: str) -> str:
    """The ADDRESS column of ``kubectl get ingress NAME``."""
    lines = cluster.kubectl("get", "ingress", name).stdout.splitlines()
    header, row = lines[0].split(), lines[1].split()
    return row[header.index("ADDRESS")] if len(row) == len(header) else ""  # an empty column: one word less


# --- tests ----------------------------------------------------------------------------------------------------------
def test_host_and_path_routing_default_backend_and_address(cluster):
    apply(cluster, ingress("routing", {
        "shop.example.test": [path("/", "stable"), path("/api", "api", "http"), path("/exact", "api", kind="Exact")],
        "blog.example.test": [path("/", "canary")],
        "*.example.test": [path("/", "wild")]}))
    try:
        routes_to(cluster, "shop.example.test", "/", "stable", timeout=60)
        expected = {("shop.example.test", "/"): "stable", ("shop.example.test", "/api/"): "api",
                    ("shop.example.test", "/api/v1/"): "api",  # Prefix covers the paths below it
                    ("shop.example.test", "/apiary"): "stable",  # element-wise, not a string prefix
                    ("shop.example.test", "/exact"): "api", ("shop.example.test", "/exactly"): "stable",
                    ("SHOP.Example.test:80", "/api/"): "api",  # case and port of the Host do not matter
                    ("blog.example.test", "/"): "canary", ("anything.example.test", "/new/"): "wild",
                    ("a.b.example.test", "/"): f"404 {NOT_FOUND}",  # the wildcard covers one label
                    ("example.test", "/"): f"404 {NOT_FOUND}", ("unknown.test", "/"): f"404 {NOT_FOUND}"}
        assert {k: who(cluster, *k) for k in expected} == expected
        eventually_sync(lambda: address(cluster, "routing") == "127.0.0.1", 30, "ADDRESS 127.0.0.1")

        apply(cluster, ingress("fallback", default="canary"))  # a defaultBackend takes what no rule does
        routes_to(cluster, "unknown.test", "/", "canary")
        assert who(cluster, "a.b.example.test", "/api/") == "canary"
        assert who(cluster, "shop.example.test", "/api/") == "api"
    finally:
        delete(cluster, "routing", "fallback")
    routes_to(cluster, "unknown.test", "/", f"404 {NOT_FOUND}")


def self_signed(host: str, directory: Path) -> tuple[Path, Path]:
    """A fresh self-signed certificate for ``host`` (SAN and CN) and its key, as the files ``kubectl create secret
    tls`` takes."""
    pem = self_signed_pem(host).decode()
    cut = pem.index("-----BEGIN PRIVATE KEY-----")
    crt, key = directory / "tls.crt", directory / "tls.key"
    crt.write_text(pem[:cut])
    key.write_text(pem[cut:])
    return crt, key


class SNIConnection(http.client.HTTPConnection):
    """HTTPS to 127.0.0.1 with SNI (and the certificate checked for) ``sni``."""

    def __init__(self, port: int, sni: str, context: ssl.SSLContext) -> None:
        super().__init__("127.0.0.1", port, timeout=10)
        self.sni, self.context = sni, context

    def connect(self) -> None:
        super().connect()
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.sni)


def test_tls_from_a_secret_with_sni_and_redirect(cluster, tmp_path):
    host = "secure.tls.test"
    crt, key = self_signed(host, tmp_path)
    cluster.kubectl("create", "secret", "tls", "secure-tls", "--cert", str(crt), "--key", str(key))
    apply(cluster, ingress("secure", {host: [path("/", "stable")]}, tls={"secure-tls": [host]}))
    trust = ssl.create_default_context(cafile=str(crt))  # only the test's certificate is trusted
    try:
        def https(sni: str = host) -> tuple[int, str, dict]:
            conn = SNIConnection(cluster.ingress.https, sni, trust)
            try:
                status, body, _ = get(0, host, "/api/", conn=conn)
                return status, body, conn.sock.getpeercert()
            finally:
                conn.close()

        status, body, cert = eventually_sync(https, 60, "HTTPS with the test's certificate",
                                             ignore=(ssl.SSLError, OSError))
        assert status == 200 and body.split()[0] == "stable"
        assert dict(x[0] for x in cert["subject"])["commonName"] == host
        assert cert["subjectAltName"] == (("DNS", host),)
        with pytest.raises(ssl.SSLCertVerificationError):  # another name gets the controller's default certificate
            https("other.tls.test")

        status, _, r = get(cluster.ingress.http, host, "/api/?q=1")  # plain HTTP: redirected to HTTPS
        assert status in (301, 302, 308), status
        assert r.getheader("Location") == f"https://{host}:{cluster.ingress.https}/api/?q=1"
    finally:
        delete(cluster, "secure")
        cluster.kubectl("delete", "secret", "secure-tls")


def test_canary_by_weight_takes_its_share(cluster):
    host = "weight.canary.test"
    apply(cluster, ingress("weighted", {host: [path("/", "stable")]}, cls="nginx"),
          ingress("weighted-canary", {host: [path("/", "canary")]}, cls="nginx",
                  annotations={CANARY: "true", WEIGHT: "20"}))
    try:
        routes_to(cluster, host, "/", "canary", timeout=60)  # the canary is in (its first request found)

        def count(n: int) -> Counter:
            conn = http.client.HTTPConnection("127.0.0.1", cluster.ingress.http, timeout=10)  # keep-alive
            try:
                return Counter(get(0, host, "/", conn=conn)[1].split()[0] for _ in range(n))
            finally:
                conn.close()
        seen: Counter = Counter()
        threads = [threading.Thread(target=lambda: seen.update(count(250))) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(seen.values()) == 1000 and set(seen) == {"stable", "canary"}, seen
        assert 160 <= seen["canary"] <= 240, seen  # 20 % ± 4 %
    finally:
        delete(cluster, "weighted", "weighted-canary")


def test_canary_by_header_and_cookie_with_their_precedence(cluster):
    host = "header.canary.test"
    canary_ann = {CANARY: "true", BY_HEADER: "X-Canary", BY_COOKIE: "canary", WEIGHT: "0"}
    apply(cluster, ingress("headed", {host: [path("/", "stable")]}, cls="nginx"),
          ingress("headed-canary", {host: [path("/", "canary")]}, cls="nginx", annotations=canary_ann))
    try:
        eventually_sync(lambda: who(cluster, host, "/", {"X-Canary": "always"}) == "canary", 60,
                        "the header to route to the canary")

        def answers(cases: dict) -> dict:
            return {case: Counter(who(cluster, host, "/", dict(case)) for _ in range(5)) for case in cases}

        def expect(cases: dict) -> None:
            assert answers(cases) == {case: Counter({svc: 5}) for case, svc in cases.items()}

        always, never = ("X-Canary", "always"), ("X-Canary", "never")
        c_always, c_never = ("Cookie", "canary=always"), ("Cookie", "other=1; canary=never")
        expect({(): "stable", (always,): "canary", (never,): "stable", (("x-canary", "always"),): "canary",
                (("X-Canary", "maybe"),): "stable", (c_always,): "canary", (c_never,): "stable",
                (never, c_always): "stable", (always, c_never): "canary",  # the header before the cookie
                (("X-Canary", "maybe"), c_always): "canary"})  # a header value that decides nothing: the cookie

        cluster.kubectl("annotate", "ingress", "headed-canary", f"{WEIGHT}=100", "--overwrite")
        routes_to(cluster, host, "/", "canary")
        expect({(): "canary", (c_never,): "stable",  # the cookie before the weight
                (never,): "stable", (never, c_always): "stable", (("X-Canary", "maybe"), c_never): "stable"})
    finally:
        delete(cluster, "headed", "headed-canary")


def canary_cli(cluster, *args: str) -> str:
    """``k8n canary ARGS`` against the cluster (its admin credentials in the data directory); its output."""
    r = subprocess.run([K8N, "canary", *args], capture_output=True, text=True, env=cluster.env, timeout=60)
    assert r.returncode == 0, f"k8n canary {' '.join(args)} exited {r.returncode}: {r.stderr}"
    return r.stdout


def all_on(cluster, host: str, svc: str, headers: dict | None = None, n: int = 20) -> bool:
    """``n`` requests in a row answered by ``svc`` (by chance at weight 50: 1 in 10⁶)."""
    return all(who(cluster, host, "/", headers) == svc for _ in range(n))


def test_canary_abort_and_promote(cluster):
    """``k8n canary``: abort (the canary routes nothing: weight 0, its header rule gone, the Ingress kept), a new
    weight, promote (the primary's path takes the canary's Service, the canary then routes nothing)."""
    host = "promote.canary.test"
    apply(cluster, ingress("shop", {host: [path("/", "stable")]}, cls="nginx"),
          ingress("shop-canary", {host: [path("/", "canary")]}, cls="nginx",
                  annotations={CANARY: "true", WEIGHT: "50", BY_HEADER: "X-Canary"}))
    always = {"X-Canary": "always"}
    try:
        routes_to(cluster, host, "/", "canary", timeout=60)
        assert all_on(cluster, host, "canary", always)

        assert "aborted" in canary_cli(cluster, "ingress/shop-canary", "--abort")
        eventually_sync(lambda: all_on(cluster, host, "stable"), 30, "every request on stable after the abort")
        stays_sync(lambda: all_on(cluster, host, "stable", always, 5), 1, "the header rule gone after the abort",
                   interval=0.02)
        assert cluster.kubectl("get", "ingress", "shop-canary", "-o", "name").stdout.strip()  # it stays

        canary_cli(cluster, "ingress/shop-canary", "--weight", "50")  # try again
        routes_to(cluster, host, "/", "canary")
        assert "promoted" in canary_cli(cluster, "ingress/shop-canary", "--promote")
        eventually_sync(lambda: all_on(cluster, host, "canary"), 30, "every request on canary after the promotion")
        backend = cluster.kubectl("get", "ingress", "shop", "-o",
                                  "jsonpath={.spec.rules[0].http.paths[0].backend.service.name}").stdout
        assert backend == "canary"
        delete(cluster, "shop-canary")  # done with it: the primary serves the new version alone
        stays_sync(lambda: all_on(cluster, host, "canary", n=5), 1, "every request on canary without the canary")
    finally:
        delete(cluster, "shop", "shop-canary")


class SteadyClient:
    """A thread sending GETs without pause, on one keep-alive connection or a new connection each (``keepalive``);
    ``answers`` counts (target, service); ``failures`` lists everything else. It never sends a request again: the
    changes below go through haproxy's runtime API (spare pool backends, maps), with no reload that could close
    an idle keep-alive connection (haproxy 2.6 does when a reload retires its old worker)."""

    def __init__(self, port: int, host: str, targets: tuple[str, ...], keepalive: bool) -> None:
        self.port, self.host, self.targets, self.keepalive = port, host, targets, keepalive
        self.answers: Counter = Counter()
        self.pods: dict[str, set[str]] = {}  # service → the pods that answered
        self.failures: list[str] = []
        self.connections = 0  # opened by the keep-alive client (the server asked to close, or a retry)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def request(self, conn: http.client.HTTPConnection | None, target: str) -> tuple[int, str]:
        self.connections += conn is not None and conn.sock is None
        return get(self.port, self.host, target, conn=conn)[:2]

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10) if self.keepalive else None
        n = 0
        while not self.done.is_set():
            target = self.targets[n % len(self.targets)]
            n += 1
            try:
                status, body = self.request(conn, target)
                if status == 200 and len(body.split()) == 2:
                    self.answers[(target, body.split()[0])] += 1
                    self.pods.setdefault(body.split()[0], set()).add(body.split()[1])
                else:
                    self.failures.append(f"{target}: {status} {body[:80]}")
            except (OSError, http.client.HTTPException) as e:
                self.failures.append(f"{target} ({'keep-alive' if conn else 'new connection'}): {e!r}")
                if conn is not None:
                    conn.close()
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self.done.set()
        self.thread.join(15)


def test_changes_under_steady_traffic_fail_no_request(cluster):
    host = "steady.test"
    apply(cluster, ingress("steady", {host: [path("/", "stable")]}))
    routes_to(cluster, host, "/new/", "stable", timeout=60)
    clients = [SteadyClient(cluster.ingress.http, host, ("/", "/new/"), keepalive) for keepalive in (True, False)]
    try:
        def change(paths: list[dict], svc: str, what: str) -> None:
            """Apply ``paths``; then both clients get /new/ from ``svc`` (which did not serve it just before)."""
            before = [c.answers[("/new/", svc)] for c in clients]
            apply(cluster, ingress("steady", {host: paths}))
            eventually_sync(lambda: all(c.answers[("/new/", svc)] > b for c, b in zip(clients, before)), 30,
                            f"/new/ on {svc} for both clients after {what}")

        eventually_sync(lambda: all(c.answers[("/new/", "stable")] for c in clients), 10, "the clients answered")
        change([path("/", "stable"), path("/new", "api")], "api", "a path added")
        for svc in ("canary", "api", "canary"):
            change([path("/", "stable"), path("/new", svc)], svc, f"the path's Service changed to {svc}")
        assert who(cluster, host, "/") == "stable"

        cluster.kubectl("scale", "deployment", "stable", "--replicas=2")  # a second pod of stable joins
        eventually_sync(lambda: all(len(c.pods["stable"]) == 2 for c in clients), 60, "both stable pods answering")
        cluster.kubectl("scale", "deployment", "stable", "--replicas=1")  # and leaves
        eventually_sync(lambda: len(cluster.kubectl("get", "pods", "-l", "app=stable", "-o", "name").stdout.split())
                        == 1, 60, "one stable pod left")
        before = [sum(c.answers.values()) for c in clients]
        eventually_sync(lambda: all(sum(c.answers.values()) > b + 50 for c, b in zip(clients, before)), 30,
                        "more answers after the scale-down")
    finally:
        for c in clients:
            c.stop()
        delete(cluster, "steady")
    totals = [sum(c.answers.values()) for c in clients]
    failures = [f for c in clients for f in c.failures]
    print(f"\nsteady traffic: {totals} answered (keep-alive, new connections), {len(failures)} failed; "
          f"the keep-alive client opened {clients[0].connections} connections")
    assert not failures, (totals, failures[:10])
    assert all(t > 200 for t in totals), totals
    assert set(svc for c in clients for (_, svc) in c.answers) == {"stable", "api", "canary"}


def test_classes_k8n_and_nginx_served_another_controllers_not(cluster):
    cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "other"},
        "spec": {"controller": "example.com/other"}}))
    # the other class's Ingress first: once the later ones are served, the controller has seen it
    apply(cluster, ingress("by-other", {"other.class.test": [path("/", "api")]}, cls="other"))
    apply(cluster, ingress("by-k8n", {"k8n.class.test": [path("/", "stable")]}, cls="k8n"),
          ingress("by-nginx", {"nginx.class.test": [path("/", "canary")]}, cls="nginx"),
          ingress("by-default", {"default.class.test": [path("/", "wild")]}))  # no class: the default, k8n
    try:
        routes_to(cluster, "k8n.class.test", "/", "stable", timeout=60)
        routes_to(cluster, "nginx.class.test", "/", "canary")
        routes_to(cluster, "default.class.test", "/", "wild")
        for name in ("by-k8n", "by-nginx", "by-default"):
            eventually_sync(lambda: address(cluster, name) == "127.0.0.1", 30, f"ADDRESS of {name}")
        classes = cluster.kubectl("get", "ingress", "by-default", "-o", "jsonpath={.spec.ingressClassName}").stdout
        assert classes == "k8n"
        assert who(cluster, "other.class.test") == f"404 {NOT_FOUND}"
        status = cluster.kubectl("get", "ingress", "by-other", "-o", "jsonpath={.status}").stdout
        assert "127.0.0.1" not in status and address(cluster, "by-other") == ""
    finally:
        delete(cluster, "by-other", "by-k8n", "by-nginx", "by-default")
        cluster.kubectl("delete", "ingressclass", "other")


def test_an_invalid_ingress_is_reported_and_the_others_keep_serving(cluster):
    apply(cluster, ingress("good", {"good.test": [path("/", "stable")]}))
    routes_to(cluster, "good.test", "/", "stable", timeout=60)
    apply(cluster, ingress("broken", {"broken.test": [
        path("/", "missing"), path("/exact", "stable", 9999, kind="Exact"), path("/api", "api")]}))
    try:
        def warnings() -> list[dict]:
            items = json.loads(cluster.kubectl("get", "events", "-o", "json").stdout)["items"]
            return [e for e in items if e["involvedObject"].get("kind") == "Ingress"
                    and e["involvedObject"].get("name") == "broken"]
        event = eventually_sync(warnings, 30, "an event on Ingress broken")[0]
        assert event["type"] == "Warning" and event["reason"] == "InvalidIngress", event
        assert "service default/missing not found" in event["message"], event["message"]
        assert "service default/stable has no port 9999" in event["message"], event["message"]
        shown = cluster.kubectl("get", "events", "--field-selector", "involvedObject.name=broken").stdout
        assert "InvalidIngress" in shown and "Warning" in shown, shown

        assert who(cluster, "broken.test", "/api/") == "api"  # its valid path is served
        assert who(cluster, "broken.test", "/") == f"404 {NOT_FOUND}"
        assert who(cluster, "broken.test", "/exact") == f"404 {NOT_FOUND}"
        assert who(cluster, "good.test", "/api/") == "stable"
        items = json.loads(cluster.kubectl("get", "events", "-o", "json").stdout)["items"]
        assert not [e for e in items if e["involvedObject"].get("name") == "good"]
    finally:
        delete(cluster, "good", "broken")
