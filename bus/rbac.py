"""RBAC (rbac.authorization.k8s.io/v1) as Kubernetes evaluates it: the authorizer, the words of its 403s, and
the escalation checks that guard writes of roles and bindings. Pure logic over plain (stored-form) dicts; the one
thing that touches the bus is :class:`InformerRuleSource`, which reads the four kinds through informers.

Who calls what (the API server, and the gateway for its own checks; enforcement is wired there, not here):

- Per request: build :class:`Attributes` (``Attributes.for_resource`` / ``Attributes.for_path``), call
  ``authorizer.authorize(attrs, body)`` and on anything but ``decision.allowed`` answer
  ``forbidden_error(attrs, decision.reason)`` (an ``ApiError`` 403 with Kubernetes' message and details). The
  authorizer is typically ``UnionAuthorizer(NodeAuthorizer(graph), RBACAuthorizer(source))`` (Kubernetes'
  ``--authorization-mode=Node,RBAC``; members of ``system:masters`` are always allowed, as by Kubernetes'
  privileged-group authorizer).
- Writes of roles and bindings (create/update, after validation): ``msg = await check_rbac_write(authorizer,
  user, res.plural, namespace, obj, role_lookup, old=stored)``; a message is a 403:
  ``forbidden_write_error(res.plural, name, msg)``. ``role_lookup(kind, namespace, name)`` returns the stored
  Role/ClusterRole dict or None (sync or async).
- Updates of bindings: ``bus.validation.validate_update`` already rejects a changed roleRef
  (``roleRef: Invalid value: ...: cannot change roleRef``) using :func:`roleref_changed`.
- SelfSubjectRulesReview: ``subject_rules_review(authorizer, user, namespace)`` gives the ``status`` to return.

Decisions are dict lookups plus a scan of the rules that apply to the user: :class:`InformerRuleSource` files
every binding under its subjects (user, group, service account), and :class:`RBACAuthorizer` keeps the compiled
rules per (user, groups, namespace) until any of the four kinds changes.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Mapping, Protocol

from bus.authn import SERVICEACCOUNT_USER_PREFIX, SYSTEM_MASTERS, UserInfo
from bus.errors import ApiError
from bus.history import HISTORY
from bus.labels import selector_from_label_selector

GROUP = "rbac.authorization.k8s.io"
ALL = "*"  # VerbAll, APIGroupAll, ResourceAll, NonResourceAll
USER, GROUP_KIND, SERVICE_ACCOUNT = "User", "Group", "ServiceAccount"
ROLE, CLUSTER_ROLE = "Role", "ClusterRole"
ROLE_RESOURCES = {ROLE: "roles", CLUSTER_ROLE: "clusterroles"}
BINDING_RESOURCES = ("rolebindings", "clusterrolebindings")
RULE_FIELDS = ("apiGroups", "resources", "nonResourceURLs", "resourceNames", "verbs")

# Kubernetes' ConfirmNoEscalation target for an aggregationRule: "* on *.*" and every non-resource URL.
FULL_AUTHORITY: tuple[dict, ...] = (
    {"verbs": [ALL], "apiGroups": [ALL], "resources": [ALL]},
    {"verbs": [ALL], "nonResourceURLs": [ALL]},
)
AGGREGATION_MESSAGE = "must have cluster-admin privileges to use the aggregationRule"


# ---- request attributes and decisions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attributes:
    """What is asked (Kubernetes' ``authorizer.Attributes``). ``namespace`` is "" at cluster scope; ``path`` is
    the URL of a non-resource request (``resource_request=False``)."""

    user: UserInfo
    verb: str
    namespace: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    resource_request: bool = True
    path: str = ""

    @classmethod
    def for_resource(cls, user: UserInfo, verb: str, resource: Any, namespace: str | None = "",
                     name: str | None = "", subresource: str | None = "") -> "Attributes":
        """``resource`` is a ``bus.resources.Resource`` (its group and plural are used) or a plural of the core
        group."""
        plural = getattr(resource, "plural", resource)
        group = getattr(resource, "group", "")
        if subresource == HISTORY:  # an object's history (bus.history) is read with the right to read the object
            subresource = ""
        return cls(user, verb, namespace or "", group, plural, subresource or "", name or "", True, "")

    @classmethod
    def for_path(cls, user: UserInfo, verb: str, path: str) -> "Attributes":
        """A non-resource request; ``verb`` is the lowercased HTTP method (``get``, ``post``, ``put``, …)."""
        return cls(user, verb, resource_request=False, path=path)


@dataclass(frozen=True, slots=True)
class Decision:
    """An authorizer's answer. ``allowed``; else ``denied`` (no later authorizer may allow) or no opinion (the
    next authorizer decides; the request is forbidden when none allows). ``reason`` explains either."""

    allowed: bool
    reason: str = ""
    denied: bool = False

    @property
    def no_opinion(self) -> bool:
        return not self.allowed and not self.denied

    @property
    def verdict(self) -> str:
        return "Allow" if self.allowed else "Deny" if self.denied else "NoOpinion"


ALLOWED = Decision(True)
NO_OPINION = Decision(False)


def allow(reason: str = "") -> Decision:
    return Decision(True, reason) if reason else ALLOWED


def no_opinion(reason: str = "") -> Decision:
    return Decision(False, reason) if reason else NO_OPINION


def deny(reason: str = "") -> Decision:
    return Decision(False, reason, True)


class Authorizer(Protocol):
    def authorize(self, attrs: Attributes, body: Any = None) -> Decision: ...


class UnionAuthorizer:
    """Kubernetes' union authorizer: the first Allow or Deny wins; no opinions go on to the next one, and their
    reasons are joined (with newlines) into the final no-opinion's reason."""

    def __init__(self, *authorizers: Authorizer) -> None:
        self.authorizers = authorizers

    def authorize(self, attrs: Attributes, body: Any = None) -> Decision:
        reasons: list[str] = []
        for a in self.authorizers:
            d = a.authorize(attrs, body)
            if not d.no_opinion:
                return d
            if d.reason:
                reasons.append(d.reason)
        return no_opinion("\n".join(reasons))

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[dict], list[dict], bool]:
        """The union of the members' rules (those that list rules); incomplete if any member's are."""
        res, nonres, incomplete, errs = self.review_rules(user, namespace)
        return res, nonres, incomplete or bool(errs)

    def review_rules(self, user: UserInfo, namespace: str) -> tuple[list[dict], list[dict], bool, list[str]]:
        res: list[dict] = []
        nonres: list[dict] = []
        incomplete = False
        errs: list[str] = []
        for a in self.authorizers:
            fn = getattr(a, "review_rules", None)
            if fn is None:
                continue
            r, n, inc, e = fn(user, namespace)
            res.extend(r)
            nonres.extend(n)
            incomplete = incomplete or inc
            errs.extend(e)
        return res, nonres, incomplete, errs

    def policy_rules_for(self, user: UserInfo, namespace: str) -> tuple[list[dict], list[str]]:
        for a in self.authorizers:
            fn = getattr(a, "policy_rules_for", None)
            if fn is not None:
                return fn(user, namespace)
        return [], []


