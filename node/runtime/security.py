"""A pod's ``securityContext`` and host namespaces as Docker create arguments (pure: no Docker calls here).

- Pod-level ``runAsUser``, ``runAsGroup``, ``runAsNonRoot``, ``seccompProfile`` (and the SELinux, AppArmor and
  Windows options) are defaults for every container; a container's own value wins (Kubernetes'
  ``DetermineEffectiveSecurityContext``).
- ``runAsUser``/``runAsGroup`` → Docker ``user`` (``uid[:gid]``; a group alone keeps the image's user);
  ``supplementalGroups`` and ``fsGroup`` → ``group_add``; ``capabilities`` → ``cap_add``/``cap_drop`` (``ALL``
  allowed); ``privileged``; ``allowPrivilegeEscalation: false`` → ``no-new-privileges``;
  ``readOnlyRootFilesystem`` → ``read_only``; ``seccompProfile`` Unconfined → ``seccomp=unconfined``, RuntimeDefault
  *and unset* → Docker's default profile (k8n's choice: Kubernetes' unset is Unconfined unless the kubelet's
  ``seccompDefault`` is on).
- ``runAsNonRoot`` is checked against the image's configured user as the kubelet's ``verifyRunAsNonRoot`` does.
- The sandbox (pause) holds the pod's namespaces: the host's network/PID/IPC namespaces with ``hostNetwork``,
  ``hostPID``, ``hostIPC``; otherwise its own network namespace and a shareable IPC namespace that every app
  container joins (as Kubernetes pods share IPC), and the PID namespace joined only with ``shareProcessNamespace``.
  The pod's sysctls are set on the sandbox, in its namespaces; only the kubelet's safe set is allowed.
"""

from __future__ import annotations

from typing import Any

from bus.validation import CAPABILITY_BITS, capability_name, sysctl_dots, sysctl_namespace

# the kubelet's safe sysctls (pkg/kubelet/sysctl/safe_sysctls.go), each namespaced by the kernel
SAFE_SYSCTLS = frozenset((
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start", "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes",
))
SYSCTL_FORBIDDEN = "SysctlForbidden"
_POD_DEFAULTS = ("seLinuxOptions", "windowsOptions", "runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile",
                 "appArmorProfile")


def _spec(pod: dict) -> dict:
    return pod.get("spec") or {}


def effective(pod: dict, container: dict) -> dict[str, Any]:
    """The container's securityContext with the pod's defaults filled in."""
    out = {k: v for k, v in (_spec(pod).get("securityContext") or {}).items() if k in _POD_DEFAULTS and v is not None}
    out.update({k: v for k, v in (container.get("securityContext") or {}).items() if v is not None})
    return out


def pod_desc(pod: dict) -> str:
    """The kubelet's ``format.Pod``: ``name_namespace(uid)``."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name', '')}_{meta.get('namespace') or 'default'}({meta.get('uid', '')})"


def _go_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def image_user(config_user: str | None) -> tuple[int | None, str]:
    """``(uid, name)`` of an image's ``Config.User`` (containerd's getUserFromImage; unset is root, as the
    kubelet's getImageUser treats it): ``"1000:1000"`` → (1000, ""), ``"nobody"`` → (None, "nobody")."""
    user = (config_user or "").split(":", 1)[0]
    if not user:
        return 0, ""
    try:
        return int(user), ""
    except ValueError:
        return None, user


def needs_image_user(pod: dict, container: dict) -> bool:
    """Whether ``container_args`` needs the image's user (runAsNonRoot to verify, or a group without a user)."""
    sc = effective(pod, container)
    return sc.get("runAsUser") is None and (bool(sc.get("runAsNonRoot")) or sc.get("runAsGroup") is not None)


def run_as_non_root_error(pod: dict, container: dict, config_user: str | None) -> str | None:
    """The kubelet's verifyRunAsNonRoot message, or None when the container may start."""
    sc = effective(pod, container)
    if not sc.get("runAsNonRoot"):
        return None
    where = f"(pod: {_go_quote(pod_desc(pod))}, container: {container.get('name', '')})"
    if sc.get("runAsUser") is not None:
        return f"container's runAsUser breaks non-root policy {where}" if sc["runAsUser"] == 0 else None
    uid, name = image_user(config_user)
    if uid is None:
        return f"container has runAsNonRoot and image has non-numeric user ({name}), cannot verify user is " \
               f"non-root {where}"
    if uid == 0:
        return f"container has runAsNonRoot and image will run as root {where}"
    if not 0 <= uid <= 2147483647:
        return f"container has runAsNonRoot and image has an invalid user id ({uid}). (Must be 1-(2147483647)): " \
               f"must be between 0 and 2147483647, inclusive {where}"
    return None


def _caps(names: list[str] | None) -> list[str]:
    return list(dict.fromkeys(c for c in (capability_name(str(n)) for n in names or ()) if c))


RAW_HOST_FIELDS = ("MaskedPaths", "ReadonlyPaths")  # host config fields the docker SDK has no argument for
DOCKER_KNOWN_CAPS = 38  # capabilities 0-37 (to AUDIT_READ): every Docker engine knows them (20.10 refuses PERFMON)


