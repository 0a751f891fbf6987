"""The version-skew policy between k8n's components, as Kubernetes' (kubernetes.io/releases/version-skew-policy),
with k8n's minor versions as Kubernetes' minors:

- API server replicas differ by at most one minor version (an upgrade runs old and new replicas side by side);
- the controller manager, scheduler, node view, gateway and ingress controller are never newer than the API server
  and at most one minor older;
- node agents (and their service proxies) are never newer than the API server and at most three minors older;
- nothing older than 0.1.0 exists, and 0.1.0 components (which do not ask) are told by what they send: an agent's
  Node carries its version (``status.nodeInfo.kubeletVersion``), which the API server checks (:func:`kubelet_error`).

Checked at connect: a long-running component (``bus.cmdline.run`` sets :data:`CHECK_AT_CONNECT`) asks an API
server's version as soon as it is connected (:func:`verify`) and stops with :class:`SkewError` saying what to
upgrade; an API server asks the replicas already serving. So the order of an upgrade is: API servers one by one,
then the control-plane components, then the agents; a downgrade the reverse.

The connection name of every component says its version (``<identity> k8n/<version>``, :func:`connection_name`), so
an API server can list what runs on the bus (``k8n upgrade plan``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import bus
from bus import roles
from bus.natsauth import AuthError
from bus.schema import parse_version

log = logging.getLogger(__name__)

#: set by long-running entry points (bus.cmdline.run): bus.connect checks the API server's version at connect
CHECK_AT_CONNECT = False
ASK_TIMEOUT = 2.0  # seconds to wait for an API server's version at connect (none answering: not checked)
NAME_TAG = "k8n/"

#: role -> how many minor versions older than the API server it may be (never newer)
OLDER_ALLOWED = {roles.CONTROLLER_MANAGER: 1, roles.SCHEDULER: 1, roles.NODEVIEW: 1, roles.GATEWAY: 1,
                 roles.INGRESS: 1, roles.NODE: 3}
APISERVER_SPREAD = 1  # API server replicas: at most this many minors apart


class SkewError(AuthError):
    """This component's version is outside the skew policy against the API server it reached."""


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""


def _minor(v: str) -> tuple[int, int]:
    major, minor, _ = parse_version(v)
    return major, minor


def _distance(newer: str, older: str) -> int:
    """Minor versions from ``older`` up to ``newer`` (a major step counts as far too many)."""
    (a, b), (c, d) = _minor(newer), _minor(older)
    return (b - d) if a == c else (100 if a > c else -100)


def check(role: str, version: str, apiserver: str) -> Verdict:
    """Whether a component of ``role`` at ``version`` may work with an API server at ``apiserver``."""
    try:
        gap = _distance(apiserver, version)
    except ValueError as e:
        return Verdict(False, str(e))
    if role == roles.APISERVER:
        if abs(gap) > APISERVER_SPREAD:
            return Verdict(False, f"API server {version} and API server {apiserver} are {abs(gap)} minor versions "
                                  f"apart; replicas may differ by at most {APISERVER_SPREAD} (upgrade one minor "
                                  "version at a time)")
        return Verdict(True)
    allowed = OLDER_ALLOWED.get(role)
    if allowed is None:  # people and programs: not part of the policy
        return Verdict(True)
    what = "node agent" if role == roles.NODE else role
    if gap < 0:
        return Verdict(False, f"{what} {version} is newer than the API server ({apiserver}): upgrade the API "
                              f"servers first")
    if gap > allowed:
        return Verdict(False, f"{what} {version} is too old for the API server ({apiserver}): a {what} may be at "
                              f"most {allowed} minor version{'s' if allowed > 1 else ''} older; upgrade it")
    return Verdict(True)


def connection_name(name: str) -> str:
    """A component's NATS connection name: ``name`` and this k8n's version."""
    return f"{name} {NAME_TAG}{bus.__version__}"


def version_of_connection(name: str | None) -> str | None:
    """The k8n version a connection's name says (None: it says none, as k8n 0.1 components and other programs)."""
    for part in (name or "").split():
        if part.startswith(NAME_TAG):
            return part[len(NAME_TAG):]
    return None


KUBELET_PREFIX = "v1.32.0-k8n."


def kubelet_version() -> str:
    """What a node agent reports as ``status.nodeInfo.kubeletVersion``."""
    return f"{KUBELET_PREFIX}{bus.__version__}"


def version_of_kubelet(text: str | None) -> str | None:
    """The k8n version in a kubeletVersion (None: not a k8n agent's)."""
    if text and text.startswith(KUBELET_PREFIX):
        return text[len(KUBELET_PREFIX):]
    return None


def kubelet_error(kubelet: str | None) -> str | None:
    """Why the API server refuses a Node whose agent reports ``kubelet`` (None: it may)."""
    version = version_of_kubelet(kubelet)
    if version is None:
        return None  # not a k8n agent (a hollow node, a test's Node): nothing to compare
    verdict = check(roles.NODE, version, bus.__version__)
    return None if verdict.ok else verdict.reason


async def verify(nc, role: str) -> None:
    """Ask an API server's version on ``nc`` and raise :class:`SkewError` when ``role`` at this version may not
    work with it. Nothing answering within :data:`ASK_TIMEOUT` (no API server yet, or this is the first replica):
    not checked."""
    import nats.errors

    from bus import codec, subjects
    from bus.connect import identity_of

    try:
        msg = await nc.request(subjects.version_subject(identity_of(nc).token), codec.pack({}), timeout=ASK_TIMEOUT)
        info = codec.unpack(msg.data).get("body") or {}
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
        return
    except Exception as e:  # noqa: BLE001 - a refused or odd answer: the request's own code reports it
        log.debug("version check skipped: %s", e)
        return
    theirs = str(info.get("k8nVersion") or "")
    if not theirs:
        return
    verdict = check(role, bus.__version__, theirs)
    if not verdict.ok:
        raise SkewError(f"version skew: {verdict.reason}")