# ---- the words of a 403 (responsewriters.ForbiddenStatusError + apierrors.NewForbidden) -----------------------

_SANITIZE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def _go_quote(s: str) -> str:
    """Go's ``%q`` of a string (strconv.Quote)."""
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r", "\a": "\\a", "\b": "\\b", "\f": "\\f",
                        "\v": "\\v"}.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x80 else
                                                 f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}"))
    out.append('"')
    return "".join(out)


go_quote = _go_quote


def _go_quote_list(items: Iterable[str]) -> str:
    """Go's ``%q`` of a ``[]string``: ``["a" "b"]``."""
    return "[" + " ".join(_go_quote(s) for s in items) + "]"


def denial_message(attrs: Attributes) -> str:
    """``User "x" cannot list resource "pods" in API group "" in the namespace "default"`` (and the cluster-scope
    and non-resource forms), as Kubernetes' responsewriters.forbiddenMessage."""
    name = attrs.user.name if attrs.user is not None else ""
    if not attrs.resource_request:
        return f"User {_go_quote(name)} cannot {attrs.verb} path {_go_quote(attrs.path)}"
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    if attrs.namespace:
        return (f"User {_go_quote(name)} cannot {attrs.verb} resource {_go_quote(resource)} in API group "
                f"{_go_quote(attrs.api_group)} in the namespace {_go_quote(attrs.namespace)}")
    return (f"User {_go_quote(name)} cannot {attrs.verb} resource {_go_quote(resource)} in API group "
            f"{_go_quote(attrs.api_group)} at the cluster scope")


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def forbidden_status_message(resource: str, group: str, name: str, err: str) -> str:
    """apierrors.NewForbidden's message: ``pods "web" is forbidden: …``, ``pods is forbidden: …`` without a
    name, ``forbidden: …`` without a resource."""
    if not resource and not group:
        return f"forbidden: {err}"
    q = _qualified(resource, group)
    return f"{q} {_go_quote(name)} is forbidden: {err}" if name else f"{q} is forbidden: {err}"


def forbidden_message(attrs: Attributes, reason: str = "") -> str:
    """The whole message of the 403 Kubernetes answers for ``attrs``, e.g. ``secrets is forbidden: User
    "system:serviceaccount:demo:default" cannot list resource "secrets" in API group "" in the namespace
    "kube-system"``; a non-empty ``reason`` (an authorizer's) is appended after ``": "``."""
    msg = denial_message(attrs).translate(_SANITIZE)
    err = f"{msg}: {reason}" if reason else msg
    if not attrs.resource_request:
        return forbidden_status_message("", "", "", err)
    return forbidden_status_message(attrs.resource, attrs.api_group, attrs.name, err)


def _forbidden(resource: str, group: str, name: str, message: str) -> ApiError:
    details = {k: v for k, v in (("name", name), ("group", group), ("kind", resource)) if v}
    return ApiError(403, message, "Forbidden", details)


def forbidden_error(attrs: Attributes, reason: str = "") -> ApiError:
    """The 403 ``ApiError`` (Status with reason Forbidden, details group/kind/name) for a denied request."""
    if not attrs.resource_request:
        return _forbidden("", "", "", forbidden_message(attrs, reason))
    return _forbidden(attrs.resource, attrs.api_group, attrs.name, forbidden_message(attrs, reason))


def forbidden_write_error(resource_plural: str, name: str, message: str, group: str = GROUP) -> ApiError:
    """The 403 for a :func:`check_rbac_write` refusal (``message`` is its whole text)."""
    return _forbidden(resource_plural, group, name, message)


# ---- rules ------------------------------------------------------------------------------------------------------


def _list(rule: Any, key: str) -> list[str]:
    v = rule.get(key) if isinstance(rule, Mapping) else None
    return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []


def rule_dict(rule: Any) -> dict:
    """A PolicyRule as a plain dict with only its non-empty lists (accepts a dict or a pydantic model)."""
    if not isinstance(rule, Mapping):
        dump = getattr(rule, "model_dump", None)
        rule = dump(by_alias=True, exclude_none=True) if dump else {}
    return {k: _list(rule, k) for k in RULE_FIELDS if _list(rule, k)}


