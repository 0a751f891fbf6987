"""Validation of Validating/MutatingWebhookConfiguration (``pkg/apis/admissionregistration/validation`` and
``apiserver/pkg/util/webhook/validation.go``), with Kubernetes' field paths and messages. Registered into
``bus.validation``'s per-kind checks when that module loads."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from bus.labels import dns1123_subdomain_errors
from bus.models import admissionregistration as ar
from bus.validation import _KIND_CHECKS, Errors, _label_selector, dns1035_label_errors

_URL_FORM = "; desired format: https://host[/path]"


def _fully_qualified_name(e: Errors, path: str, name: str | None) -> None:
    if not name:
        e.required(path)
    elif errs := dns1123_subdomain_errors(name):
        e.invalid(path, name, ",".join(errs))
    elif len(name.split(".")) < 3:
        e.invalid(path, name, "should be a domain with at least three segments separated by dots")


def _url(e: Errors, path: str, url: str) -> None:
    try:
        u = urlsplit(url)
        host = u.hostname
    except ValueError as exc:
        e.required(path, f"url must be a valid URL: {exc}{_URL_FORM}")
        return
    if u.scheme != "https":
        e.invalid(path, u.scheme, "'https' is the only allowed URL scheme" + _URL_FORM)
    if not host:
        e.invalid(path, u.netloc, "host must be specified" + _URL_FORM)
    if u.username is not None:
        user = u.username + (":***" if u.password is not None else "")
        e.invalid(path, user, "user information is not permitted in the URL")
    if u.fragment:
        e.invalid(path, u.fragment, "fragments are not permitted in the URL")
    if u.query:
        e.invalid(path, u.query, "query parameters are not permitted in the URL")


def _service(e: Errors, path: str, svc: ar.ServiceReference) -> None:
    if not svc.name:
        e.required(f"{path}.name", "service name is required")
    if not svc.namespace:
        e.required(f"{path}.namespace", "service namespace is required")
    if svc.port is not None and not 1 <= svc.port <= 65535:
        e.invalid(f"{path}.port", svc.port, "port is not valid: must be between 1 and 65535, inclusive")
    if svc.path is not None and svc.path != "" and not svc.path.startswith("/"):
        e.invalid(f"{path}.path", svc.path, "must start with a '/'")


def _client_config(e: Errors, path: str, cc: ar.WebhookClientConfig | None) -> None:
    cc = cc or ar.WebhookClientConfig()
    if (cc.url is None) == (cc.service is None):
        e.required(path, "exactly one of url or service is required")
    elif cc.url is not None:
        _url(e, f"{path}.url", cc.url)
    else:
        _service(e, f"{path}.service", cc.service)


def _wildcard_alone(e: Errors, path: str, values: list[str], what: str) -> None:
    if not values:
        e.required(path)
    elif len(values) > 1 and "*" in values:
        e.invalid(path, values, f"if '*' is present, must not specify other {what}")


def _resources(e: Errors, path: str, resources: list[str] | None) -> None:
    resources = resources or []
    if not resources:
        e.required(path)
    with_wild_sub: set[str] = set()
    wild_res_subs: set[str] = set()
    double = single = plain = False
    for i, rs in enumerate(resources):
        if rs == "":
            e.required(f"{path}[{i}]")
            continue
        double = double or rs == "*/*"
        single = single or rs == "*"
        if "/" not in rs:
            plain = plain or rs != "*"
            continue
        res, sub = rs.split("/", 1)
        if res in with_wild_sub:
            e.invalid(f"{path}[{i}]", rs, f"if '{res}/*' is present, must not specify {rs}")
        if sub in wild_res_subs:
            e.invalid(f"{path}[{i}]", rs, f"if '*/{sub}' is present, must not specify {rs}")
        if sub == "*":
            with_wild_sub.add(res)
        if res == "*":
            wild_res_subs.add(sub)
    if len(resources) > 1 and double:
        e.invalid(path, resources, "if '*/*' is present, must not specify other resources")
    if single and plain:
        e.invalid(path, resources, "if '*' is present, must not specify other resources without subresources")


def _rule(e: Errors, path: str, rule: ar.RuleWithOperations) -> None:
    ops = rule.operations or []
    if not ops:
        e.required(f"{path}.operations")
    elif len(ops) > 1 and "*" in ops:
        e.invalid(f"{path}.operations", ops, "if '*' is present, must not specify other operations")
    for i, op in enumerate(ops):
        e.one_of(f"{path}.operations[{i}]", op, ar.OPERATIONS)
    _wildcard_alone(e, f"{path}.apiGroups", rule.api_groups or [], "API groups")
    versions = rule.api_versions or []
    _wildcard_alone(e, f"{path}.apiVersions", versions, "API versions")
    for i, v in enumerate(versions):
        if v == "":
            e.required(f"{path}.apiVersions[{i}]")
    _resources(e, f"{path}.resources", rule.resources)
    e.one_of(f"{path}.scope", rule.scope, ar.SCOPES)


def _review_versions(e: Errors, path: str, versions: list[str] | None) -> None:
    supported = ", ".join(ar.REVIEW_VERSIONS)
    if not versions:
        e.required(path, f"must specify one of {supported}")
        return
    seen: set[str] = set()
    for i, v in enumerate(versions):
        if v in seen:
            e.invalid(f"{path}[{i}]", v, "duplicate version")
        seen.add(v)
        e.messages(f"{path}[{i}]", v, dns1035_label_errors(v))
    if not seen & set(ar.REVIEW_VERSIONS):
        e.invalid(path, versions, f"must include at least one of {supported}")


def _webhook(e: Errors, path: str, hook: Any, mutating: bool) -> None:
    _fully_qualified_name(e, f"{path}.name", hook.name)
    for j, rule in enumerate(hook.rules or ()):
        _rule(e, f"{path}.rules[{j}]", rule)
    e.one_of(f"{path}.failurePolicy", hook.failure_policy, ar.FAILURE_POLICIES)
    e.one_of(f"{path}.matchPolicy", hook.match_policy, ar.MATCH_POLICIES)
    if hook.side_effects is None:
        e.required(f"{path}.sideEffects", f"must specify one of {', '.join(ar.SIDE_EFFECTS)}")
    else:
        e.one_of(f"{path}.sideEffects", hook.side_effects, ar.SIDE_EFFECTS)
    if hook.timeout_seconds is not None and not 1 <= hook.timeout_seconds <= ar.MAX_TIMEOUT:
        e.invalid(f"{path}.timeoutSeconds", hook.timeout_seconds,
                  f"the timeout value must be between 1 and {ar.MAX_TIMEOUT} seconds")
    if hook.namespace_selector is not None:
        _label_selector(e, f"{path}.namespaceSelector", hook.namespace_selector)
    if hook.object_selector is not None:
        _label_selector(e, f"{path}.objectSelector", hook.object_selector)
    _review_versions(e, f"{path}.admissionReviewVersions", hook.admission_review_versions)
    _client_config(e, f"{path}.clientConfig", hook.client_config)
    if mutating:
        e.one_of(f"{path}.reinvocationPolicy", hook.reinvocation_policy, ar.REINVOCATION_POLICIES)


def _configuration(mutating: bool):
    def check(e: Errors, obj: Any) -> None:
        seen: set[str] = set()
        for i, hook in enumerate(obj.webhooks or ()):
            _webhook(e, f"webhooks[{i}]", hook, mutating)
            if hook.name:
                e.unique(f"webhooks[{i}].name", hook.name, seen)
    return check


_KIND_CHECKS["ValidatingWebhookConfiguration"] = _configuration(False)
_KIND_CHECKS["MutatingWebhookConfiguration"] = _configuration(True)
