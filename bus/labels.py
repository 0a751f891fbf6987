"""Label selectors (Kubernetes ``labels.Selector``) and label key/value validation.

String form: ``app=web,tier!=db,env in (a,b),env notin (c),!legacy,present,k==v,replicas>2``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

# --- names (shared with bus.validation) -----------------------------------------------------------------------------

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_LABEL_RE = re.compile(_DNS_LABEL)
_DNS_SUBDOMAIN_RE = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
_QUALIFIED_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_RE = re.compile(_QUALIFIED_NAME)
_LABEL_VALUE = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE)

DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    f"end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '{_DNS_LABEL}')"
)
DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    f"'{_DNS_LABEL}(\\.{_DNS_LABEL})*')"
)
_QUALIFIED_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
    f"character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '{_QUALIFIED_NAME}')"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
    f"validation is '{_LABEL_VALUE}')"
)


def max_len_msg(n: int) -> str:
    return f"must be no more than {n} characters"


def dns1123_label_errors(v: str) -> list[str]:
    errs = [max_len_msg(63)] if len(v) > 63 else []
    if len(v) > 253 or not _DNS_LABEL_RE.fullmatch(v):  # no regex over huge strings
        errs.append(DNS1123_LABEL_MSG)
    return errs


def dns1123_subdomain_errors(v: str) -> list[str]:
    errs = [max_len_msg(253)] if len(v) > 253 else []
    if len(v) > 1024 or not _DNS_SUBDOMAIN_RE.fullmatch(v):
        errs.append(DNS1123_SUBDOMAIN_MSG)
    return errs


def is_dns1123_label(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= 63 and _DNS_LABEL_RE.fullmatch(v) is not None


def is_dns1123_subdomain(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= 253 and _DNS_SUBDOMAIN_RE.fullmatch(v) is not None


def qualified_name_errors(key: str) -> list[str]:
    """Kubernetes ``IsQualifiedName``: ``[prefix/]name``, prefix a DNS subdomain, name <= 63 chars."""
    parts = key.split("/")
    if len(parts) == 1:
        name = key
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return ["prefix part must be non-empty"]
        errs = [f"prefix part {m}" for m in dns1123_subdomain_errors(prefix)]
        if errs:
            return errs
    else:
        return [f"a qualified name {_QUALIFIED_MSG} with an optional DNS subdomain prefix and '/' "
                "(e.g. 'example.com/MyName')"]
    if not name:
        return ["name part must be non-empty"]
    errs = [f"name part {max_len_msg(63)}"] if len(name) > 63 else []
    if len(name) > 253 or not _QUALIFIED_NAME_RE.fullmatch(name):
        errs.append(f"name part {_QUALIFIED_MSG}")
    return errs


_SIMPLE_KEY_RE = re.compile(rf"({_DNS_LABEL}(\.{_DNS_LABEL})*/)?{_QUALIFIED_NAME}")


def validate_label_key(key: Any) -> str | None:
    """An error message for an invalid label (or annotation) key, else None."""
    if not isinstance(key, str):
        return "must be a string"
    if len(key) <= 63 and _SIMPLE_KEY_RE.fullmatch(key):  # fast path: short and valid
        return None
    errs = qualified_name_errors(key)
    return "; ".join(errs) if errs else None


def validate_label_value(value: Any) -> str | None:
    """An error message for an invalid label value (empty is valid), else None."""
    if not isinstance(value, str):
        return "must be a string"
    if len(value) <= 63 and _LABEL_VALUE_RE.fullmatch(value):
        return None
    errs = [max_len_msg(63)] if len(value) > 63 else []
    if len(value) > 253 or not _LABEL_VALUE_RE.fullmatch(value):
        errs.append(_LABEL_VALUE_MSG)
    return "; ".join(errs) if errs else None


# --- selectors ------------------------------------------------------------------------------------------------------

_SET_OPS = {"in", "notin"}
_OPS_TEXT = {"exists": "{k}", "!": "!{k}", "=": "{k}={v}", "==": "{k}=={v}", "!=": "{k}!={v}",
             "gt": "{k}>{v}", "lt": "{k}<{v}", "in": "{k} in ({v})", "notin": "{k} notin ({v})"}


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # exists ! = == != in notin gt lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.op
        if op == "exists":
            return self.key in labels
        if op == "!":
            return self.key not in labels
        has = self.key in labels
        if op in ("=", "==", "in"):
            return has and labels[self.key] in self.values
        if op in ("!=", "notin"):
            return not has or labels[self.key] not in self.values
        if not has:
            return False
        try:
            actual, bound = int(labels[self.key]), int(self.values[0])
        except ValueError:
            return False
        return actual > bound if op == "gt" else actual < bound

    def __str__(self) -> str:
        vals = ",".join(sorted(self.values)) if self.op in _SET_OPS else (self.values[0] if self.values else "")
        return _OPS_TEXT[self.op].format(k=self.key, v=vals)


@dataclass(frozen=True)
class Selector:
    """A conjunction of requirements. ``nothing`` marks the selector that selects no object (a nil LabelSelector)."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    @property
    def empty(self) -> bool:
        """True when the selector selects everything."""
        return not self.requirements and not self.nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _selector(reqs: Iterable[Requirement]) -> Selector:
    return Selector(tuple(sorted(reqs, key=lambda r: r.key)))