class CompiledRule:
    """One PolicyRule, prepared for matching (rbac.RuleAllows)."""

    __slots__ = ("rule", "verbs", "any_verb", "groups", "any_group", "resources", "any_resource", "star_subs",
                 "names", "urls", "url_prefixes", "any_url")

    def __init__(self, rule: Any) -> None:
        self.rule = rule_dict(rule)
        verbs, groups = self.rule.get("verbs", []), self.rule.get("apiGroups", [])
        resources, urls = self.rule.get("resources", []), self.rule.get("nonResourceURLs", [])
        self.verbs = frozenset(verbs)
        self.any_verb = ALL in self.verbs
        self.groups = frozenset(groups)
        self.any_group = ALL in self.groups
        self.resources = frozenset(resources)
        self.any_resource = ALL in self.resources
        self.star_subs = frozenset(r[2:] for r in resources if r.startswith("*/"))
        self.names = frozenset(self.rule.get("resourceNames", []))
        self.urls = frozenset(urls)
        self.any_url = ALL in self.urls
        self.url_prefixes = tuple(u.rstrip("*") for u in urls if u.endswith("*"))

    def allows(self, a: Attributes) -> bool:
        if not (self.any_verb or a.verb in self.verbs):
            return False
        if not a.resource_request:
            if self.any_url or a.path in self.urls:
                return True
            return any(a.path.startswith(p) for p in self.url_prefixes)
        if not (self.any_group or a.api_group in self.groups):
            return False
        if not self.any_resource:
            if a.subresource:
                if f"{a.resource}/{a.subresource}" not in self.resources and a.subresource not in self.star_subs:
                    return False
            elif a.resource not in self.resources:
                return False
        return not self.names or a.name in self.names

    def __repr__(self) -> str:
        return f"CompiledRule({compact_string(self.rule)})"


def rule_allows(attrs: Attributes, rule: Any) -> bool:
    """rbac.RuleAllows for one PolicyRule (dict or model)."""
    return CompiledRule(rule).allows(attrs)


def rules_allow(attrs: Attributes, rules: Iterable[Any]) -> bool:
    return any(CompiledRule(r).allows(attrs) for r in rules)


def compact_string(rule: Any) -> str:
    """rbacv1helpers.CompactString: ``{APIGroups:[""], Resources:["pods"], Verbs:["get" "list"]}``."""
    r = rule_dict(rule)
    parts = [f"{label}:{_go_quote_list(r[key])}" for label, key in (
        ("APIGroups", "apiGroups"), ("Resources", "resources"), ("NonResourceURLs", "nonResourceURLs"),
        ("ResourceNames", "resourceNames"), ("Verbs", "verbs")) if r.get(key)]
    return "{" + ", ".join(parts) + "}"


def rules_equal(a: Any, b: Any) -> bool:
    """Semantic equality of two PolicyRules (absent and empty lists are equal)."""
    return rule_dict(a) == rule_dict(b)


# ---- Covers / escalation (component-helpers' policy_comparator, registry/rbac/validation) -------------------


def breakdown_rule(rule: Any) -> list[dict]:
    """The rule as rules of one verb, one group, one resource and at most one resource name (or one URL)."""
    r = rule_dict(rule)
    out: list[dict] = []
    names = r.get("resourceNames", [])
    for g in r.get("apiGroups", []):
        for res in r.get("resources", []):
            for v in r.get("verbs", []):
                if names:
                    out.extend({"apiGroups": [g], "resources": [res], "verbs": [v], "resourceNames": [n]}
                               for n in names)
                else:
                    out.append({"apiGroups": [g], "resources": [res], "verbs": [v]})
    for url in r.get("nonResourceURLs", []):
        for v in r.get("verbs", []):
            out.append({"nonResourceURLs": [url], "verbs": [v]})
    return out


def _resource_covers_all(owner: list[str], wanted: list[str]) -> bool:
    if ALL in owner or set(wanted) <= set(owner):
        return True
    for path in wanted:
        if path in owner:
            continue
        if "/" not in path:
            return False
        if "*/" + path.split("/", 1)[1] not in owner:
            return False
    return True


def _url_covers(owner: str, sub: str) -> bool:
    return owner == sub or (owner.endswith("*") and sub.startswith(owner.rstrip("*")))


def _rule_covers(owner: dict, sub: dict) -> bool:
    o_verbs, o_groups = owner.get("verbs", []), owner.get("apiGroups", [])
    if not (ALL in o_verbs or set(sub.get("verbs", [])) <= set(o_verbs)):
        return False
    if not (ALL in o_groups or set(sub.get("apiGroups", [])) <= set(o_groups)):
        return False
    if not _resource_covers_all(owner.get("resources", []), sub.get("resources", [])):
        return False
    o_urls = owner.get("nonResourceURLs", [])
    if not all(any(_url_covers(o, u) for o in o_urls) for u in sub.get("nonResourceURLs", [])):
        return False
    o_names, s_names = owner.get("resourceNames", []), sub.get("resourceNames", [])
    if not s_names:
        return not o_names
    return not o_names or set(s_names) <= set(o_names)


def covers(owner_rules: Iterable[Any], requested_rules: Iterable[Any]) -> tuple[bool, list[dict]]:
    """validation.Covers: whether ``owner_rules`` allow everything ``requested_rules`` do, and the broken-down
    requested rules they do not."""
    owners = [rule_dict(r) for r in owner_rules]
    missing = [sub for rule in requested_rules for sub in breakdown_rule(rule)
               if not any(_rule_covers(o, sub) for o in owners)]
    return not missing, missing


