"""Stock kubectl 1.32 against ``k8n up``'s HTTP API gateway, as a user drives it: the real kubectl binary with
``--kubeconfig <data-dir>/kubeconfig``, and only what a user sees (output text, exit codes, objects changed).

One ``k8n up`` (plus one node agent with a unique name) serves the whole module; the tests that change
things work in their own namespace and run in file order."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from bus.resources import RESOURCES
from tests.e2e.upcluster import KUBECTL, UpCluster
from tests.builders import IMAGE
from tests.harness import NEEDS_DOCKER
from tests.waiting import eventually_sync

pytestmark = NEEDS_DOCKER

NS = "kt"

DEPLOY = f"""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {NS}
  labels: {{app: web}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: {IMAGE}
        command: ["sleep", "3600"]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {NS}
spec:
  selector: {{app: web}}
  ports:
  - port: 80
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: {NS}
data:
  greeting: hello
"""


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    c = UpCluster(tmp_path_factory.mktemp("kubectl"))
    try:
        c.start(agent=True)
        yield c
    finally:
        c.stop()


def write(k: UpCluster, name: str, text: str) -> Path:
    p = k.tmp / name
    p.write_text(text)
    return p


def lines(out: str) -> list[list[str]]:
    return [ln.split() for ln in out.strip().splitlines()]


# ---- discovery, version, authentication -----------------------------------------------------------------

def test_version_and_discovery(k):
    v = json.loads(k.kubectl("version", "-o", "json").stdout)
    assert v["serverVersion"]["major"] == "1" and v["serverVersion"]["minor"] == "32"
    out = k.kubectl("api-resources").stdout
    rows: dict[str, list[str]] = {}
    for r in lines(out)[1:]:
        rows.setdefault(r[0], r)  # the core group's first (metrics.k8s.io also has nodes and pods)
    assert rows["deployments"][1:] == ["deploy", "apps/v1", "true", "Deployment"]
    assert rows["pods"][1:] == ["po", "v1", "true", "Pod"]
    assert rows["nodes"][1:] == ["no", "v1", "false", "Node"]
    assert rows["horizontalpodautoscalers"][2] == "autoscaling/v2"
    # every kind k8n serves is discoverable
    assert {r.plural for r in RESOURCES} <= set(rows)
    assert "policy/v1" in k.kubectl("api-versions").stdout.split()


def test_no_or_bad_token_is_unauthorized(k):
    cfg = yaml.safe_load(k.kubeconfig.read_text())
    cfg["users"][0]["user"]["token"] = "not-a-token"
    bad = write(k, "bad-kubeconfig", yaml.safe_dump(cfg))
    r = subprocess.run([KUBECTL, "--kubeconfig", str(bad), "get", "pods"], capture_output=True, text=True,
                       env=k.env, timeout=60)
    assert r.returncode != 0
    assert "must be logged in to the server" in r.stderr
    # no token at all (kubectl would prompt for a password): a 401 Status; /version stays open as in Kubernetes
    assert _https(k, "/api/v1/namespaces/default/pods") == (401, "Unauthorized")
    code, body = _https(k, "/version")
    assert code == 200 and body["minor"] == "32"


def _https(k: UpCluster, path: str):
    """(code, Status reason or JSON body) of an unauthenticated GET, TLS checked with the kubeconfig's CA."""
    import ssl
    import urllib.error
    import urllib.request

    cfg = yaml.safe_load(k.kubeconfig.read_text())
    cluster = cfg["clusters"][0]["cluster"]
    ctx = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    try:
        with urllib.request.urlopen(cluster["server"] + path, context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())["reason"]


def _sa_token(k: UpCluster, ns: str, sa: str) -> str:
    """The token the controller puts into a ``kubernetes.io/service-account-token`` Secret made for ``sa`` (no
    account gets one on its own since Kubernetes 1.24)."""
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
              "metadata": {"name": f"{sa}-token", "namespace": ns,
                           "annotations": {"kubernetes.io/service-account.name": sa}}}
    k.kubectl("create", "-f", "-", input=json.dumps(secret))

    def find():
        s = json.loads(k.kubectl("get", "secret", f"{sa}-token", "-n", ns, "-o", "json").stdout)
        token = (s.get("data") or {}).get("token")
        return base64.b64decode(token).decode() if token else None
    return eventually_sync(find, 30, f"the token Secret of ServiceAccount {ns}/{sa} filled in")


