"""Port forwarding (``pods/portforward``) against ``k8n up`` with a real pod serving HTTP on port 80 (busybox
``httpd``), through stock kubectl (SPDY tunneled in a WebSocket) and the official Python client
(``v4.channel.k8s.io``); the bytes travel over the node's bus subjects. Only what a user sees is checked: pages
fetched through the forwarded port, the error kubectl and the client report for a port nothing listens on, the
refusal of a user without ``pods/portforward``."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import socket
import subprocess
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from kubernetes import client, config
from kubernetes.stream import portforward

from tests.builders import container, pod
from tests.e2e.upcluster import KUBECTL, UpCluster
from tests.harness import NEEDS_DOCKER
from tests.waiting import eventually_sync

pytestmark = list(NEEDS_DOCKER)

PAGE = "hello through the tunnel"
WEB = pod("web", ns=None, grace=1, containers=[container(
    "web", f"mkdir -p /www && echo '{PAGE}' > /www/index.html && "
           "(nc -l -p 90 -e sh -c 'cat > /tmp/got'; echo closed > /tmp/done) & "
           "dd if=/dev/urandom of=/www/big bs=1024 count=3072 2>/dev/null && exec httpd -f -p 80 -h /www")])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = UpCluster(tmp_path_factory.mktemp("portforward"))
    try:
        c.start()
        c.kubectl("apply", "-f", "-", input=json.dumps(WEB))
        eventually_sync(lambda: c.kubectl("exec", "web", "--", "wget", "-qO-", "http://127.0.0.1/",
                                          check=False).stdout.strip() == PAGE, 60, "pod web serving its page")
        yield c
    finally:
        c.stop()


class Forward:
    """``kubectl port-forward pod/web :<port>`` running; ``local`` is the port kubectl chose."""

    def __init__(self, cluster: UpCluster, remote: int, *flags: str) -> None:
        self.proc = subprocess.Popen([KUBECTL, "--kubeconfig", str(cluster.kubeconfig), *flags, "port-forward",
                                      "pod/web", f":{remote}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=cluster.env)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        found = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)", line)
        if not found:
            self.stop()
            raise AssertionError(f"kubectl port-forward said {line!r}; stderr: {self.stderr}")
        self.local = int(found.group(1))
        assert int(found.group(2)) == remote

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr = self.proc.stderr.read()  # type: ignore[union-attr]


def fetch(port: int, path: str = "/") -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=20) as r:
        return r.read()


def test_kubectl_port_forward_serves_the_pods_page_to_parallel_connections(cluster):
    fwd = Forward(cluster, 80)
    try:
        with ThreadPoolExecutor(3) as pool:
            pages = list(pool.map(lambda p: fetch(fwd.local, p), ["/", "/", "/big"]))
        assert pages[0].decode().strip() == PAGE and pages[1] == pages[0]
        # 3 MiB crosses the relay's flow-control window several times; nothing is lost or reordered
        digest = cluster.kubectl("exec", "web", "--", "sha256sum", "/www/big").stdout.split()[0]
        assert len(pages[2]) == 3 * 1024 * 1024 and hashlib.sha256(pages[2]).hexdigest() == digest
        assert fetch(fwd.local).decode().strip() == PAGE  # the forward stays up for more connections
        assert fwd.proc.poll() is None
    finally:
        fwd.stop()


def test_kubectl_reports_a_port_nothing_listens_on(cluster):
    fwd = Forward(cluster, 81)
    try:
        with socket.create_connection(("127.0.0.1", fwd.local), timeout=20) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert s.recv(100) == b""  # kubectl closes the local connection: no answer
        fwd.proc.wait(20)  # and gives up on the error, as kubectl does against Kubernetes
    finally:
        fwd.stop()
    stderr = fwd.stderr.replace('\\"', '"')  # kubectl logs the error quoted
    assert re.search(r"an error occurred forwarding \d+ -> 81: error forwarding port 81 to pod \w+, uid : "
                     r'failed to execute portforward in network namespace "[^"]+": failed to connect to '
                     r'localhost:81 inside namespace "\w+", IPv4: dial tcp4 127\.0\.0\.1:81: connect: '
                     r"connection refused", stderr), fwd.stderr
    assert "error: lost connection to pod" in fwd.stderr


def _python_client(cluster) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(cluster.kubeconfig)))


def _http_get(sock) -> bytes:
    sock.setblocking(True)
    sock.sendall(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_python_client_port_forward(cluster):
    core = _python_client(cluster)
    pf = portforward(core.connect_get_namespaced_pod_portforward, "web", "default", ports="80,81")
    try:
        response = _http_get(pf.socket(80))
        assert response.startswith(b"HTTP/1.") and b" 200 " in response.split(b"\r\n")[0]
        assert response.split(b"\r\n\r\n", 1)[1].decode().strip() == PAGE
        assert pf.error(80) is None
        eventually_sync(lambda: pf.error(81), 20, "the error of port 81")
        assert "failed to connect to localhost:81 inside namespace" in pf.error(81)
    finally:
        pf.close()


def _file(cluster, path: str) -> str:
    return cluster.kubectl("exec", "web", "--", "cat", path, check=False).stdout


def test_closing_the_client_side_closes_the_pods_connection(cluster):
    pf = portforward(_python_client(cluster).connect_get_namespaced_pod_portforward, "web", "default", ports="90")
    sock = pf.socket(90)
    sock.setblocking(True)
    sock.sendall(b"to the pod\n")
    eventually_sync(lambda: _file(cluster, "/tmp/got") == "to the pod\n", 20, "the bytes in the pod")
    assert _file(cluster, "/tmp/done") == ""  # nc still has its connection
    pf.close()
    eventually_sync(lambda: _file(cluster, "/tmp/done") == "closed\n", 20, "nc to see its connection closed")


def test_bad_ports_are_400(cluster):
    api = _python_client(cluster).api_client  # the client checks the range itself first: go around it
    for bad, words in (("0", 'port "0" must be > 0'), ("70000", 'unable to parse "70000" as a port')):
        request = api.param_serialize(
            "GET", "/api/v1/namespaces/default/pods/web/portforward", query_params=[("ports", bad)],
            header_params={"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                           "Sec-WebSocket-Protocol": "v4.channel.k8s.io"},
            auth_settings=["BearerToken"])
        response = api.call_api(*request[:3])
        response.read()
        assert response.status == 400, response.data
        status = json.loads(response.data)
        assert status["reason"] == "BadRequest" and words in status["message"], status


def test_a_user_without_pods_portforward_is_refused(cluster):
    cluster.kubectl("create", "serviceaccount", "viewer")
    cluster.kubectl("create", "rolebinding", "viewer", "--clusterrole", "view", "--serviceaccount",
                    "default:viewer")
    token = cluster.kubectl("create", "token", "viewer").stdout.strip()
    eventually_sync(lambda: cluster.kubectl("--token", token, "get", "pod", "web", check=False).returncode == 0, 20,
                    "the view binding to take effect")
    r = subprocess.run([KUBECTL, "--kubeconfig", str(cluster.kubeconfig), "--token", token, "port-forward",
                        "pod/web", ":80"], capture_output=True, text=True, env=cluster.env, timeout=30)
    assert r.returncode == 1
    assert ('pods "web" is forbidden: User "system:serviceaccount:default:viewer" cannot create resource '
            '"pods/portforward" in API group "" in the namespace "default"') in r.stderr, r.stderr
