"""The pod's ``/etc/hosts`` and ``/etc/resolv.conf``, written by the runtime and bind-mounted into every app
container, as the kubelet does (the sandbox runs with networking disabled, so Docker writes neither).

resolv.conf follows the kubelet's ``dnsPolicy`` rules (pkg/kubelet/network/dns): ``ClusterFirst`` (the
default) points at the cluster DNS with the search path ``<ns>.svc.<domain> svc.<domain> <domain>`` (then the
host's) and ``options ndots:5``; without a cluster DNS it falls back to ``Default``, the host's file (loopback
nameservers dropped, as Docker copies it); ``None`` starts empty. ``spec.dnsConfig`` is then merged in:
nameservers and searches appended without duplicates, options by name (the pod's value wins). At most 3
nameservers and 32 search domains are kept, like the kubelet.

/etc/hosts is the kubelet's: the localhost entries, then the pod's IP with its hostname (``<hostname>.<subdomain>
.<ns>.svc.<domain>`` first when ``spec.subdomain`` is set) and the ``hostAliases``; a ``hostNetwork`` pod gets the
node's /etc/hosts and its ``hostAliases``."""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

HOSTS, RESOLV = "/etc/hosts", "/etc/resolv.conf"
_HOSTS_BASE = ("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
               "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
_DEFAULT_NAMESERVERS = ("8.8.8.8", "8.8.4.4")  # Docker's fallback when the host only has local resolvers
DEFAULT_DOMAIN = "cluster.local"
MAX_NAMESERVERS, MAX_SEARCHES = 3, 32
CLUSTER_OPTIONS = ("ndots:5",)


def resolv_conf(host_resolv: str) -> str:
    """The host's resolv.conf without loopback nameservers (useless inside a pod), as Docker copies it."""
    lines, servers = [], 0
    for line in host_resolv.splitlines():
        parts = line.split()
        if parts[:1] == ["nameserver"] and len(parts) > 1:
            try:
                if ipaddress.ip_address(parts[1].split("%")[0]).is_loopback:
                    continue
            except ValueError:
                pass
            servers += 1
        lines.append(line)
    if not servers:
        lines += [f"nameserver {ns}" for ns in _DEFAULT_NAMESERVERS]
    return "\n".join(lines) + "\n"


def _parse(text: str) -> tuple[list[str], list[str], list[str]]:
    """(nameservers, searches, options) of a resolv.conf; the last ``search``/``domain`` line wins."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(parts) < 2:
            continue
        if parts[0] == "nameserver":
            servers.append(parts[1])
        elif parts[0] in ("search", "domain"):
            searches = parts[1:]
        elif parts[0] == "options":
            options += parts[1:]
    return servers, searches, options


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def _merge_options(base: list[str], extra: list[dict]) -> list[str]:
    """kubelet mergeDNSOptions: by option name, the pod's dnsConfig value replaces the existing one."""
    merged: dict[str, str | None] = {}
    for opt in base:
        name, _, value = opt.partition(":")
        merged[name] = value if value else None
    for opt in extra:
        if isinstance(opt, dict) and opt.get("name"):
            merged[str(opt["name"])] = None if opt.get("value") in (None, "") else str(opt["value"])
    return [name if value is None else f"{name}:{value}" for name, value in merged.items()]


def pod_resolv_conf(pod: dict, host_resolv: str, nameserver: str | None,
                    cluster_domain: str = DEFAULT_DOMAIN) -> str:
    """The pod's resolv.conf for its ``dnsPolicy`` and ``dnsConfig`` (``nameserver``: the cluster DNS
    address, None when the node has none)."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not spec.get("hostNetwork")):
        policy = "ClusterFirst"
    elif policy == "ClusterFirst":  # hostNetwork pods with ClusterFirst get the host's DNS
        policy = "Default"
    if policy == "ClusterFirst" and not nameserver:
        policy = "Default"  # the kubelet's fallback when no cluster DNS is configured
    config = spec.get("dnsConfig") or {}
    if policy == "Default" and not config:
        return resolv_conf(host_resolv)
    host_servers, host_searches, host_options = _parse(resolv_conf(host_resolv))
    if policy == "ClusterFirst":
        ns = (pod.get("metadata") or {}).get("namespace") or "default"
        servers = [nameserver or ""]
        searches = [f"{ns}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain, *host_searches]
        options = list(CLUSTER_OPTIONS)
    elif policy == "Default":
        servers, searches, options = host_servers, host_searches, host_options
    else:  # None
        servers, searches, options = [], [], []
    servers = _unique(servers + [str(s) for s in config.get("nameservers") or []])[:MAX_NAMESERVERS]
    searches = _unique(searches + [str(s) for s in config.get("searches") or []])[:MAX_SEARCHES]
    options = _merge_options(options, config.get("options") or [])
    lines = [f"nameserver {s}" for s in servers]
    if searches:
        lines.append("search " + " ".join(searches))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def pod_hostname(pod: dict) -> str:
    """``spec.hostname`` or the pod name, at most 63 characters, no trailing ``-``/``.`` (the kubelet's)."""
    spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
    return (spec.get("hostname") or meta.get("name") or "")[:63].rstrip("-.")


def pod_hosts(pod: dict | None, pod_ip: str = "", cluster_domain: str = DEFAULT_DOMAIN,
              host_hosts: str = HOSTS) -> str:
    """The pod's /etc/hosts: localhost entries, ``<pod IP> [<fqdn>] <hostname>``, then the hostAliases. A
    ``hostNetwork`` pod gets the node's own file (``host_hosts``) with the hostAliases, as the kubelet does."""
    text = _HOSTS_BASE
    if pod is None:
        return text
    spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
    hostname = pod_hostname(pod)
    if spec.get("hostNetwork"):
        try:
            text = Path(host_hosts).read_text()
        except OSError:
            pass
        text = text if text.endswith("\n") or not text else text + "\n"
    elif pod_ip and hostname:
        names = [hostname]
        if spec.get("subdomain"):
            ns = meta.get("namespace") or "default"
            names.insert(0, f"{hostname}.{spec['subdomain']}.{ns}.svc.{cluster_domain}")
        text += f"{pod_ip}\t{chr(9).join(names)}\n"
    aliases = [a for a in spec.get("hostAliases") or [] if isinstance(a, dict) and a.get("ip")]
    if aliases:
        text += "\n# Entries added by HostAliases.\n"
        text += "".join(f"{a['ip']}\t{chr(9).join(str(h) for h in a.get('hostnames') or [])}\n" for a in aliases)
    return text


def write(pod_dir: Path, host_resolv_path: str = RESOLV, pod: dict | None = None, *, nameserver: str | None = None,
          cluster_domain: str = DEFAULT_DOMAIN, pod_ip: str = "") -> dict[str, str]:
    """Write the files (without ``pod``: the host's resolv.conf and localhost-only hosts); returns target →
    source for the bind mounts."""
    pod_dir.mkdir(parents=True, exist_ok=True)
    try:
        host_resolv = Path(host_resolv_path).read_text()
    except OSError:
        host_resolv = ""
    resolv = resolv_conf(host_resolv) if pod is None else pod_resolv_conf(pod, host_resolv, nameserver,
                                                                          cluster_domain)
    (pod_dir / "hosts").write_text(pod_hosts(pod, pod_ip, cluster_domain))
    (pod_dir / "resolv.conf").write_text(resolv)
    return paths(pod_dir)


def write_hosts(pod_dir: Path, pod: dict, pod_ip: str, cluster_domain: str = DEFAULT_DOMAIN) -> None:
    """Rewrite /etc/hosts in place (same inode: containers already bind-mounting it see the change) once the
    pod's IP is known."""
    with open(pod_dir / "hosts", "w") as f:
        f.write(pod_hosts(pod, pod_ip, cluster_domain))


def paths(pod_dir: Path) -> dict[str, str]:
    return {HOSTS: str(pod_dir / "hosts"), RESOLV: str(pod_dir / "resolv.conf")}


def remove(pod_dir: Path) -> None:
    shutil.rmtree(pod_dir, ignore_errors=True)
