"""Codecs: msgpack between components, orjson/YAML at the edges."""

from __future__ import annotations

from typing import Any

import msgpack
import orjson
import yaml

# The bus is JSON-compatible data only (dicts, lists, str, int, float, bool, None).


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def to_json(obj: Any, pretty: bool = False) -> bytes:
    opts = orjson.OPT_INDENT_2 if pretty else 0
    return orjson.dumps(obj, option=opts | orjson.OPT_NON_STR_KEYS)


def from_json(data: bytes | str) -> Any:
    return orjson.loads(data)


def is_json(data: bytes) -> bool:
    """A request whose first non-blank byte is '{' is JSON (a msgpack map never starts so)."""
    stripped = data.lstrip()
    return stripped[:1] == b"{"


def decode(data: bytes) -> tuple[Any, bool]:
    """Decode a request payload; returns (value, was_json). Raises ValueError on garbage."""
    if is_json(data):
        try:
            return orjson.loads(data), True
        except orjson.JSONDecodeError as e:
            raise ValueError(f"invalid JSON: {e}") from None
    try:
        return unpack(data), False
    except Exception as e:  # msgpack raises several types on garbage
        raise ValueError(f"invalid msgpack: {e}") from None


def encode(obj: Any, as_json: bool) -> bytes:
    return to_json(obj) if as_json else pack(obj)


# ---- YAML with bounds: what a client sends is composed (aliases are shared nodes, nothing expanded yet),
# measured, and only then constructed. As sigs.k8s.io/yaml (go-yaml) refuses "excessive aliasing", a
# document whose aliases would add more than MAX_ALIAS_NODES nodes is refused before it is expanded, and
# maps/lists nested deeper than MAX_DEPTH (the API server's limit) are refused while composing, before
# the composer's recursion could reach Python's recursion limit.

MAX_DEPTH = 100  # as master/apiserver/server.py: the outermost map/list is level 0
MAX_ALIAS_NODES = 10_000


class YamlLimitError(yaml.YAMLError):
    """A YAML document over a bound (nesting, alias expansion); its text is the user's message."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_expansion(root: yaml.Node, allowed: int) -> None:
    """Refuse a composed document whose expansion has more than ``allowed`` nodes, nests deeper than
    MAX_DEPTH, or refers to itself; iterative, each distinct node visited once."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}  # map/list levels below and including the node
    path = {id(root)}
    stack = [(root, iter(_children(root)))]
    while stack:
        node, rest = stack[-1]
        for child in rest:
            if id(child) in size:
                continue
            if id(child) in path:
                raise YamlLimitError("document contains a recursive alias")
            path.add(id(child))
            stack.append((child, iter(_children(child))))
            break
        else:
            stack.pop()
            path.discard(id(node))
            kids = _children(node)
            size[id(node)] = 1 + sum(size[id(c)] for c in kids)
            own = 1 if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)) else 0
            depth[id(node)] = own + max((depth[id(c)] for c in kids), default=0)
            if size[id(node)] > allowed:
                raise YamlLimitError(f"document contains excessive aliasing (more than {MAX_ALIAS_NODES} "
                                     "nodes through aliases)")
            if depth[id(node)] > MAX_DEPTH + 1:
                raise YamlLimitError(f"document is nested deeper than {MAX_DEPTH} levels")


class BoundedLoader(yaml.SafeLoader):
    """The safe loader with the bounds above. Timestamps stay strings and ``!!binary`` becomes the
    decoded text, as in sigs.k8s.io/yaml (manifests are JSON: no datetime or bytes values)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._levels = 0  # maps/lists being composed
        self._composed = 0  # nodes composed in this document

    # The scanner's own nesting (flow brackets, block indentation) is bounded too: PyYAML's scanner does work
    # quadratic in it before the composer ever sees a node.
    def fetch_flow_collection_start(self, token_class: Any) -> None:
        if self.flow_level > MAX_DEPTH:
            raise YamlLimitError(f"document is nested deeper than {MAX_DEPTH} levels")
        super().fetch_flow_collection_start(token_class)

    def add_indent(self, column: int) -> bool:
        if len(self.indents) > MAX_DEPTH:
            raise YamlLimitError(f"document is nested deeper than {MAX_DEPTH} levels")
        return super().add_indent(column)

    def compose_node(self, parent: Any, index: Any) -> Any:
        collection = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)
        self._composed += 1
        if not collection:
            return super().compose_node(parent, index)
        self._levels += 1
        try:
            if self._levels > MAX_DEPTH + 1:
                raise YamlLimitError(f"document is nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._levels -= 1

    def construct_document(self, node: Any) -> Any:
        composed, self._composed = self._composed, 0
        _check_expansion(node, composed + MAX_ALIAS_NODES)
        return super().construct_document(node)

    def construct_yaml_binary(self, node: Any) -> Any:
        data = super().construct_yaml_binary(node)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise yaml.constructor.ConstructorError(None, None, "a !!binary value must decode to UTF-8 text",
                                                    node.start_mark) from None


BoundedLoader.add_constructor("tag:yaml.org,2002:timestamp", BoundedLoader.construct_yaml_str)
BoundedLoader.add_constructor("tag:yaml.org,2002:binary", BoundedLoader.construct_yaml_binary)


def load_yaml(text: str | bytes) -> Any:
    """One YAML (or JSON) document, bounded (BoundedLoader); raises yaml.YAMLError."""
    return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 - a SafeLoader


def load_yaml_documents(text: str) -> list[Any]:
    """All non-empty documents of a multi-document YAML (or JSON) text, bounded (BoundedLoader)."""
    return [d for d in yaml.load_all(text, Loader=BoundedLoader) if d is not None]  # noqa: S506


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when maps/lists nest deeper than ``limit`` (as the API server counts; recursion bounded)."""

    def ok(v: Any, level: int) -> bool:
        if level > limit:
            return False
        for x in (v.values() if type(v) is dict else v):
            if type(x) in (dict, list) and not ok(x, level + 1):
                return False
        return True

    return type(value) in (dict, list) and not ok(value, 0)


def to_yaml(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)