def test_serviceaccount_tokens_authenticate_while_the_account_exists(k):
    k.kubectl("create", "serviceaccount", "robot", "-n", "default")
    token = _sa_token(k, "default", "robot")
    r = k.kubectl("--token", token, "get", "serviceaccounts", "-n", "default", "-o", "name", check=False)
    assert r.returncode == 1 and r.stderr.strip() == (
        'Error from server (Forbidden): serviceaccounts is forbidden: User "system:serviceaccount:default:robot" '
        'cannot list resource "serviceaccounts" in API group "" in the namespace "default"')
    assert k.kubectl("--token", token, "auth", "can-i", "list", "serviceaccounts", check=False).stdout.strip() == "no"
    k.kubectl("create", "rolebinding", "robot-view", "-n", "default", "--clusterrole", "view",
              "--serviceaccount", "default:robot")
    def listed():
        r = k.kubectl("--token", token, "get", "serviceaccounts", "-n", "default", "-o", "name", check=False)
        return r if r.returncode == 0 else None

    r = eventually_sync(listed, 20, "the view binding to take effect")
    assert "serviceaccount/robot" in r.stdout.split()
    assert k.kubectl("--token", token, "auth", "can-i", "list", "pods").stdout.strip() == "yes"
    assert k.kubectl("--token", token, "auth", "can-i", "get", "secrets", check=False).stdout.strip() == "no"
    assert k.kubectl("--token", token, "auth", "can-i", "delete", "pods", check=False).stdout.strip() == "no"
    rules = k.kubectl("--token", token, "auth", "can-i", "--list", "-n", "default").stdout
    assert "pods" in rules and "selfsubjectaccessreviews.authorization.k8s.io" in rules
    # the admin may act as the robot, and then has only the robot's rights
    assert k.kubectl("--as", "system:serviceaccount:default:robot", "auth", "can-i", "get", "secrets",
                     check=False).stdout.strip() == "no"
    assert k.kubectl("auth", "can-i", "get", "secrets").stdout.strip() == "yes"
    # kubectl create token: a TokenRequest; its token expires when asked, and says so
    short = k.kubectl("create", "token", "robot", "-n", "default", "--duration", "15m").stdout.strip()
    claims = json.loads(base64.urlsafe_b64decode(short.split(".")[1] + "=="))
    assert claims["sub"] == "system:serviceaccount:default:robot" and claims["exp"] - claims["iat"] == 900
    assert k.kubectl("--token", short, "auth", "can-i", "list", "pods").stdout.strip() == "yes"
    r = k.kubectl("create", "token", "robot", "-n", "default", "--duration", "5m", check=False)
    assert r.returncode == 1 and "may not specify a duration less than 10 minutes" in r.stderr
    k.kubectl("delete", "rolebinding", "robot-view", "-n", "default")
    k.kubectl("delete", "serviceaccount", "robot", "-n", "default")
    eventually_sync(lambda: "must be logged in" in k.kubectl("--token", token, "get", "pods", check=False).stderr, 20,
                    "the deleted account's token to be refused")


def test_up_refuses_a_busy_http_port(tmp_path):
    import socket

    from tests.e2e.upcluster import K8N

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        u = UpCluster(tmp_path)
        r = subprocess.run([K8N, "up", "--data-dir", str(u.data), "--nats-port", "0", "--http-port", str(port),
                            "--no-agent"], capture_output=True, text=True, env=u.env, timeout=60,
                           start_new_session=True)
    assert r.returncode == 1
    assert r.stderr.startswith(f"error: port {port} on 127.0.0.1 is already in use; choose another with --http-port")
    assert "Traceback" not in r.stderr and not (u.data / "kubeconfig").exists()


# ---- get ---------------------------------------------------------------------------------------------

