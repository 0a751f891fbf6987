"""What k8n reads on an Ingress besides its spec, in one place for the API server and the ingress controller: the
IngressClass names and annotations (Kubernetes' default-class annotation, the legacy class annotation), the classes
k8n's controller serves, the snippet annotations it refuses (CVE-2025-1974), and ingress-nginx's canary annotations
as a small read-only view (:class:`Canary`, from :func:`canary`) with their defaults and ingress-nginx's precedence
(header, then cookie, then weight: :meth:`Canary.routes_to_canary` is the decision its balancer makes).

Pure: no I/O. ``bus.ingress_validation`` turns :func:`annotation_problems` into 422 causes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping

from bus.meta import parse_time

# ---- classes ---------------------------------------------------------------------------------------------------------

DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"  # "true": Ingresses without a class get it
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"  # before spec.ingressClassName; still read by controllers
K8N_CONTROLLER = "k8n.io/ingress"
NGINX_CONTROLLER = "k8s.io/ingress-nginx"  # ingress-nginx's: manifests written for it name class `nginx`
SERVED_CONTROLLERS = (K8N_CONTROLLER, NGINX_CONTROLLER)  # what k8n's ingress controller serves
# The classes the cluster starts with (name, controller, default?): made by the API server's bootstrap
BUILT_IN_CLASSES = (("k8n", K8N_CONTROLLER, True), ("nginx", NGINX_CONTROLLER, False))


def is_default_class(cls: Mapping) -> bool:
    return ((cls.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"


def default_class(classes: Iterable[Mapping]) -> Mapping | None:
    """The default class: of those annotated default, the newest; the first by name among equally new ones
    (Kubernetes 1.28+)."""
    found = [c for c in classes if is_default_class(c)]
    if not found:
        return None

    def key(c: Mapping) -> tuple:
        t = parse_time((c.get("metadata") or {}).get("creationTimestamp"))
        return -(t.timestamp() if t else 0.0), (c.get("metadata") or {}).get("name") or ""

    return min(found, key=key)


def class_name(ingress: Mapping) -> str | None:
    """The Ingress's class: ``spec.ingressClassName``, else the legacy annotation; None for neither."""
    name = (ingress.get("spec") or {}).get("ingressClassName")
    if name:
        return name
    return ((ingress.get("metadata") or {}).get("annotations") or {}).get(LEGACY_CLASS_ANNOTATION) or None


# ---- snippets (raw proxy configuration in an annotation: CVE-2025-1974) ----------------------------------------------

SNIPPET_MESSAGE = ("snippet annotations are refused: k8n never passes raw proxy configuration from an Ingress to the "
                   "proxy (CVE-2025-1974)")


def is_snippet(key: str) -> bool:
    """ingress-nginx's ``configuration-snippet``, ``server-snippet``, ``auth-snippet``, ``stream-snippet``, …,
    NGINX Inc.'s ``nginx.org/server-snippets``, HAProxy's ``…-config-snippet``: any annotation named
    ``*-snippet(s)``."""
    name = key.rpartition("/")[2].lower()
    return name.endswith(("-snippet", "-snippets")) or name in ("snippet", "snippets")


# ---- canary (ingress-nginx's annotations, with its defaults) ---------------------------------------------------------

NGINX_PREFIX = "nginx.ingress.kubernetes.io/"
CANARY = NGINX_PREFIX + "canary"
CANARY_WEIGHT = NGINX_PREFIX + "canary-weight"
CANARY_WEIGHT_TOTAL = NGINX_PREFIX + "canary-weight-total"
CANARY_BY_HEADER = NGINX_PREFIX + "canary-by-header"
CANARY_BY_HEADER_VALUE = NGINX_PREFIX + "canary-by-header-value"
CANARY_BY_HEADER_PATTERN = NGINX_PREFIX + "canary-by-header-pattern"
CANARY_BY_COOKIE = NGINX_PREFIX + "canary-by-cookie"
CANARY_ANNOTATIONS = (CANARY, CANARY_WEIGHT, CANARY_WEIGHT_TOTAL, CANARY_BY_HEADER, CANARY_BY_HEADER_VALUE,
                      CANARY_BY_HEADER_PATTERN, CANARY_BY_COOKIE)
DEFAULT_WEIGHT_TOTAL = 100
ALWAYS, NEVER = "always", "never"  # a canary header's or cookie's values that decide on their own
PRECEDENCE = ("header", "cookie", "weight")

_TRUE = ("1", "t", "T", "TRUE", "true", "True")  # Go's strconv.ParseBool, as ingress-nginx parses
_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_INT = re.compile(r"[+-]?[0-9]+")  # strconv.Atoi
_BASIC = re.compile(r"[-._~a-zA-Z0-9/:]*")  # ingress-nginx's BasicCharsRegex (spaces removed first)
_REGEX_CHARS = re.compile(r"[-._~a-zA-Z0-9/:^$\[\](){}*+?|&=\\]*")  # its IsValidRegex: no other characters
_NAME_MSG = "must consist of alphanumeric characters, '-', '.', '_', '~', '/' or ':'"