def compact_rules(rules: Iterable[Any]) -> list[dict]:
    """CompactRules: rules of one API group and one resource (and nothing else) merged, their verbs appended."""
    out: list[dict] = []
    simple: dict[tuple[str, str], dict] = {}
    for rule in rules:
        r = rule_dict(rule)
        if set(r) - {"verbs"} == {"apiGroups", "resources"} and len(r["apiGroups"]) == 1 and len(r["resources"]) == 1:
            k = (r["apiGroups"][0], r["resources"][0])
            if k in simple:
                simple[k]["verbs"] = simple[k]["verbs"] + r.get("verbs", [])
            else:
                simple[k] = {"apiGroups": list(r["apiGroups"]), "resources": list(r["resources"]),
                             "verbs": list(r.get("verbs", []))}
        else:
            out.append(r)
    return out + list(simple.values())


def aggregate_errors(errs: Iterable[str]) -> str:
    """utilerrors.NewAggregate(errs).Error(): one message as is, several (deduplicated) as ``[a, b]``."""
    uniq = list(dict.fromkeys(errs))
    if not uniq:
        return ""
    return uniq[0] if len(uniq) == 1 else "[" + ", ".join(uniq) + "]"


def escalation_error(user: UserInfo, missing_rules: Iterable[Any], resolution_errors: Iterable[str] = ()) -> str:
    """ConfirmNoEscalation's error text: ``user "bob" (groups=["system:authenticated"]) is attempting to grant
    RBAC permissions not currently held:`` then one compacted missing rule per line (sorted)."""
    lines = sorted({compact_string(r) for r in compact_rules(missing_rules)})
    msg = (f"user {_go_quote(user.name)} (groups={_go_quote_list(user.groups)}) is attempting to grant RBAC "
           f"permissions not currently held:\n" + "\n".join(lines))
    errs = list(resolution_errors)
    if errs:
        msg += f"; resolution errors: [{aggregate_errors(errs)}]"
    return msg


class RuleResolver(Protocol):
    def policy_rules_for(self, user: UserInfo, namespace: str) -> tuple[list[dict], list[str]]: ...


def confirm_no_escalation(resolver: RuleResolver, user: UserInfo, namespace: str, rules: Iterable[Any]) -> str | None:
    """ConfirmNoEscalation: None when the rules ``user`` holds in ``namespace`` ("" = cluster-wide only) cover
    ``rules``, else :func:`escalation_error`'s text."""
    owner, errs = resolver.policy_rules_for(user, namespace)
    ok, missing = covers(owner, rules)
    return None if ok else escalation_error(user, missing, errs)


# ---- bindings and their subjects --------------------------------------------------------------------------------

SubjectKey = tuple[str, str]  # ("u", username) or ("g", group)


def subject_key(subject: Mapping, binding_namespace: str) -> SubjectKey | None:
    """The user or group a binding subject names (a ServiceAccount is the user
    ``system:serviceaccount:<ns>:<name>``, its namespace defaulting to a RoleBinding's); None if it names none."""
    if not isinstance(subject, Mapping):
        return None
    kind, name = subject.get("kind"), subject.get("name")
    if not isinstance(name, str) or not name:
        return None
    if kind == USER:
        return ("u", name)
    if kind == GROUP_KIND:
        return ("g", name)
    if kind == SERVICE_ACCOUNT:
        ns = subject.get("namespace") or binding_namespace
        return ("u", f"{SERVICEACCOUNT_USER_PREFIX}{ns}:{name}") if isinstance(ns, str) and ns else None
    return None


def user_keys(user: UserInfo) -> list[SubjectKey]:
    return [("u", user.name), *(("g", g) for g in user.groups)]


def applies_to(user: UserInfo, binding: Mapping, namespace: str) -> int | None:
    """appliesTo: the index of the first subject of ``binding`` that names ``user`` (None if none does)."""
    keys = set(user_keys(user))
    for i, s in enumerate(binding.get("subjects") or ()):
        if subject_key(s, namespace) in keys:
            return i
    return None


def role_ref(binding: Mapping) -> tuple[str, str, str]:
    """(apiGroup, kind, name) of a binding's roleRef (apiGroup defaulted as Kubernetes does)."""
    ref = binding.get("roleRef") if isinstance(binding, Mapping) else None
    ref = ref if isinstance(ref, Mapping) else {}
    return (ref.get("apiGroup") or GROUP, ref.get("kind") or "", ref.get("name") or "")


def roleref_changed(old: Mapping | None, new: Any) -> bool:
    """Whether an update changes a RoleBinding's or ClusterRoleBinding's roleRef (which Kubernetes refuses:
    ``roleRef: Invalid value: {...}: cannot change roleRef``). ``old`` is the stored object, ``new`` the updated
    one (dict or model); an absent apiGroup counts as the defaulted ``rbac.authorization.k8s.io``.
    ``bus.validation.validate_update`` calls it for both kinds, so the API server gets the error from there."""
    if not isinstance(new, Mapping):
        dump = getattr(new, "model_dump", None)
        new = dump(by_alias=True, exclude_none=True) if dump else {}
    return role_ref(old or {}) != role_ref(new)


def _meta(obj: Mapping) -> Mapping:
    m = obj.get("metadata") if isinstance(obj, Mapping) else None
    return m if isinstance(m, Mapping) else {}


def _describe_subject(subject: Mapping, binding_namespace: str) -> str:
    kind, name = subject.get("kind", ""), subject.get("name", "")
    if kind == SERVICE_ACCOUNT:
        return f"{kind} {_go_quote(name + '/' + (subject.get('namespace') or binding_namespace))}"
    return f"{kind} {_go_quote(name)}"