def everything() -> Selector:
    return Selector()


def nothing() -> Selector:
    return Selector(nothing=True)


def _check_key(key: str) -> None:
    err = validate_label_key(key)
    if err:
        raise ValueError(f"invalid label key {key!r}: {err}")


def _check_value(value: str) -> None:
    err = validate_label_value(value)
    if err:
        raise ValueError(f"invalid label value {value!r}: {err}")


def _requirement(key: str, op: str, values: Iterable[str] = ()) -> Requirement:
    _check_key(key)
    vals = tuple(values)
    if op in ("gt", "lt"):
        if len(vals) != 1 or not re.fullmatch(r"-?[0-9]+", vals[0]):
            raise ValueError(f"for '{'>' if op == 'gt' else '<'}' operator on {key!r}, the value must be an integer")
    else:
        for v in vals:
            _check_value(v)
    return Requirement(key, op, vals)


_SYMBOLS = {"==", "!=", "=", "!", "(", ")", ",", "<", ">"}
_TOKEN_RE = re.compile(r"\s*(?:(==|!=|=|!|\(|\)|,|<|>)|([^\s!=(),<>]+))")


def _tokenize(text: str) -> list[str]:
    tokens, pos, n = [], 0, len(text)
    while pos < n:
        m = _TOKEN_RE.match(text, pos)
        if m is None:  # only trailing whitespace is left
            break
        tokens.append(m.group(1) or m.group(2))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> str | None:
        t = self.peek()
        self.i += 1
        return t

    def ident(self, what: str) -> str:
        t = self.take()
        if t is None or t in _SYMBOLS:
            raise ValueError(f"found {t or 'end of input'!r}, expected: {what}")
        return t

    def requirement(self) -> Requirement:
        if self.peek() == "!":
            self.take()
            return _requirement(self.ident("identifier after '!'"), "!")
        key = self.ident("identifier")
        op = self.peek()
        if op is None or op == ",":
            return _requirement(key, "exists")
        self.take()
        if op in ("=", "==", "!="):
            nxt = self.peek()
            value = "" if nxt is None or nxt == "," else self.ident("value")
            return _requirement(key, op, (value,))
        if op in (">", "<"):
            return _requirement(key, "gt" if op == ">" else "lt", (self.ident("integer value"),))
        if op in _SET_OPS:
            if self.take() != "(":
                raise ValueError(f"expected '(' after {op!r} for key {key!r}")
            values: list[str] = []
            while True:
                t = self.take()
                if t == ")" and not values:
                    break
                if t in (",", ")"):
                    values.append("")
                else:
                    if t is None or t in _SYMBOLS:
                        raise ValueError(f"found {t or 'end of input'!r}, expected: ',' or ')' in values of {key!r}")
                    values.append(t)
                    t = self.take()
                if t == ")":
                    break
                if t != ",":
                    raise ValueError(f"found {t or 'end of input'!r}, expected: ',' or ')' in values of {key!r}")
            if not values:
                raise ValueError(f"for {op!r} operator on {key!r}, values set can't be empty")
            return _requirement(key, op, values)
        raise ValueError(f"found {op!r}, expected: in, notin, =, ==, !=, gt, lt")


def parse_selector(text: str) -> Selector:
    """Parse the string form; ``ValueError`` naming the problem on a syntax error or an invalid key/value."""
    if not isinstance(text, str):
        raise ValueError("a label selector must be a string")
    p = _Parser(text)
    reqs: list[Requirement] = []
    if p.peek() is None:
        return everything()
    while True:
        try:
            reqs.append(p.requirement())
        except ValueError as e:
            raise ValueError(f"unable to parse requirement: {e}") from None
        t = p.take()
        if t is None:
            break
        if t != ",":
            raise ValueError(f"unable to parse requirement: found {t!r}, expected: ','")
    return _selector(reqs)


_EXPR_OPS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def selector_from_label_selector(sel: Any) -> Selector:
    """``metav1.LabelSelectorAsSelector``: None selects nothing, ``{}`` selects everything."""
    if sel is None:
        return nothing()
    if not isinstance(sel, Mapping):
        sel = sel.model_dump(by_alias=True, exclude_none=True)
    reqs = [_requirement(k, "=", (v,)) for k, v in (sel.get("matchLabels") or {}).items()]
    for e in sel.get("matchExpressions") or ():
        op = _EXPR_OPS.get(e.get("operator"))
        if op is None:
            raise ValueError(f"{e.get('operator')!r} is not a valid label selector operator")
        values = e.get("values") or ()
        if op in _SET_OPS and not values:
            raise ValueError("for 'in', 'notin' operators, values set can't be empty")
        if op not in _SET_OPS and values:
            raise ValueError("values set must be empty for exists and does not exist")
        reqs.append(_requirement(e.get("key", ""), op, values))
    return _selector(reqs)


def selector_from_map(labels: Mapping[str, str] | None) -> Selector:
    """An equality selector as ReplicationController/Service selectors are (empty or None selects everything)."""
    return _selector(_requirement(k, "=", (v,)) for k, v in (labels or {}).items())