@dataclass(frozen=True)
class Canary:
    """An Ingress's canary settings (``enabled``: it is a canary of the Ingress with the same host and path). The
    weight is a share of ``weight_total`` as ingress-nginx documents it (its balancer ignores totals below 100; k8n
    does not: ``weight: 5`` of ``weight-total: 10`` is half the traffic)."""

    enabled: bool = False
    weight: int = 0
    weight_total: int = DEFAULT_WEIGHT_TOTAL
    header: str = ""
    header_value: str = ""
    header_pattern: str = ""
    cookie: str = ""

    @property
    def rules(self) -> tuple[str, ...]:
        """The routing rules set, in the order they decide (``PRECEDENCE``); weight counts when above 0."""
        on = {"header": bool(self.header), "cookie": bool(self.cookie), "weight": self.weight > 0}
        return tuple(r for r in PRECEDENCE if on[r])

    @property
    def share(self) -> float:
        """The fraction of the requests no header or cookie decided that the weight sends to the canary."""
        return min(1.0, self.weight / self.weight_total) if self.enabled else 0.0

    def header_matches(self, value: str) -> bool | None:
        """What the canary header's value decides: True (to the canary), False (not), None (the next rule decides).
        ``canary-by-header-value`` wins over ``-pattern``; without either, ``always``/``never`` decide."""
        if self.header_value:
            return True if value == self.header_value else None
        if self.header_pattern:
            return True if re.search(self.header_pattern, value) else None
        return True if value == ALWAYS else False if value == NEVER else None

    def routes_to_canary(self, headers: Mapping[str, str], cookies: Mapping[str, str], roll: int) -> bool:
        """ingress-nginx's ``route_to_alternative_balancer``: the header (name case-insensitive), then the cookie
        (``always``/``never``), then ``roll`` (1..weight total, uniformly drawn) ``<= weight``."""
        if not self.enabled:
            return False
        if self.header:
            value = next((v for k, v in headers.items() if k.lower() == self.header.lower()), None)
            if value is not None and (decided := self.header_matches(value)) is not None:
                return decided
        if self.cookie:
            value = cookies.get(self.cookie)
            if value in (ALWAYS, NEVER):
                return value == ALWAYS
        return roll <= self.weight


def _bool(value: str) -> bool | None:
    return True if value in _TRUE else False if value in _FALSE else None


def annotation_problems(annotations: Mapping[str, str] | None) -> list[tuple[str, str, str]]:
    """``(annotation, value, why)`` for each snippet annotation (``why`` is ``SNIPPET_MESSAGE``) and each canary
    annotation whose value ingress-nginx would not accept or that contradicts another (weight above the total)."""
    anns = annotations or {}
    out = [(k, v, SNIPPET_MESSAGE) for k, v in anns.items() if is_snippet(k)]
    if CANARY in anns and _bool(anns[CANARY]) is None:
        out.append((CANARY, anns[CANARY], 'must be "true" or "false"'))
    total = DEFAULT_WEIGHT_TOTAL
    if CANARY_WEIGHT_TOTAL in anns:
        v = anns[CANARY_WEIGHT_TOTAL]
        if not _INT.fullmatch(v) or int(v) < 1:
            out.append((CANARY_WEIGHT_TOTAL, v, "must be a positive integer"))
        else:
            total = int(v)
    if CANARY_WEIGHT in anns:
        v = anns[CANARY_WEIGHT]
        if not _INT.fullmatch(v) or not 0 <= int(v) <= total:
            out.append((CANARY_WEIGHT, v, f"must be an integer between 0 and {total} (canary-weight-total), inclusive"))
    for key in (CANARY_BY_HEADER, CANARY_BY_HEADER_VALUE, CANARY_BY_COOKIE):
        if key in anns and not _BASIC.fullmatch(anns[key].replace(" ", "")):
            out.append((key, anns[key], _NAME_MSG))
    if CANARY_BY_HEADER_PATTERN in anns:
        v = anns[CANARY_BY_HEADER_PATTERN]
        if not _REGEX_CHARS.fullmatch(v):
            out.append((CANARY_BY_HEADER_PATTERN, v, "must be a regular expression of alphanumeric characters and "
                                                     "'-._~/:^$[](){}*+?|&=\\'"))
        else:
            try:
                re.compile(v)
            except re.error as e:
                out.append((CANARY_BY_HEADER_PATTERN, v, f"must be a valid regular expression: {e}"))
    return out


def canary(annotations: Mapping[str, str] | None) -> Canary:
    """The canary view of an Ingress's annotations (validated: values that do not parse count as unset, as
    ingress-nginx defaults them). Canary annotations without ``canary: "true"`` leave it disabled (ingress-nginx
    then serves the Ingress as an ordinary one)."""
    anns = annotations or {}

    def text(key: str) -> str:
        v = anns.get(key, "")
        return v if _BASIC.fullmatch(v.replace(" ", "")) else ""

    def number(key: str, default: int) -> int:
        v = anns.get(key, "")
        return int(v) if _INT.fullmatch(v) else default

    pattern = anns.get(CANARY_BY_HEADER_PATTERN, "")
    try:
        re.compile(pattern)
    except re.error:
        pattern = ""
    return Canary(enabled=_bool(anns.get(CANARY, "")) is True, weight=max(0, number(CANARY_WEIGHT, 0)),
                  weight_total=max(1, number(CANARY_WEIGHT_TOTAL, DEFAULT_WEIGHT_TOTAL)), header=text(CANARY_BY_HEADER),
                  header_value=text(CANARY_BY_HEADER_VALUE), header_pattern=pattern, cookie=text(CANARY_BY_COOKIE))
