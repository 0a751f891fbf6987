"""The web view (``/ui/``) in Debian's headless chromium, driven by selenium through chromium-driver, against
``k8n up`` with a node agent, as a user uses it: refused without logging in and with a bad token; after logging in
with the admin token, a pod created with kubectl appears, its log tail shows its output, and after ``kubectl delete``
it disappears, all without a reload; a ServiceAccount without rights sees the API's 403, not the pods.

Screenshots go to the module's pytest temp directory (printed; ``-s`` shows it)."""

from __future__ import annotations

import json
import shutil
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.builders import container, pod
from tests.e2e.upcluster import UpCluster
from tests.harness import NEEDS_DOCKER

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
NEEDS_BROWSER = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                   reason="needs Debian's chromium and chromium-driver (deploy/install.sh test)")
pytestmark = [*NEEDS_DOCKER, NEEDS_BROWSER]

NS = "ui"
WAIT = 30  # seconds for what the page must show


def browser(width: int = 1400, height: int = 900):
    """Headless chromium under selenium, with the system's chromedriver (selenium downloads nothing). The gateway's
    certificate is signed by the cluster's own CA, which this throwaway profile does not know: accepted."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              f"--window-size={width},{height}"):
        opts.add_argument(a)
    opts.accept_insecure_certs = True
    return webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))


def goto(d, url: str, tries: int = 3) -> None:
    """Open ``url``; again if chromium shows its network error page (it aborts what is in flight when the host's
    network changes, and tests on this machine add and remove interfaces all the time)."""
    from selenium.webdriver.common.by import By

    for _ in range(tries):
        d.get(url)
        if not d.find_elements(By.CSS_SELECTOR, "body.neterror"):
            return
    raise AssertionError(f"chromium could not open {url}")


def log_in(d, base: str, token: str, accepted: bool = True) -> None:
    """Through the login page, as a user: paste the token, press the button; when the token is to be ``accepted``,
    until the view is there."""
    from selenium.webdriver.common.by import By

    goto(d, base + "/ui/login")
    field = d.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    d.find_element(By.ID, "submit").click()
    if accepted:
        wait_for(d, "the view after logging in", lambda: d.find_elements(By.CSS_SELECTOR, "#status, body.neterror"))
        if d.find_elements(By.CSS_SELECTOR, "body.neterror"):
            goto(d, base + "/ui/")  # the cookie is set: the view opens


def wait_for(d, what: str, fn, timeout: float = WAIT):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(d, timeout, poll_frequency=0.05).until(lambda _d: fn(), message=what)


def rows(d, key: str):
    from selenium.webdriver.common.by import By

    return d.find_elements(By.CSS_SELECTOR, f'.vt-row[data-key="{key}"]')


# ---- the tests --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def k(tmp_path_factory):
    c = UpCluster(tmp_path_factory.mktemp("ui"))
    try:
        c.start(agent=True)
        c.kubectl("create", "namespace", NS)
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ui-screenshots")
    print(f"\nweb view screenshots: {d}")
    return d


@pytest.fixture
def d():
    drv = browser()
    try:
        yield drv
    finally:
        drv.quit()


def cluster(k: UpCluster) -> tuple[str, str, ssl.SSLContext]:
    """The gateway's URL and admin token from the kubeconfig, and an SSL context that trusts the cluster's CA."""
    cfg = yaml.safe_load(k.kubeconfig.read_text())
    base = cfg["clusters"][0]["cluster"]["server"]
    ctx = ssl.create_default_context(cafile=str(k.data / "pki" / "ca.crt"))
    return base, cfg["users"][0]["user"]["token"], ctx


def http(url: str, ctx: ssl.SSLContext, headers: dict[str, str]) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), context=ctx) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_refused_without_logging_in(k, d, shots):
    from selenium.webdriver.common.by import By

    base, token, ctx = cluster(k)
    goto(d, base + "/ui/")
    wait_for(d, "the login page", lambda: d.current_url == base + "/ui/login")  # not the view
    assert not d.find_elements(By.ID, "table")
    log_in(d, base, "not-a-token", accepted=False)
    err = d.find_element(By.ID, "error")
    wait_for(d, "the login page's refusal", err.is_displayed)
    assert "401" in err.text
    d.save_screenshot(str(shots / "refused.png"))
    assert d.get_cookies() == []
    # the API and the view's scripts: the session cookie counts only with the view's header, and only a valid one
    assert http(base + "/ui/app.js", ctx, {}) == 401
    assert http(base + "/api/v1/pods", ctx, {"Cookie": f"__Host-k8n-session={token}"}) == 401
    assert http(base + "/api/v1/pods", ctx, {"Cookie": "__Host-k8n-session=bad", "X-K8n-UI": "1"}) == 401
    assert http(base + "/api/v1/pods", ctx, {"Cookie": f"__Host-k8n-session={token}", "X-K8n-UI": "1"}) == 200


def test_pod_appears_shows_its_log_and_disappears(k, d, shots):
    from selenium.webdriver.common.by import By

    base, token, _ = cluster(k)
    log_in(d, base, token)
    wait_for(d, "the pods view, live", lambda: d.find_element(By.ID, "status").text.endswith("· live"))
    cookie = d.get_cookie("__Host-k8n-session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    d.execute_script("window.notReloaded = true")
    d.find_element(By.ID, "filter").send_keys("hello")
    k.kubectl("create", "-f", "-", input=json.dumps(pod("hello", NS, grace=1, containers=[
        container("main", "echo hello-from-the-web-view; sleep 3600")])))
    wait_for(d, "the new pod's row", lambda: rows(d, f"{NS}/hello"))
    wait_for(d, "the pod Running", lambda: "Running" in rows(d, f"{NS}/hello")[0].text)
    d.save_screenshot(str(shots / "pod.png"))
    rows(d, f"{NS}/hello")[0].click()
    d.find_element(By.CSS_SELECTOR, '#detail-tabs [data-tab="logs"]').click()
    wait_for(d, "the log tail", lambda: "hello-from-the-web-view" in d.find_element(By.ID, "log").text)
    d.save_screenshot(str(shots / "log.png"))
    k.kubectl("delete", "pod", "hello", "-n", NS, "--wait=false")
    wait_for(d, "the pod's row to go", lambda: not rows(d, f"{NS}/hello"), timeout=60)
    d.save_screenshot(str(shots / "deleted.png"))
    assert d.execute_script("return window.notReloaded") is True


def test_a_user_sees_what_rbac_lets_them(k, d, shots):
    from selenium.webdriver.common.by import By

    base, _, _ = cluster(k)
    k.kubectl("create", "serviceaccount", "nobody", "-n", NS)
    token = k.kubectl("create", "token", "nobody", "-n", NS).stdout.strip()
    log_in(d, base, token)
    status = d.find_element(By.ID, "status")
    wait_for(d, "the API's refusal", lambda: "forbidden" in status.text)
    assert f"system:serviceaccount:{NS}:nobody" in status.text
    assert d.find_element(By.ID, "user").text == f"system:serviceaccount:{NS}:nobody"
    d.save_screenshot(str(shots / "forbidden.png"))