def describe_binding(binding: Mapping, subject_index: int) -> str:
    """``ClusterRoleBinding "x" of ClusterRole "y" to Group "z"`` / ``RoleBinding "x/ns" of Role "y" to …``."""
    meta = _meta(binding)
    _g, kind, name = role_ref(binding)
    ns = meta.get("namespace") or ""
    subject = (binding.get("subjects") or [{}])[subject_index]
    who = _describe_subject(subject if isinstance(subject, Mapping) else {}, ns)
    if ns:
        return f"RoleBinding {_go_quote(meta.get('name', '') + '/' + ns)} of {kind} {_go_quote(name)} to {who}"
    return f"ClusterRoleBinding {_go_quote(meta.get('name', ''))} of {kind} {_go_quote(name)} to {who}"


# ---- where the objects come from ---------------------------------------------------------------------------------


class RuleSource(Protocol):
    """The four kinds, as Kubernetes' RoleGetter/RoleBindingLister/ClusterRoleGetter/ClusterRoleBindingLister."""

    def get_role(self, namespace: str, name: str) -> Mapping | None: ...

    def get_cluster_role(self, name: str) -> Mapping | None: ...

    def role_bindings(self, namespace: str) -> Iterable[Mapping]: ...

    def cluster_role_bindings(self) -> Iterable[Mapping]: ...


class StaticRuleSource:
    """A RuleSource over lists of objects (tests, tools, the bootstrap policy)."""

    def __init__(self, roles: Iterable[Mapping] = (), cluster_roles: Iterable[Mapping] = (),
                 role_bindings: Iterable[Mapping] = (), cluster_role_bindings: Iterable[Mapping] = ()) -> None:
        self.roles = {(_meta(r).get("namespace") or "", _meta(r).get("name") or ""): r for r in roles}
        self.cluster_roles = {_meta(r).get("name") or "": r for r in cluster_roles}
        self.rbs = list(role_bindings)
        self.crbs = list(cluster_role_bindings)

    def get_role(self, namespace: str, name: str) -> Mapping | None:
        return self.roles.get((namespace, name))

    def get_cluster_role(self, name: str) -> Mapping | None:
        return self.cluster_roles.get(name)

    def role_bindings(self, namespace: str) -> list[Mapping]:
        return [b for b in self.rbs if _meta(b).get("namespace") == namespace]

    def cluster_role_bindings(self) -> list[Mapping]:
        return self.crbs


def _binding_keys(binding: Mapping) -> set[SubjectKey]:
    ns = _meta(binding).get("namespace") or ""
    return {k for s in binding.get("subjects") or () if (k := subject_key(s, ns)) is not None}


class InformerRuleSource:
    """A RuleSource read from four informers (``bus.informer.Informer``: roles, clusterroles, rolebindings,
    clusterrolebindings), which also files every binding under the users and groups it names, so that a
    decision looks up only the bindings of the asking user instead of scanning them all. ``generation`` moves on
    every change of any of the four kinds (the authorizer's caches key on it).

    ``InformerRuleSource.from_factory(factory)`` takes them from a ``SharedInformerFactory`` (start the factory
    afterwards; :meth:`wait_synced` before serving)."""

    def __init__(self, roles: Any, cluster_roles: Any, role_bindings: Any, cluster_role_bindings: Any) -> None:
        self.roles, self.cluster_roles = roles, cluster_roles
        self.rb_informer, self.crb_informer = role_bindings, cluster_role_bindings
        self.generation = 0
        self._crb: dict[SubjectKey, dict[str, Mapping]] = {}
        self._rb: dict[tuple[str, SubjectKey], dict[str, Mapping]] = {}
        self._filed: dict[tuple[str, str, str], set[SubjectKey]] = {}  # binding -> the keys it is filed under
        for inf in (roles, cluster_roles):
            inf.add_handler(on_add=self._bump, on_update=lambda _o, _n: self._bump(), on_delete=self._bump)
        role_bindings.add_handler(on_add=self._add_rb, on_update=self._update_rb, on_delete=self._remove_rb)
        cluster_role_bindings.add_handler(on_add=self._add_crb, on_update=self._update_crb,
                                          on_delete=self._remove_crb)

    @classmethod
    def from_factory(cls, factory: Any) -> "InformerRuleSource":
        return cls(factory.informer("roles"), factory.informer("clusterroles"), factory.informer("rolebindings"),
                   factory.informer("clusterrolebindings"))

    def informers(self) -> list[Any]:
        return [self.roles, self.cluster_roles, self.rb_informer, self.crb_informer]

    @property
    def synced(self) -> bool:
        return all(inf.synced for inf in self.informers())

    async def wait_synced(self, timeout: float | None = None) -> bool:
        results = [await inf.wait_synced(timeout) for inf in self.informers()]
        return all(results)

    # -- index upkeep (informer handlers) --

    def _bump(self, *_: Any) -> None:
        self.generation += 1

    def _add_rb(self, b: Mapping) -> None:
        meta = _meta(b)
        ns, name = meta.get("namespace") or "", meta.get("name") or ""
        self._remove_rb(b, bump=False)
        keys = self._filed[("rb", ns, name)] = _binding_keys(b)
        for k in keys:
            self._rb.setdefault((ns, k), {})[name] = b
        self._bump()

    def _remove_rb(self, b: Mapping, bump: bool = True) -> None:
        meta = _meta(b)
        ns, name = meta.get("namespace") or "", meta.get("name") or ""
        for k in self._filed.pop(("rb", ns, name), ()):  # what it was filed under, whatever the final state says
            entry = self._rb.get((ns, k))
            if entry is not None and entry.pop(name, None) is not None and not entry:
                del self._rb[(ns, k)]
        if bump:
            self._bump()

    def _update_rb(self, old: Mapping, new: Mapping) -> None:
        self._remove_rb(old, bump=False)
        self._add_rb(new)

    def _add_crb(self, b: Mapping) -> None:
        name = _meta(b).get("name") or ""
        self._remove_crb(b, bump=False)
        keys = self._filed[("crb", "", name)] = _binding_keys(b)
        for k in keys:
            self._crb.setdefault(k, {})[name] = b
        self._bump()

    def _remove_crb(self, b: Mapping, bump: bool = True) -> None:
        name = _meta(b).get("name") or ""
        for k in self._filed.pop(("crb", "", name), ()):
            entry = self._crb.get(k)
            if entry is not None and entry.pop(name, None) is not None and not entry:
                del self._crb[k]
        if bump:
            self._bump()

    def _update_crb(self, old: Mapping, new: Mapping) -> None:
        self._remove_crb(old, bump=False)
        self._add_crb(new)

    # -- RuleSource --

    def get_role(self, namespace: str, name: str) -> Mapping | None:
        return self.roles.get(namespace, name)

    def get_cluster_role(self, name: str) -> Mapping | None:
        return self.cluster_roles.get(None, name)

    def role_bindings(self, namespace: str) -> list[Mapping]:
        return self.rb_informer.list(namespace)

    def cluster_role_bindings(self) -> list[Mapping]:
        return self.crb_informer.list()

    # -- the indexed lookups the authorizer prefers --

    def cluster_role_bindings_for(self, keys: Iterable[SubjectKey]) -> list[Mapping]:
        seen: dict[str, Mapping] = {}
        for k in keys:
            for name, b in self._crb.get(k, {}).items():
                seen.setdefault(name, b)
        return [seen[n] for n in sorted(seen)]

    def role_bindings_for(self, namespace: str, keys: Iterable[SubjectKey]) -> list[Mapping]:
        seen: dict[str, Mapping] = {}
        for k in keys:
            for name, b in self._rb.get((namespace, k), {}).items():
                seen.setdefault(name, b)
        return [seen[n] for n in sorted(seen)]