def node_capabilities(status: str, cap_last_cap: str) -> list[str] | None:
    """The capabilities this node can grant (its bounding set, from ``/proc/self/status``) when they are fewer than
    the kernel has (``/proc/sys/kernel/cap_last_cap``); None when it can grant them all."""
    bnd = next((int(line.split()[1], 16) for line in status.splitlines() if line.startswith("CapBnd:")), None)
    last = int(cap_last_cap.strip() or 0)
    if bnd is None or bnd & ((1 << (last + 1)) - 1) == (1 << (last + 1)) - 1:
        return None
    return [name for bit, name in enumerate(CAPABILITY_BITS[:DOCKER_KNOWN_CAPS]) if bnd & 1 << bit]


def _privileged(node_caps: list[str] | None) -> dict[str, Any]:
    """Docker's privileged mode asks for every capability the kernel knows and fails on a node whose bounding set
    lacks some (containerd grants the ones it has): there, every capability the node has, no seccomp, AppArmor or
    masked paths, and every device allowed."""
    if node_caps is None:
        return {"privileged": True}
    return {"cap_add": list(node_caps), "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
            "device_cgroup_rules": ["a *:* rwm"], "MaskedPaths": [], "ReadonlyPaths": []}


def container_args(pod: dict, container: dict, config_user: str | None = None,
                   node_caps: list[str] | None = None) -> tuple[dict, dict]:
    """``(create kwargs, host config kwargs)`` for a container's security settings. ``config_user`` is the
    image's ``Config.User`` (only needed when ``needs_image_user``); ``node_caps`` is ``node_capabilities``.
    ``MaskedPaths``/``ReadonlyPaths`` are host config fields the docker SDK has no argument for."""
    sc = effective(pod, container)
    psc = _spec(pod).get("securityContext") or {}
    create: dict[str, Any] = {}
    host: dict[str, Any] = {}
    uid, gid = sc.get("runAsUser"), sc.get("runAsGroup")
    if uid is not None:
        create["user"] = f"{uid}:{gid}" if gid is not None else str(uid)
    elif gid is not None:
        create["user"] = f"{(config_user or '').split(':', 1)[0] or '0'}:{gid}"
    groups = [*(psc.get("supplementalGroups") or ()), *(() if psc.get("fsGroup") is None else (psc["fsGroup"],))]
    if groups:
        host["group_add"] = [str(g) for g in dict.fromkeys(groups)]
    caps = sc.get("capabilities") or {}
    if add := _caps(caps.get("add")):
        host["cap_add"] = add
    if drop := _caps(caps.get("drop")):
        host["cap_drop"] = drop
    opts = []
    if sc.get("privileged"):
        host.update(_privileged(node_caps))
        opts = host.pop("security_opt", [])
        host.pop("cap_drop", None)
    if sc.get("allowPrivilegeEscalation") is False:
        opts.append("no-new-privileges")
    if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        opts.append("seccomp=unconfined")
    if opts:
        host["security_opt"] = list(dict.fromkeys(opts))
    if sc.get("readOnlyRootFilesystem"):
        host["read_only"] = True
    return create, host


def namespaces(pod: dict, sandbox_id: str) -> dict[str, str]:
    """Host config kwargs that put an app container into its pod's namespaces."""
    spec = _spec(pod)
    out = {"network_mode": f"container:{sandbox_id}",
           "ipc_mode": "host" if spec.get("hostIPC") else f"container:{sandbox_id}"}
    if spec.get("hostPID"):
        out["pid_mode"] = "host"
    elif spec.get("shareProcessNamespace"):
        out["pid_mode"] = f"container:{sandbox_id}"
    return out


def sandbox_args(pod: dict, hostname: str) -> tuple[dict, dict]:
    """``(create kwargs, host config kwargs)`` of the pod's sandbox: its namespaces and sysctls. The pause process
    needs no privilege: every capability is dropped and it may not gain any."""
    spec = _spec(pod)
    create: dict[str, Any] = {}
    host: dict[str, Any] = {"ipc_mode": "host" if spec.get("hostIPC") else "shareable", "cap_drop": ["ALL"],
                            "security_opt": ["no-new-privileges"]}
    if spec.get("hostNetwork"):
        host["network_mode"] = "host"  # the node's network and its hostname (Docker refuses a hostname here)
    else:
        create["network_disabled"] = True
        create["hostname"] = hostname
    if spec.get("hostPID"):
        host["pid_mode"] = "host"
    sysctls = {s["name"]: str(s.get("value", "")) for s in (spec.get("securityContext") or {}).get("sysctls") or ()
               if isinstance(s, dict) and s.get("name")}
    if sysctls:
        host["sysctls"] = sysctls
    return create, host


def forbidden_sysctl(pod: dict) -> str | None:
    """The kubelet's sysctl admission: the message for the first sysctl outside the safe set (or namespaced with
    a namespace the pod shares with the host), None when every sysctl is allowed."""
    spec = _spec(pod)
    for s in (spec.get("securityContext") or {}).get("sysctls") or ():
        name = sysctl_dots(str((s or {}).get("name", "")))
        if name not in SAFE_SYSCTLS:
            return f"forbidden sysctl: {_go_quote(name)} not allowlisted"
        ns = sysctl_namespace(name)
        if (ns == "ipc" and spec.get("hostIPC")) or (ns == "net" and spec.get("hostNetwork")):
            return f"forbidden sysctl: {_go_quote(name)} not allowed with host {ns} enabled"
    return None
