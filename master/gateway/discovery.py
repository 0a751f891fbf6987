"""API discovery documents from ``bus.resources.RESOURCES``: the aggregated form (apidiscovery.k8s.io v2
and v2beta1, what kubectl 1.32 asks for first) and the classic one (APIVersions, APIGroupList,
APIResourceList)."""

from __future__ import annotations

from bus.resources import METRICS_RESOURCES, RESOURCES, Resource, custom_resources

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
AGGREGATED = "application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"
DISCOVERY_VERSIONS = ("v2", "v2beta1")

# Groups served with no resources of their own (none now: policy/v1, which kubectl drain looks for before it uses
# the pods/eviction subresource, serves PodDisruptionBudgets).
EXTRA_GROUPS: dict[str, list[str]] = {}

# subresource -> (responseKind group, version, kind or None for the parent's kind, verbs)
_SUBRESOURCES: dict[str, tuple[str | None, str | None, str | None, list[str]]] = {
    "status": (None, None, None, ["get", "patch", "update"]),
    "scale": ("autoscaling", "v1", "Scale", ["get", "patch", "update"]),
    "binding": ("", "v1", "Binding", ["create"]),
    "eviction": ("policy", "v1", "Eviction", ["create"]),
    "log": ("", "v1", "Pod", ["get"]),
    "exec": ("", "v1", "PodExecOptions", ["create", "get"]),
    "portforward": ("", "v1", "PodPortForwardOptions", ["create", "get"]),
    "token": ("authentication.k8s.io", "v1", "TokenRequest", ["create"]),
}
CREATE_ONLY = ["create"]
READ_ONLY = ["get", "list"]  # metrics.k8s.io (master/gateway/metricsapi.py)


def verbs_of(r: Resource) -> list[str]:
    """What a resource serves: everything, get and list for the metrics, or only create for one that is never stored
    (reviews)."""
    if r in METRICS_RESOURCES:
        return READ_ONLY
    return VERBS if r.stored else CREATE_ONLY


def _all() -> list[Resource]:
    """Every resource served now: the built-in ones, metrics.k8s.io's, and each custom resource at each version
    its definition serves (in Kubernetes' version priority, so the first is the preferred one)."""
    out = list(RESOURCES + METRICS_RESOURCES)
    for r in custom_resources():
        served = [v.name for v in r.custom.versions if v.served]
        out.extend(r.custom.at_version(r, v) for v in sorted(served, key=version_priority))
    return out


def version_priority(v: str) -> tuple:
    """Kubernetes' version order (apimachinery's CompareKubeAwareVersionStrings): GA before beta before alpha,
    higher numbers first, anything else last, alphabetically."""
    import re

    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
    if m is None:
        return (3, 0, 0, v)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    return ({None: 0, "beta": 1, "alpha": 2}[stage], -major, -minor, v)


def groups() -> dict[str, list[str]]:
    """group name -> versions served ('' is the core group), in a stable order."""
    out: dict[str, list[str]] = {}
    for r in _all():
        vs = out.setdefault(r.group, [])
        if r.version not in vs:
            vs.append(r.version)
    for g, vs in EXTRA_GROUPS.items():
        out.setdefault(g, list(vs))
    return out


def resources_of(group: str, version: str) -> list[Resource]:
    return [r for r in _all() if r.group == group and r.version == version]


def _sub_kind(r: Resource, sub: str) -> tuple[str, str, str, list[str]]:
    g, v, k, verbs = _SUBRESOURCES.get(sub, (None, None, None, ["get"]))
    return (r.group if g is None else g, r.version if v is None else v, k or r.kind, verbs)


# ---- aggregated ------------------------------------------------------------------------------------

def _aggregated_resource(r: Resource) -> dict:
    d: dict = {"resource": r.plural, "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
               "scope": "Namespaced" if r.namespaced else "Cluster", "singularResource": r.singular,
               "verbs": verbs_of(r)}
    if r.short_names:
        d["shortNames"] = list(r.short_names)
    if r.categories:
        d["categories"] = list(r.categories)
    subs = []
    for s in r.subresources:
        g, v, k, verbs = _sub_kind(r, s)
        subs.append({"subresource": s, "responseKind": {"group": g, "version": v, "kind": k}, "verbs": verbs})
    if subs:
        d["subresources"] = subs
    return d


def aggregated(core: bool, version: str = "v2") -> dict:
    """``/api`` (core) or ``/apis`` as an APIGroupDiscoveryList."""
    items = []
    for g, vs in groups().items():
        if (g == "") != core:
            continue
        items.append({"metadata": {"name": g},
                      "versions": [{"version": v, "freshness": "Current",
                                    "resources": [_aggregated_resource(r) for r in resources_of(g, v)]}
                                   for v in vs]})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{version}",
            "metadata": {}, "items": items}


def wanted_aggregated(accept: str) -> str | None:
    """The apidiscovery version the Accept header asks for first, if any."""
    for part in accept.split(","):
        params = {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in part.split(";")[1:])}
        if params.get("g") == "apidiscovery.k8s.io" and params.get("as") == "APIGroupDiscoveryList" \
                and params.get("v") in DISCOVERY_VERSIONS:
            return params["v"]
    return None


# ---- classic ---------------------------------------------------------------------------------------

def api_versions() -> dict:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}


def _group_doc(g: str, vs: list[str]) -> dict:
    versions = [{"groupVersion": f"{g}/{v}", "version": v} for v in vs]
    return {"name": g, "versions": versions, "preferredVersion": versions[0]}


def api_group_list() -> dict:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group_doc(g, vs) for g, vs in groups().items() if g]}


def api_group(group: str) -> dict | None:
    vs = groups().get(group)
    if not group or vs is None:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, vs)}


def api_resource_list(group: str, version: str) -> dict | None:
    if version not in groups().get(group, []):
        return None
    out = []
    for r in resources_of(group, version):
        d = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
             "verbs": verbs_of(r)}
        if r.short_names:
            d["shortNames"] = list(r.short_names)
        if r.categories:
            d["categories"] = list(r.categories)
        out.append(d)
        for s in r.subresources:
            g, v, k, verbs = _sub_kind(r, s)
            sd = {"name": f"{r.plural}/{s}", "singularName": "", "namespaced": r.namespaced, "kind": k,
                  "verbs": verbs}
            if (g, v) != (r.group, r.version):
                sd["group"], sd["version"] = g, v
            out.append(sd)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}