# ---- the authorizer ------------------------------------------------------------------------------------------------


def _not_found(kind: str, name: str) -> str:
    """What a lister says of a missing role: ``clusterrole.rbac.authorization.k8s.io "x" not found``."""
    return f"{kind.lower()}.{GROUP} {_go_quote(name)} not found"


_Source = tuple[Mapping, int]  # (binding, index of the subject that applies)


class RBACAuthorizer:
    """Kubernetes' RBAC authorizer (plus its privileged-group one: ``system:masters`` is always allowed).

    Never denies: a request no rule allows gets no opinion (so a later authorizer may still allow it), with the
    errors met while resolving roles (a binding to a missing role) as the reason, as Kubernetes does."""

    CACHE_LIMIT = 4096

    def __init__(self, source: RuleSource, privileged_groups: Iterable[str] = (SYSTEM_MASTERS,)) -> None:
        self.source = source
        self.privileged = frozenset(privileged_groups)
        self._indexed = hasattr(source, "cluster_role_bindings_for") and hasattr(source, "role_bindings_for")
        self._compiled: dict[tuple[str, str, str], tuple[str, Mapping, tuple[CompiledRule, ...]]] = {}
        self._cache: dict[tuple, tuple[tuple[tuple[CompiledRule, ...], _Source], ...] | Any] = {}
        self._cache_gen = -1

    # -- resolving --

    def _role_rules(self, kind: str, namespace: str, name: str) -> tuple[CompiledRule, ...] | None:
        role = self.source.get_role(namespace, name) if kind == ROLE else self.source.get_cluster_role(name)
        if role is None:
            return None
        rv = _meta(role).get("resourceVersion") or ""
        key = (kind, namespace if kind == ROLE else "", name)
        hit = self._compiled.get(key)
        if hit is not None and rv and hit[0] == rv and hit[1] is role:
            return hit[2]
        rules = role.get("rules") if isinstance(role, Mapping) else None
        compiled = tuple(CompiledRule(r) for r in (rules or ()) if isinstance(r, Mapping))
        if rv:
            if len(self._compiled) > self.CACHE_LIMIT:
                self._compiled.clear()
            self._compiled[key] = (rv, role, compiled)
        return compiled

    def _bindings(self, user: UserInfo, namespace: str) -> Iterable[tuple[Mapping, str]]:
        """(binding, namespace its roleRef resolves in): cluster role bindings first, then the namespace's."""
        src: Any = self.source
        if self._indexed:
            keys = user_keys(user)
            crbs: Iterable[Mapping] = src.cluster_role_bindings_for(keys)
            rbs: Iterable[Mapping] = src.role_bindings_for(namespace, keys) if namespace else ()
        else:
            crbs = src.cluster_role_bindings()
            rbs = src.role_bindings(namespace) if namespace else ()
        for b in crbs:
            yield b, ""
        for b in rbs:
            yield b, namespace

    def _resolve(self, user: UserInfo, namespace: str) -> tuple[tuple[tuple[tuple[CompiledRule, ...], _Source], ...],
                                                                tuple[str, ...]]:
        """Every (rules, source) applying to ``user`` in ``namespace``, and the resolution errors."""
        gen = getattr(self.source, "generation", None)
        ck = (user.name, tuple(user.groups), namespace)
        if gen is not None:
            if gen != self._cache_gen:
                self._cache.clear()
                self._cache_gen = gen
            hit = self._cache.get(ck)
            if hit is not None:
                return hit
        found: list[tuple[tuple[CompiledRule, ...], _Source]] = []
        errs: list[str] = []
        for b, ns in self._bindings(user, namespace):
            idx = applies_to(user, b, ns)
            if idx is None:
                continue
            _g, kind, name = role_ref(b)
            if kind not in (ROLE, CLUSTER_ROLE):
                errs.append(f"unsupported role reference kind: {_go_quote(kind)}")
                continue
            if kind == ROLE and not ns:
                errs.append(f"unsupported role reference kind: {_go_quote(kind)}")
                continue
            rules = self._role_rules(kind, ns, name)
            if rules is None:
                errs.append(_not_found(kind, name))
                continue
            found.append((rules, (b, idx)))
        out = (tuple(found), tuple(errs))
        if gen is not None:
            if len(self._cache) >= self.CACHE_LIMIT:
                self._cache.clear()
            self._cache[ck] = out
        return out

    # -- Authorizer --

    def authorize(self, attrs: Attributes, body: Any = None) -> Decision:
        user = attrs.user
        if not self.privileged.isdisjoint(user.groups):
            return ALLOWED
        found, errs = self._resolve(user, attrs.namespace)
        for rules, (binding, idx) in found:
            for r in rules:
                if r.allows(attrs):
                    return Decision(True, f"RBAC: allowed by {describe_binding(binding, idx)}")
        if errs:
            return no_opinion(f"RBAC: {aggregate_errors(errs)}")
        return NO_OPINION

    def allowed(self, attrs: Attributes) -> bool:
        return self.authorize(attrs).allowed

    # -- rule listings --

    def policy_rules_for(self, user: UserInfo, namespace: str) -> tuple[list[dict], list[str]]:
        """RulesFor: every PolicyRule that applies to ``user`` in ``namespace`` ("" = cluster-wide only), and the
        errors met resolving them (the rules found are still valid: RBAC only adds)."""
        found, errs = self._resolve(user, namespace)
        return [r.rule for rules, _src in found for r in rules], list(errs)

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[dict], list[dict], bool]:
        """SelfSubjectRulesReview's rules: (resource rules {verbs, apiGroups, resources, resourceNames},
        non-resource rules {verbs, nonResourceURLs}, incomplete — True when some binding's role could not be
        resolved, so the lists may miss rules; :meth:`review_rules` gives Kubernetes' exact answer)."""
        rules, errs = self.policy_rules_for(user, namespace)
        return _resource_rules(rules), _non_resource_rules(rules), bool(errs)

    def review_rules(self, user: UserInfo, namespace: str) -> tuple[list[dict], list[dict], bool, list[str]]:
        """Kubernetes' RulesFor of this authorizer: rules as :meth:`rules_for`, ``incomplete`` False (RBAC lists
        every rule it knows), and the resolution errors."""
        rules, errs = self.policy_rules_for(user, namespace)
        return _resource_rules(rules), _non_resource_rules(rules), False, errs

    def subject_rules_review(self, user: UserInfo, namespace: str) -> dict:
        """The ``status`` of a SelfSubjectRulesReview answered by this authorizer alone."""
        return subject_rules_review(self, user, namespace)


