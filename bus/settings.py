"""Typed settings, as kopf's ``configuration.py`` keeps them: a component's settings are one dataclass
whose fields each carry their default and their description, once. Everything else is derived from
the field: its option name (``node_monitor_grace_period`` → ``node-monitor-grace-period``, or the
``name`` given to :func:`setting`), its environment variable (``K8N_`` + the option name upper-cased
with ``_`` for ``-``: ``K8N_NODE_MONITOR_GRACE_PERIOD``), parsing to the field's type with an error
that names the variable, and the README's table (:func:`markdown_table`, checked by a unit test).

    @dataclass(frozen=True)
    class Settings:
        gc_workers: int = setting(4, "concurrent reconciles of the garbage collector")

    Settings.load()                          # from $K8N_GC_WORKERS, else the default
    load(Settings, {"gc-workers": 8})        # options first, then the environment
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterable, Mapping, TypeVar, get_type_hints

T = TypeVar("T")
ENV_PREFIX = "K8N_"
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


class SettingsError(ValueError):
    """A setting's value cannot be used. The message names where it came from (the environment
    variable or the option) and what was expected; entry points print it instead of a traceback."""


def setting(default: Any, doc: str, *, name: str | None = None) -> Any:
    """A settings field: its ``default`` and its one-line description ``doc``; ``name`` overrides the
    option name derived from the field's name."""
    return dataclasses.field(default=default, metadata={"doc": doc, "name": name})


def option_name(f: dataclasses.Field) -> str:
    return f.metadata.get("name") or f.name.replace("_", "-")


def env_name(option: str) -> str:
    """``node-monitor-grace-period`` → ``K8N_NODE_MONITOR_GRACE_PERIOD``."""
    return ENV_PREFIX + option.upper().replace("-", "_")


def fields(cls: type) -> list[dataclasses.Field]:
    """The documented settings of ``cls`` (every field made with :func:`setting`)."""
    return [f for f in dataclasses.fields(cls) if "doc" in f.metadata]


def parse(kind: type, raw: Any, source: str) -> Any:
    """``raw`` (a string from the environment, or an option's value) as ``kind``; ``source`` names
    it in the error."""
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise SettingsError(f"{source}={raw!r}: expected a boolean (true/false)")
    if kind is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        try:
            return int(str(raw).strip())
        except ValueError:
            raise SettingsError(f"{source}={raw!r}: expected an integer") from None
    if kind is float:
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return float(raw)
        try:
            return float(str(raw).strip())
        except ValueError:
            raise SettingsError(f"{source}={raw!r}: expected a number") from None
    return str(raw)


def given(cls: type, options: Mapping[str, Any] | None = None,
          environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings of ``cls`` that are set, parsed, by field name: ``options[<option name>]``, else
    ``environ[K8N_<NAME>]`` (default: ``os.environ``). Unset ones are left out."""
    options = options or {}
    environ = os.environ if environ is None else environ
    hints = get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in fields(cls):
        opt = option_name(f)
        if opt in options:
            out[f.name] = parse(hints[f.name], options[opt], f"option {opt}")
        elif (var := env_name(opt)) in environ:
            out[f.name] = parse(hints[f.name], environ[var], var)
    return out


def load(cls: type[T], options: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> T:
    """An instance of ``cls``: each field from the options, else the environment, else its default."""
    return cls(**given(cls, options, environ))


def _default(value: Any) -> str:
    if value is None or value == "":
        return "–"  # the description says what happens then
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return f"`{value}`"
    return str(value)


def markdown_table(classes: Iterable[type], flags: bool = False) -> str:
    """The settings of ``classes`` as a markdown table: option name (``--name`` with ``flags``), environment
    variable, default, description (what the README shows)."""
    rows = [f"| {'flag' if flags else 'setting'} | environment | default | meaning |", "|---|---|---|---|"]
    for cls in classes:
        for f in fields(cls):
            opt = option_name(f)
            doc = " ".join(f.metadata["doc"].split()).replace("|", "\\|")
            rows.append(f"| `{'--' if flags else ''}{opt}` | `{env_name(opt)}` | {_default(f.default)} | {doc} |")
    return "\n".join(rows) + "\n"


def add_flags(parser: Any, cls: type, environ: Mapping[str, str] | None = None) -> Any:
    """One command-line flag per documented setting of ``cls`` (``--lease-seconds``; a boolean is a switch),
    its default taken from the environment (``K8N_LEASE_SECONDS``) else the field's, its help the field's
    description. The parsed value lands in ``args.<field name>``. Raises SettingsError for a bad variable."""
    hints = get_type_hints(cls)
    from_env = given(cls, None, environ)
    for f in fields(cls):
        default = from_env.get(f.name, f.default)
        flag = "--" + option_name(f)
        if hints[f.name] is bool:
            parser.add_argument(flag, dest=f.name, action="store_true", default=default, help=f.metadata["doc"])
        else:
            kind = hints[f.name] if hints[f.name] in (int, float) else str
            parser.add_argument(flag, dest=f.name, type=kind, default=default, help=f.metadata["doc"])
    return parser


def values(args: Any, cls: type) -> dict[str, Any]:
    """The documented settings of ``cls`` from parsed ``args`` (what :func:`add_flags` added), by field name."""
    return {f.name: getattr(args, f.name) for f in fields(cls)}


def readme_main(prog: str, blocks: Mapping[str, str], readme: str, argv: list[str] | None = None) -> None:
    """The command that prints the README's settings tables, or with ``--write [README]`` rewrites their
    blocks: ``blocks`` maps a block name to its table."""
    import argparse
    from pathlib import Path

    p = argparse.ArgumentParser(prog=prog, description="Print settings tables, or write them into README.md.")
    p.add_argument("--write", nargs="?", const=readme, default=None, metavar="README",
                   help=f"rewrite the <!-- settings:BLOCK --> blocks of README (default {readme})")
    args = p.parse_args(argv)
    if args.write is None:
        for block, table in blocks.items():
            print(f"{begin_marker(block)}\n{table}{END_MARKER}")
        return
    path = Path(args.write)
    text = path.read_text()
    try:
        for block, table in blocks.items():
            text = replace_block(text, block, table)
    except SettingsError as e:
        p.error(f"{path}: {e}")
    path.write_text(text)
    print(f"wrote the settings tables ({', '.join(blocks)}) into {path}")


def begin_marker(block: str) -> str:
    return f"<!-- settings:{block} -->"


END_MARKER = "<!-- /settings -->"


def marked_block(text: str, block: str) -> str | None:
    """What ``text`` holds between ``<!-- settings:<block> -->`` and the next ``<!-- /settings -->``
    (None when the markers are missing)."""
    begin = text.find(begin_marker(block))
    if begin < 0:
        return None
    start = text.find("\n", begin) + 1
    end = text.find(END_MARKER, start)
    if start <= 0 or end < 0:
        return None
    return text[start:end]


def replace_block(text: str, block: str, content: str) -> str:
    """``text`` with the marked ``block`` replaced by ``content``; SettingsError when the markers are missing."""
    if marked_block(text, block) is None:
        raise SettingsError(f"no {begin_marker(block)} … {END_MARKER} block found")
    begin = text.find(begin_marker(block))
    start = text.find("\n", begin) + 1
    end = text.find(END_MARKER, start)
    return text[:start] + content + text[end:]
