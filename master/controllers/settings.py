"""The controller manager's settings: one typed, documented field per setting (``bus.settings``).

Each is read once when the controller manager starts — the option given to it, else the
environment variable ``K8N_<NAME>`` (``K8N_NODE_MONITOR_GRACE_PERIOD=40``), else the default — and
handed to the controllers as ``ctx.settings``. The README's table is generated from these fields
together with the leader-election ones (``master.leaderelection.ElectionConfig``) by ``master.settings``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

from bus import settings as _s
from bus.settings import setting

DEFAULT_CLUSTER_CIDR = "10.244.0.0/16"
DEFAULT_RECLAIM_ROOTS = ""
# Never a reclaim root, nor inside one: what a Delete or Recycle reclaim could wreck the host with.
SYSTEM_DIRECTORIES = ("/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media",
                      "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var",
                      "/var/lib", "/var/lib/docker", "/var/lib/containerd", "/var/log", "/var/run", "/var/tmp")


@dataclass(frozen=True)
class ControllerManagerSettings:
    node_monitor_grace_period: float = setting(
        8.0, "seconds a node's Lease may go unrenewed before the node is Ready=Unknown (and tainted unreachable)")
    default_toleration_seconds: float = setting(
        5.0, "seconds pods without a matching toleration stay on an unreachable or not-ready node before eviction")
    node_eviction_rate: float = setting(10.0, "pod evictions per second while few nodes are unhealthy")
    secondary_node_eviction_rate: float = setting(
        0.1, "pod evictions per second when more than a third of the nodes (at least two) are unhealthy")
    unhealthy_zone_threshold: float = setting(
        0.55, "fraction of unhealthy nodes above which evictions stop (the control plane is cut off, not the nodes)")
    podgc_period: float = setting(2.0, "seconds between the pod garbage collector's passes")
    podgc_orphan_quarantine: float = setting(
        5.0, "seconds a pod's node must be missing before the pod is force-deleted")
    job_backoff_initial: float = setting(
        10.0, "seconds of the first Job pod-failure backoff (doubles with each failure since the last success)")
    hpa_sync_period: float = setting(15.0, "seconds between two evaluations of a HorizontalPodAutoscaler")
    resourcequota_sync_period: float = setting(
        30.0, "seconds between two full recalculations of a ResourceQuota's usage (it is also recalculated when the "
        "objects it counts change)")
    hpa_downscale_stabilization: float = setting(
        300.0, "seconds of the scale-down stabilization window of an HPA that sets none")
    pv_reclaim_roots: str = setting(
        DEFAULT_RECLAIM_ROOTS, "`:`-separated absolute directories: the only places a Delete/Recycle reclaim "
        "touches (strictly below one); none by default, so such a reclaim marks its volume Failed. `/`, system "
        "directories (`/etc`, `/usr`, `/var`, `/tmp`, …) and the data directory are refused")
    cluster_cidr: str = setting(DEFAULT_CLUSTER_CIDR, "the range node IPAM gives each node a /24 podCIDR of")
    replicaset_workers: int = setting(
        5, "concurrent reconciles of the ReplicaSet (and ReplicationController) controller")
    deployment_workers: int = setting(4, "concurrent reconciles of the Deployment controller")
    gc_workers: int = setting(4, "concurrent reconciles of the garbage collector")
    endpoints_workers: int = setting(4, "concurrent reconciles of the Endpoints and the EndpointSlice controllers")
    root_ca_file: str = setting(
        "", "the cluster CA pods trust the API with (`kube-root-ca.crt`, `ca.crt` of token Secrets); empty: "
        "`<data dir>/pki/ca.crt`, the gateway's CA")

    def __post_init__(self) -> None:
        for root in self.reclaim_roots:
            if not os.path.isabs(root):
                raise _s.SettingsError(f"K8N_PV_RECLAIM_ROOTS: {root!r} is not an absolute path")
            if os.path.normpath(root) in SYSTEM_DIRECTORIES:
                raise _s.SettingsError(f"K8N_PV_RECLAIM_ROOTS: {root!r} is a system directory; name a directory "
                                       f"made for volumes, such as /srv/k8n-volumes")

    @classmethod
    def load(cls, options: Mapping[str, Any] | None = None,
             environ: Mapping[str, str] | None = None) -> "ControllerManagerSettings":
        """From ``options`` (by option name), else the environment, else the defaults; a value that
        does not parse raises ``bus.settings.SettingsError`` naming its variable."""
        return _s.load(cls, options, environ)

    @property
    def reclaim_roots(self) -> list[str]:
        return [r for r in self.pv_reclaim_roots.split(":") if r]