def _resource_rules(rules: Iterable[dict]) -> list[dict]:
    return [{k: r[k] for k in ("verbs", "apiGroups", "resources", "resourceNames") if k in r}
            for r in rules if r.get("resources")]


def _non_resource_rules(rules: Iterable[dict]) -> list[dict]:
    return [{k: r[k] for k in ("verbs", "nonResourceURLs") if k in r} for r in rules if r.get("nonResourceURLs")]


def subject_rules_review(authorizer: Any, user: UserInfo, namespace: str) -> dict:
    """The ``status`` of a SelfSubjectRulesReview (``SubjectRulesReviewStatus``: resourceRules,
    nonResourceRules, incomplete, evaluationError) from ``authorizer`` (an RBACAuthorizer, a NodeAuthorizer or
    a UnionAuthorizer of them: the rules of those that can list them)."""
    res, nonres, incomplete, errs = authorizer.review_rules(user, namespace)
    status: dict = {"resourceRules": res, "nonResourceRules": nonres, "incomplete": incomplete}
    if errs:
        status["evaluationError"] = aggregate_errors(errs)
    return status


# ---- writes of roles and bindings (registry/rbac policybased storage) -------------------------------------------

RoleLookup = Callable[[str, str, str], "Mapping | None | Awaitable[Mapping | None]"]

_GC_FIELDS = ("ownerReferences", "finalizers")
_SERVER_FIELDS = ("resourceVersion", "managedFields", "generation", "uid", "creationTimestamp")


def only_gc_fields_changed(obj: Mapping, old: Mapping | None) -> bool:
    """IsOnlyMutatingGCFields: the update changes nothing but ownerReferences and finalizers."""
    if old is None:
        return False

    def strip(o: Mapping) -> dict:
        meta = {k: v for k, v in _meta(o).items() if k not in _GC_FIELDS + _SERVER_FIELDS}
        body = {k: v for k, v in o.items() if k not in ("metadata", "apiVersion", "kind", "status")}
        return {"metadata": meta, **{k: v for k, v in body.items() if v not in (None, [], {})}}

    return strip(obj) == strip(old)


def _has_aggregation(obj: Mapping | None) -> bool:
    return isinstance(obj, Mapping) and isinstance(obj.get("aggregationRule"), Mapping)


async def _maybe_await(v: Any) -> Any:
    return await v if inspect.isawaitable(v) else v


def _resolver(authorizer: Any, rule_resolver: Any) -> Any:
    r = rule_resolver if rule_resolver is not None else authorizer
    if not hasattr(r, "policy_rules_for"):
        raise TypeError("check_rbac_write needs a rule resolver (an RBACAuthorizer) for the escalation check")
    return r