def test_get_every_kind(k):
    for r in RESOURCES:
        if not r.stored:
            continue  # tokenreviews: create-only
        out = k.kubectl("get", r.plural, "-A").stdout
        if r.plural == "namespaces":
            assert lines(out)[0] == ["NAME", "STATUS", "AGE"]
            assert "kube-system" in out
    nodes = lines(k.kubectl("get", "nodes", "-o", "wide").stdout)
    assert nodes[0][:6] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP"]
    assert any(row[0] == k.node and row[1] == "Ready" for row in nodes[1:])
    svc = lines(k.kubectl("get", "svc", "kubernetes").stdout)
    assert svc[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert svc[1][:5] == ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"]
    sa = lines(k.kubectl("get", "sa", "-n", "kube-system").stdout)
    assert sa[0] == ["NAME", "SECRETS", "AGE"] and sa[1][0] == "default"


def test_create_namespace(k):
    r = k.kubectl("create", "namespace", NS)  # a protobuf body
    assert r.stdout.strip() == f"namespace/{NS} created"
    row = lines(k.kubectl("get", "ns", NS).stdout)[1]
    assert row[:2] == [NS, "Active"]
    r = k.kubectl("create", "namespace", NS, check=False)
    assert r.returncode != 0 and f'namespaces "{NS}" already exists' in r.stderr


def test_apply_creates_then_unchanged_then_configured(k):
    f = write(k, "web.yaml", DEPLOY)
    out = k.kubectl("apply", "-f", str(f)).stdout
    assert out.split("\n")[:3] == ["deployment.apps/web created", "service/web created",
                                   "configmap/web-config created"]
    out = k.kubectl("apply", "-f", str(f)).stdout
    assert out.split("\n")[:3] == ["deployment.apps/web unchanged", "service/web unchanged",
                                   "configmap/web-config unchanged"]
    changed = DEPLOY.replace("greeting: hello", "greeting: bonjour").replace(
        "labels: {app: web}\nspec:\n  replicas: 1", "labels: {app: web, tier: front}\nspec:\n  replicas: 1")
    f.write_text(changed)
    out = k.kubectl("apply", "-f", str(f)).stdout
    assert out.split("\n")[:3] == ["deployment.apps/web configured", "service/web unchanged",
                                   "configmap/web-config configured"]
    assert k.kubectl("get", "cm", "web-config", "-n", NS, "-o", "jsonpath={.data.greeting}").stdout == "bonjour"
    assert k.kubectl("get", "deploy", "web", "-n", NS, "-o", "jsonpath={.metadata.labels.tier}").stdout == "front"


def test_rollout_status_scale_and_get_pods(k):
    r = k.kubectl("rollout", "status", "deploy/web", "-n", NS, "--timeout", "90s", timeout=120)
    assert 'deployment "web" successfully rolled out' in r.stdout
    assert k.kubectl("scale", "deploy/web", "-n", NS, "--replicas", "3").stdout.strip() == "deployment.apps/web scaled"
    k.kubectl("rollout", "status", "deploy/web", "-n", NS, "--timeout", "90s", timeout=120)
    deploy = lines(k.kubectl("get", "deploy", "web", "-n", NS).stdout)
    assert deploy[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert deploy[1][:4] == ["web", "3/3", "3", "3"]
    pods = lines(k.kubectl("get", "pods", "-n", NS, "-l", "app=web", "-o", "wide").stdout)
    assert pods[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE", "READINESS",
                       "GATES"]
    assert len(pods) == 4
    for row in pods[1:]:
        assert row[1:4] == ["1/1", "Running", "0"] and row[5].startswith("10.244.") and row[6] == k.node
    everything = k.kubectl("get", "all", "-n", NS).stdout
    for name in ("pod/web-", "service/web", "deployment.apps/web", "replicaset.apps/web-"):
        assert name in everything


def test_get_output_formats_and_selectors(k):
    assert k.kubectl("get", "deploy", "-n", NS, "-o", "name").stdout.split() == ["deployment.apps/web"]
    doc = yaml.safe_load(k.kubectl("get", "deploy", "web", "-n", NS, "-o", "yaml").stdout)
    assert doc["kind"] == "Deployment" and doc["spec"]["replicas"] == 3
    lst = json.loads(k.kubectl("get", "pods", "-n", NS, "-o", "json").stdout)
    assert lst["kind"] == "List" and len(lst["items"]) == 3
    labelled = lines(k.kubectl("get", "deploy", "-A", "-l", "tier=front", "--show-labels").stdout)
    assert labelled[0] == ["NAMESPACE", "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "LABELS"]
    assert labelled[1][0] == NS and labelled[1][1] == "web" and labelled[1][-1] == "app=web,tier=front"
    none = k.kubectl("get", "deploy", "-n", NS, "-l", "tier=back")
    assert none.stdout == "" and "No resources found" in none.stderr
    r = k.kubectl("get", "pods", "-n", NS, "-l", "a in (", check=False)
    assert r.returncode != 0 and "BadRequest" in r.stderr


def test_get_watch_shows_changes(k):
    p = subprocess.Popen([KUBECTL, "--kubeconfig", str(k.kubeconfig), "get", "configmaps", "-n", NS, "-w"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=k.env)
    try:
        first = p.stdout.readline().split()
        assert first == ["NAME", "DATA", "AGE"]  # printed from the list: the watch starts at its revision
        k.kubectl("create", "configmap", "watched", "-n", NS, "--from-literal", "a=1", "--from-literal", "b=2")
        deadline = time.monotonic() + 20
        seen = []
        while time.monotonic() < deadline:
            row = p.stdout.readline().split()
            seen.append(row)
            if row and row[0] == "watched":
                assert row[1] == "2"
                break
        else:
            pytest.fail(f"the new ConfigMap never showed up in the watch: {seen}")
    finally:
        p.kill()
        p.wait(10)


def test_describe_with_events(k):
    pod = k.kubectl("get", "pods", "-n", NS, "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}").stdout
    out = k.kubectl("describe", "pod", pod, "-n", NS).stdout
    assert f"Node:             {k.node}/" in out and "Status:           Running" in out
    assert "Events:" in out and "Scheduled" in out and "Started" in out
    out = k.kubectl("describe", "deploy", "web", "-n", NS).stdout
    assert "Replicas:               3 desired | 3 updated | 3 total | 3 available" in out
    assert "ScalingReplicaSet" in out
    out = k.kubectl("describe", "node", k.node).stdout
    assert f"Name:               {k.node}" in out and "Ready" in out and "PodCIDR:" in out
    out = k.kubectl("describe", "svc", "web", "-n", NS).stdout
    assert "Selector:                 app=web" in out and "Port:" in out


def test_label_annotate(k):
    assert k.kubectl("label", "svc", "web", "-n", NS, "team=blue").stdout.strip() == "service/web labeled"
    assert k.kubectl("annotate", "svc", "web", "-n", NS, "note=hi").stdout.strip() == "service/web annotated"
    svc = json.loads(k.kubectl("get", "svc", "web", "-n", NS, "-o", "json").stdout)
    assert svc["metadata"]["labels"]["team"] == "blue" and svc["metadata"]["annotations"]["note"] == "hi"
    k.kubectl("label", "svc", "web", "-n", NS, "team-")
    assert "team" not in json.loads(k.kubectl("get", "svc", "web", "-n", NS, "-o", "json").stdout)["metadata"].get(
        "labels", {})


def test_edit_with_a_scripted_editor(k):
    editor = write(k, "editor.sh", "#!/bin/sh\nsed -i 's/^  greeting: bonjour$/  greeting: edited/' \"$1\"\n")
    editor.chmod(0o755)
    r = subprocess.run([KUBECTL, "--kubeconfig", str(k.kubeconfig), "edit", "cm", "web-config", "-n", NS],
                       capture_output=True, text=True, env={**k.env, "EDITOR": str(editor)}, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "configmap/web-config edited"
    assert k.kubectl("get", "cm", "web-config", "-n", NS, "-o", "jsonpath={.data.greeting}").stdout == "edited"


def test_rollout_restart_history_undo(k):
    assert k.kubectl("rollout", "restart", "deploy/web", "-n", NS).stdout.strip() == "deployment.apps/web restarted"
    k.kubectl("rollout", "status", "deploy/web", "-n", NS, "--timeout", "90s", timeout=120)
    hist = lines(k.kubectl("rollout", "history", "deploy/web", "-n", NS).stdout)
    assert hist[1] == ["REVISION", "CHANGE-CAUSE"] and [r[0] for r in hist[2:]] == ["1", "2"]
    before = k.kubectl("get", "deploy", "web", "-n", NS, "-o",
                       "jsonpath={.spec.template.metadata.annotations}").stdout
    assert "kubectl.kubernetes.io/restartedAt" in before
    r = k.kubectl("rollout", "undo", "deploy/web", "-n", NS)
    assert r.stdout.strip() == "deployment.apps/web rolled back"
    after = k.kubectl("get", "deploy", "web", "-n", NS, "-o", "jsonpath={.spec.template.metadata.annotations}").stdout
    assert "restartedAt" not in after
    k.kubectl("rollout", "status", "deploy/web", "-n", NS, "--timeout", "90s", timeout=120)


def test_cordon_uncordon(k):
    assert k.kubectl("cordon", k.node).stdout.strip() == f"node/{k.node} cordoned"
    row = lines(k.kubectl("get", "node", k.node).stdout)[1]
    assert row[1] == "Ready,SchedulingDisabled"
    assert k.kubectl("uncordon", k.node).stdout.strip() == f"node/{k.node} uncordoned"
    assert lines(k.kubectl("get", "node", k.node).stdout)[1][1] == "Ready"


def test_server_side_apply(k):
    f = write(k, "ssa.yaml", f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  namespace: {NS}\n"
                             "data:\n  a: '1'\n")
    assert k.kubectl("apply", "--server-side", "-f", str(f)).stdout.strip() == "configmap/ssa serverside-applied"
    f.write_text(f.read_text().replace("a: '1'", "a: '2'"))
    assert k.kubectl("apply", "--server-side", "-f", str(f)).stdout.strip() == "configmap/ssa serverside-applied"
    cm = json.loads(k.kubectl("get", "cm", "ssa", "-n", NS, "-o", "json", "--show-managed-fields").stdout)
    assert cm["data"] == {"a": "2"}
    assert "kubectl" in [m["manager"] for m in cm["metadata"]["managedFields"]]


def test_create_and_delete(k):
    pod = write(k, "pod.yaml", f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: lone\n  namespace: {NS}\n"
                               f"  labels: {{kind: lone}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n"
                               f"  - name: c\n    image: {IMAGE}\n    command: [sleep, '3600']\n")
    assert k.kubectl("create", "-f", str(pod)).stdout.strip() == "pod/lone created"
    r = k.kubectl("create", "-f", str(pod), check=False)
    assert r.returncode != 0 and 'pods "lone" already exists' in r.stderr
    assert k.kubectl("delete", "-f", str(pod), timeout=90).stdout.strip() == 'pod "lone" deleted'
    assert "NotFound" in k.kubectl("get", "pod", "lone", "-n", NS, check=False).stderr
    k.kubectl("create", "configmap", "la", "-n", NS, "--from-literal", "x=1")
    k.kubectl("label", "cm", "la", "-n", NS, "sweep=yes")
    assert k.kubectl("delete", "cm", "-n", NS, "-l", "sweep=yes").stdout.strip() == 'configmap "la" deleted'
    assert k.kubectl("delete", "cm", "watched", "-n", NS).stdout.strip() == 'configmap "watched" deleted'
    r = k.kubectl("delete", "namespace", NS, "--wait=false")
    assert r.stdout.strip() == f'namespace "{NS}" deleted'
    eventually_sync(lambda: "NotFound" in k.kubectl("get", "ns", NS, check=False).stderr, 90, f"namespace {NS} to go")


# ---- in-cluster clients ----------------------------------------------------------------------------------------

IN_CLUSTER = """\
k() { /kubectl "$@" 2>&1; }
echo "PODS $(k get pods -n $NS -o name)"
echo "SECRETS $(k get secrets -n kube-system -o name)"
echo "CANI $(k auth can-i delete pods -n $NS)"
echo DONE
sleep 3600
"""


def static_kubectl() -> str:
    """kubectl 1.32, a static binary: the one on PATH is the Cloud SDK's dispatcher, with its builds beside it."""
    real = Path(shutil.which(KUBECTL) or KUBECTL).resolve()
    pinned = real.with_name("kubectl.1.32")
    return str(pinned if pinned.exists() else real)


def test_a_pod_reaches_the_api_with_its_token_and_its_service_accounts_rights(k):
    """Stock kubectl inside a pod, with no kubeconfig: client-go's in-cluster config (KUBERNETES_SERVICE_HOST, the
    mounted token and ca.crt). The `kubernetes` Service's endpoint is the gateway, whose certificate chains to the
    CA the pod was given; the token is the pod's ServiceAccount's (pods get,list via a RoleBinding), nothing more."""
    ns = "incluster"
    k.kubectl("create", "namespace", ns)
    k.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=privileged")  # kubectl on a hostPath
    k.kubectl("create", "serviceaccount", "reader", "-n", ns)
    k.kubectl("create", "role", "pod-reader", "-n", ns, "--verb", "get,list,watch", "--resource", "pods")
    k.kubectl("create", "rolebinding", "reader", "-n", ns, "--role", "pod-reader", "--serviceaccount", f"{ns}:reader")
    endpoints = json.loads(k.kubectl("get", "endpoints", "kubernetes", "-n", "default", "-o", "json").stdout)
    assert endpoints["subsets"][0]["ports"][0]["name"] == "https"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": ns},
           "spec": {"serviceAccountName": "reader", "terminationGracePeriodSeconds": 1, "nodeName": k.node,
                    "volumes": [{"name": "kubectl", "hostPath": {"path": static_kubectl(), "type": "File"}}],
                    "containers": [{"name": "c", "image": IMAGE, "command": ["sh", "-c", IN_CLUSTER],
                                    "env": [{"name": "NS", "value": ns}],
                                    "volumeMounts": [{"name": "kubectl", "mountPath": "/kubectl",
                                                      "readOnly": True}]}]}}
    k.kubectl("create", "-f", "-", input=json.dumps(pod))
    try:
        out = eventually_sync(lambda: (lambda o: o if "DONE" in o else None)(
            k.kubectl("logs", "client", "-n", ns, check=False).stdout), 90, "the pod's calls to the API")
        lines_ = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in out.splitlines() if " " in line}
        assert lines_["PODS"] == "pod/client", out
        assert lines_["SECRETS"] == ('Error from server (Forbidden): secrets is forbidden: User '
                                     f'"system:serviceaccount:{ns}:reader" cannot list resource "secrets" in API group '
                                     '"" in the namespace "kube-system"'), out
        assert lines_["CANI"] == "no", out
        ca = k.kubectl("exec", "client", "-n", ns, "--", "cat",
                       "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt").stdout
        assert ca == (k.data / "pki" / "ca.crt").read_text()  # the CA the gateway's certificate chains to
    finally:
        k.kubectl("delete", "namespace", ns, "--wait=false", check=False)


# ---- issue 12: the escapes an attacker with a pod-creating token tried, replayed ------------------------------

ATTACK_NS = "attack"


def _as_mallory(k: UpCluster, token: str, manifest: dict) -> subprocess.CompletedProcess:
    return k.kubectl("--token", token, "create", "-f", "-", input=json.dumps(manifest), check=False)


def _attack_pod(name: str, spec: dict, container: dict | None = None) -> dict:
    c = {"name": "c", "image": IMAGE, "command": ["sleep", "3600"], **(container or {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ATTACK_NS},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [c], **spec}}


def test_a_token_that_may_create_pods_gets_no_further_than_its_namespace(k):
    """Every escape of issue 12, replayed with stock kubectl and nothing but a ServiceAccount token allowed to create
    pods (and endpoints) in its namespace: each refused with Kubernetes' error, while a hardened pod runs as asked."""
    k.kubectl("create", "namespace", ATTACK_NS)
    k.kubectl("create", "serviceaccount", "mallory", "-n", ATTACK_NS)
    k.kubectl("create", "role", "pods", "-n", ATTACK_NS, "--verb", "get,list,create,delete",
              "--resource", "pods,pods/exec,endpoints,secrets")
    k.kubectl("create", "rolebinding", "mallory", "-n", ATTACK_NS, "--role", "pods",
              "--serviceaccount", f"{ATTACK_NS}:mallory")
    token = k.kubectl("create", "token", "mallory", "-n", ATTACK_NS).stdout.strip()
    try:
        # hostPath of / and host namespaces: Pod Security (baseline by default) refuses them
        r = _as_mallory(k, token, _attack_pod("root", {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]},
                                              {"volumeMounts": [{"name": "root", "mountPath": "/host"}]}))
        assert r.returncode != 0 and ('Error from server (Forbidden): error when creating "STDIN": pods "root" is '
                                      'forbidden: violates PodSecurity "baseline:latest": hostPath volumes '
                                      '(volume "root")') in r.stderr, r.stderr
        r = _as_mallory(k, token, _attack_pod("hosty", {"hostNetwork": True, "hostPID": True},
                                              {"securityContext": {"privileged": True}}))
        assert r.returncode != 0 and 'violates PodSecurity "baseline:latest": ' in r.stderr, r.stderr
        assert "host namespaces (hostNetwork=true, hostPID=true)" in r.stderr, r.stderr
        assert 'privileged (container "c" must not set securityContext.privileged=true)' in r.stderr, r.stderr
        # the namespace cannot be relabelled privileged by the attacker
        r = k.kubectl("--token", token, "label", "namespace", ATTACK_NS,
                      "pod-security.kubernetes.io/enforce=privileged", check=False)
        assert r.returncode != 0 and "(Forbidden)" in r.stderr, r.stderr
        # paths inside volumes: relative, no '..' (Kubernetes' validateLocalDescendingPath)
        r = _as_mallory(k, token, _attack_pod("subpath", {"volumes": [{"name": "e", "emptyDir": {}}]},
                                              {"volumeMounts": [{"name": "e", "mountPath": "/x", "subPath": "/tmp/x"}]}))
        assert r.returncode != 0 and ('spec.containers[0].volumeMounts[0].subPath: Invalid value: "/tmp/x": '
                                      'must be a relative path') in r.stderr, r.stderr
        r = _as_mallory(k, token, _attack_pod("items", {"volumes": [{"name": "s", "secret": {
            "secretName": "any", "items": [{"key": "k", "path": "../../../tmp/x/f"}]}}]}))
        assert r.returncode != 0 and ("spec.volumes[0].secret.items[0].path: Invalid value: "
                                      "\"../../../tmp/x/f\": must not contain '..'") in r.stderr, r.stderr
        # an Endpoints object aimed at the node's own loopback (the NATS port)
        r = _as_mallory(k, token, {"apiVersion": "v1", "kind": "Endpoints",
                                   "metadata": {"name": "nats", "namespace": ATTACK_NS},
                                   "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 4222}]}]})
        assert r.returncode != 0 and ('subsets[0].addresses[0].ip: Invalid value: "127.0.0.1": may not be in the '
                                      'loopback range (127.0.0.0/8, ::1/128)') in r.stderr, r.stderr
        # a namespace segment that would address every namespace
        r = k.kubectl("--token", token, "get", "--raw", "/api/v1/namespaces/*/secrets", check=False)
        assert r.returncode != 0 and 'Error from server (NotFound): namespaces "*" not found' in r.stderr, r.stderr
        # what the attacker asked for in securityContext is what the container gets
        hardened = _attack_pod("hardened", {"securityContext": {"runAsUser": 1000, "runAsGroup": 3000,
                                                                "runAsNonRoot": True}},
                               {"securityContext": {"capabilities": {"drop": ["ALL"]},
                                                    "allowPrivilegeEscalation": False,
                                                    "readOnlyRootFilesystem": True}})
        hardened["spec"]["nodeName"] = k.node
        r = _as_mallory(k, token, hardened)
        assert r.returncode == 0, r.stderr
        k.kubectl("wait", "--for=condition=Ready", "pod/hardened", "-n", ATTACK_NS, "--timeout=60s")
        out = k.kubectl("--token", token, "exec", "hardened", "-n", ATTACK_NS, "--", "sh", "-c",
                        "id; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; touch /x 2>&1 || echo refused").stdout
        assert "uid=1000 gid=3000" in out, out
        assert "CapEff:\t0000000000000000" in out and "NoNewPrivs:\t1" in out, out
        assert "Read-only file system" in out and "refused" in out, out
    finally:
        k.kubectl("delete", "namespace", ATTACK_NS, "--wait=false", check=False)