async def check_rbac_write(authorizer: Authorizer, user: UserInfo, resource_plural: str, namespace: str | None,
                           obj: Mapping, role_lookup: RoleLookup, *, old: Mapping | None = None,
                           rule_resolver: RuleResolver | None = None) -> str | None:
    """Whether ``user`` may create (``old`` None) or update (``old`` = the stored object) the Role, ClusterRole,
    RoleBinding or ClusterRoleBinding ``obj`` (validated, stored form) in ``namespace`` ("" or None for the
    cluster-scoped kinds). None when allowed; else the whole message of the 403 Kubernetes answers, e.g.
    ``rolebindings.rbac.authorization.k8s.io "x" is forbidden: user "bob" (groups=[…]) is attempting to grant
    RBAC permissions not currently held:\\n{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}`` (wrap it
    with :func:`forbidden_write_error`). Other resources are always allowed here.

    As Kubernetes: ``system:masters`` may write anything; a role write is allowed if the user may ``escalate``
    that role (checked through ``authorizer``) or already holds every rule it grants (in that namespace; and
    using an aggregationRule needs full authority); a binding write is allowed if the user may ``bind`` the
    role it references (in the binding's namespace) or holds every rule of that role (``role_lookup(kind,
    namespace, name)`` gives the stored role or None, sync or async). An update that changes only
    ownerReferences/finalizers is always allowed. ``rule_resolver`` (default: ``authorizer``) gives the user's
    rules (``policy_rules_for``: an RBACAuthorizer or a UnionAuthorizer holding one).
    """
    if resource_plural not in ("roles", "clusterroles", *BINDING_RESOURCES):
        return None
    if SYSTEM_MASTERS in user.groups:  # EscalationAllowed
        return None
    if not isinstance(obj, Mapping):  # a decoded model
        obj = obj.model_dump(by_alias=True, exclude_none=True)
    ns = (namespace or "") if resource_plural in ("roles", "rolebindings") else ""
    name = _meta(obj).get("name") or ""

    def refuse(err: str) -> str:
        return forbidden_status_message(resource_plural, GROUP, name, err)

    if resource_plural in ("roles", "clusterroles"):
        # as the request names it: a create names no object (so resourceNames cannot restrict it)
        escalate = Attributes(user, "escalate", ns, GROUP, resource_plural, "", name if old is not None else "")
        if authorizer.authorize(escalate).allowed:  # RoleEscalationAuthorized
            return None
        if only_gc_fields_changed(obj, old):
            return None
        resolver = _resolver(authorizer, rule_resolver)
        err = confirm_no_escalation(resolver, user, ns, obj.get("rules") or ())
        if err:
            return refuse(err)
        if resource_plural == "clusterroles" and (_has_aggregation(obj) or _has_aggregation(old)):
            if confirm_no_escalation(resolver, user, "", FULL_AUTHORITY):
                return refuse(AGGREGATION_MESSAGE)
        return None

    group, kind, role_name = role_ref(obj)
    if kind in ROLE_RESOURCES:  # BindingAuthorized
        bind = Attributes(user, "bind", ns, group, ROLE_RESOURCES[kind], "", role_name)
        if authorizer.authorize(bind).allowed:
            return None
    if only_gc_fields_changed(obj, old):
        return None
    if kind not in ROLE_RESOURCES or (kind == ROLE and not ns):
        return refuse(f"unsupported role reference kind: {_go_quote(kind)}")
    role = await _maybe_await(role_lookup(kind, ns if kind == ROLE else "", role_name))
    if role is None:
        return refuse(_not_found(kind, role_name))
    err = confirm_no_escalation(_resolver(authorizer, rule_resolver), user, ns, role.get("rules") or ())
    return refuse(err) if err else None


# ---- ClusterRole aggregation ---------------------------------------------------------------------------------------


def aggregation_selectors(cluster_role: Mapping) -> list[Any] | None:
    """The parsed clusterRoleSelectors of an aggregated ClusterRole (None when it has no aggregationRule).
    Raises ValueError for a selector that does not parse."""
    rule = cluster_role.get("aggregationRule") if isinstance(cluster_role, Mapping) else None
    if not isinstance(rule, Mapping):
        return None
    return [selector_from_label_selector(s) for s in rule.get("clusterRoleSelectors") or () if isinstance(s, Mapping)]


def aggregate_rules(cluster_role: Mapping, cluster_roles: Iterable[Mapping]) -> list[dict] | None:
    """What the ClusterRole aggregation controller writes into ``cluster_role``'s rules: for each selector in
    order, the rules of the other ClusterRoles it matches (by name), each rule once. None when the role has no
    aggregationRule. Raises ValueError for a selector that does not parse."""
    selectors = aggregation_selectors(cluster_role)
    if selectors is None:
        return None
    me = _meta(cluster_role).get("name")
    candidates = sorted((c for c in cluster_roles if _meta(c).get("name") != me),
                        key=lambda c: _meta(c).get("name") or "")
    out: list[dict] = []
    seen: list[dict] = []
    for sel in selectors:
        for c in candidates:
            if not sel.matches(_meta(c).get("labels") or {}):
                continue
            for r in c.get("rules") or ():
                if not isinstance(r, Mapping):
                    continue
                norm = rule_dict(r)
                if norm not in seen:
                    seen.append(norm)
                    out.append(dict(r))
    return out


def same_rules(a: Iterable[Any] | None, b: Iterable[Any] | None) -> bool:
    """Semantic equality of two rule lists (order matters, absent equals empty)."""
    la, lb = list(a or ()), list(b or ())
    return len(la) == len(lb) and all(rules_equal(x, y) for x, y in zip(la, lb))
