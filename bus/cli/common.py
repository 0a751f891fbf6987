"""What every client verb shares: the connection options, running an async body with
kubectl-style error reporting, reading manifests, and naming resources from the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, NoReturn

import typer

from bus import config, errors
from bus.resources import Resource, all_category, resolve

if TYPE_CHECKING:  # the client (nats-py, aiohttp) and codecs are imported only by the commands that use them
    from bus.client import ApiClient

ServerOpt = typer.Option(None, "--server", "-s", envvar="K8N_SERVER", help="NATS URL of the cluster")
DataDirOpt = typer.Option(None, "--data-dir", envvar="K8N_DATA_DIR", help="data directory (default ~/.k8n)")
NamespaceOpt = typer.Option(None, "--namespace", "-n", help="namespace (default: default)")
FilenameOpt = typer.Option(None, "--filename", "-f", help="file, directory or - (stdin); repeatable")

DEFAULT_NAMESPACE = "default"
CONNECT_TIMEOUT = 3.0
Target = tuple[Resource, list[str]]


class CliError(Exception):
    """An error already worded for the user (printed as ``error: <message>``)."""


class Failures:
    """Counts errors a verb reported while carrying on (kubectl prints them and keeps going)."""

    def __init__(self) -> None:
        self.count = 0

    def report(self, exc: BaseException) -> None:
        self.count += 1
        print(error_text(exc), file=sys.stderr, flush=True)


def error_text(exc: BaseException) -> str:
    """kubectl's wording for an error."""
    if isinstance(exc, errors.ApiError):
        if exc.code == 422 and exc.details:
            return _invalid_text(exc)
        return f"Error from server ({exc.reason}): {exc.message}"
    return f"error: {exc}"


def _invalid_text(exc: errors.ApiError) -> str:
    d = exc.details or {}
    head = f'The {d.get("kind", "")} "{d.get("name", "")}" is invalid'
    causes = [f'{c.get("field")}: {c.get("message")}' if c.get("field") else str(c.get("message"))
              for c in exc.causes]
    if not causes:
        return f"{head}: {exc.message}"
    if len(causes) == 1:
        return f"{head}: {causes[0]}"
    return f"{head}: \n" + "\n".join(f"* {c}" for c in causes)


def print_warnings(warnings: list[str]) -> None:
    for w in warnings:
        print(f"Warning: {w}", file=sys.stderr, flush=True)
    warnings.clear()


async def connect(server: str | None, data_dir: str | None) -> ApiClient:
    import asyncio

    from bus.client import ApiClient

    from bus.connect import find_credentials
    from bus.natsauth import AuthError

    url = config.server_url(server, data_dir)
    try:
        creds = find_credentials(directory=config.data_dir(data_dir) / "creds" if data_dir else None)
    except AuthError as e:
        raise CliError(str(e)) from None
    last: list[BaseException] = []
    every_server_failed = asyncio.Event()

    async def quiet(e: BaseException) -> None:
        # the client keeps retrying; once every server in the URL has refused, stop waiting
        last.append(e)
        if len(last) >= url.count(",") + 1:
            every_server_failed.set()

    connecting = asyncio.ensure_future(ApiClient.connect(url, creds=str(creds.path), error_cb=quiet,
                                                         connect_timeout=2))
    failed = asyncio.ensure_future(every_server_failed.wait())
    try:
        await asyncio.wait([connecting, failed], timeout=CONNECT_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        failed.cancel()
        if not connecting.done():
            connecting.cancel()
            raise TimeoutError()
        return connecting.result()
    except AuthError as e:
        raise CliError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - any failure to connect is "cannot reach"
        why = last[-1] if last else e
        if "authorization violation" in str(why).lower():
            raise CliError(f"the k8n cluster at {url} refused the credentials {creds.path} "
                           f"({creds.identity.token}): {why}") from None
        raise CliError(f"cannot reach the k8n cluster at {url}: {why or type(why).__name__}") from None


def run(server: str | None, data_dir: str | None, body: Callable[[ApiClient], Awaitable[int | None]]) -> None:
    """Connect, run ``body(client)``, close; errors become kubectl-style messages and exit 1."""
    import asyncio

    async def main() -> int:
        client = await connect(server, data_dir)
        try:
            try:  # the custom resources the cluster serves, so that their names resolve like built-in ones
                await client.load_definitions()
            except Exception:  # noqa: BLE001 - an identity that may not read them: built-in kinds only
                pass
            return int(await body(client) or 0)
        finally:
            await client.close()

    try:
        code = asyncio.run(main())
    except KeyboardInterrupt:
        code = 130
    except (errors.ApiError, CliError) as e:
        fail(e)
    raise typer.Exit(code)


def fail(exc: BaseException) -> NoReturn:
    print(error_text(exc), file=sys.stderr)
    raise typer.Exit(1)


def manifests_or_exit(paths: list[str] | None, verb: str) -> list[dict]:
    """The ``-f`` objects, read before connecting (a bad file needs no cluster to report)."""
    try:
        return load_manifests(paths, verb)
    except CliError as e:
        fail(e)


# ---- naming resources ---------------------------------------------------------------------------

def resource(name: str) -> Resource:
    r = resolve(name)
    if r is None:
        raise CliError(f'the server doesn\'t have a resource type "{name}"')
    return r


def parse_targets(args: list[str], verb: str = "get") -> list[Target]:
    """``KIND [NAME...]``, ``KIND/NAME...``, ``KIND1,KIND2`` and ``all`` → [(resource, names)]."""
    if not args:
        raise CliError(f"You must specify the type of resource to {verb}.")
    if "/" in args[0]:
        targets: dict[Resource, list[str]] = {}
        for a in args:
            kind, sep, name = a.partition("/")
            if not sep or not name:
                raise CliError("arguments in resource/name form must have a single resource and name")
            targets.setdefault(resource(kind), []).append(name)
        return list(targets.items())
    out: list[Target] = []
    for kind in args[0].split(","):
        for r in (all_category() if kind.strip().lower() == "all" else [resource(kind)]):
            if r not in [t[0] for t in out]:
                out.append((r, list(args[1:])))
    return out


def namespace_of(res: Resource, obj: dict | None, flag: str | None) -> str | None:
    """The namespace an object goes to: its own, else ``-n``, else ``default`` (None if cluster-scoped)."""
    if not res.namespaced:
        return None
    own = ((obj or {}).get("metadata") or {}).get("namespace")
    return own or flag or DEFAULT_NAMESPACE


def resource_for_object(obj: dict) -> Resource:
    """The resource of a manifest's ``kind`` (``bus.client.resource_for_object``, imported when first used)."""
    from bus.client import resource_for_object as of_object

    return of_object(obj)


def object_ref(obj: dict) -> str:
    """``deployment.apps/web`` as kubectl prints it."""
    return f"{resource_for_object(obj).cli_name}/{obj.get('metadata', {}).get('name', '')}"


# ---- manifests ----------------------------------------------------------------------------------

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def _files(path: str) -> list[tuple[str, bytes]]:
    """(source name, bytes) for ``-``, a file, or the manifests in a directory (sorted)."""
    if path == "-":
        return [("<stdin>", sys.stdin.buffer.read())]
    p = Path(path)
    if p.is_dir():
        return [(str(f), f.read_bytes()) for f in sorted(p.iterdir()) if f.suffix in MANIFEST_SUFFIXES]
    if not p.exists():
        raise CliError(f'the path "{path}" does not exist')
    return [(str(p), p.read_bytes())]


def _document_at(raw: bytes, offset: int) -> int:
    """The number (from 1) of the YAML document holding byte ``offset``: ``---`` lines after content."""
    n, content = 1, False
    for line in raw[:offset].split(b"\n")[:-1]:
        if line.startswith(b"---"):
            if content:
                n += 1
            content = bool(line[3:].strip())
        elif line.strip() and not line.lstrip().startswith(b"#"):
            content = True
    return n


def _yaml_problem(e: Exception) -> str:
    """A YAML error on one line: ``line L, column C: context; problem``."""
    problem = getattr(e, "problem", None)
    if not problem:
        return " ".join(str(e).split())
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    context = getattr(e, "context", None)
    return where + " ".join((f"{context}; {problem}" if context else problem).split())


def _expand(doc: Any, where: str) -> list[dict]:
    if not isinstance(doc, dict):
        raise CliError(f"{where}: a manifest must be a mapping")
    kind = doc.get("kind")
    if kind == "List" or (isinstance(kind, str) and kind.endswith("List") and "items" in doc):
        items = doc.get("items") or []
        if not isinstance(items, list):
            raise CliError(f"{where}: items must be a list")
        return [o for i, item in enumerate(items, 1) for o in _expand(item, f"{where}: item {i}")]
    for field in ("apiVersion", "kind"):
        if not doc.get(field):
            raise CliError(f"{where}: missing {field}")
        if not isinstance(doc[field], str):
            raise CliError(f"{where}: {field} must be a string")
    return [doc]


def _documents(source: str, raw: bytes) -> list[tuple[str, Any]]:
    """("<source>: document N", value) for every non-empty document of a file; CliError (one line) otherwise."""
    import orjson
    import yaml

    from bus import codec

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CliError(f"{source}: document {_document_at(raw, e.start)}: invalid UTF-8 at byte {e.start}") from None
    out: list[tuple[str, Any]] = []
    if text.lstrip().startswith(("{", "[")):
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            why = f"nested deeper than {codec.MAX_DEPTH} levels" if "depth limit" in str(e) else str(e)
            raise CliError(f"{source}: document 1: {why}") from None
        if codec.too_deep(doc):
            raise CliError(f"{source}: document 1: nested deeper than {codec.MAX_DEPTH} levels")
        return [(f"{source}: document 1", doc)]
    n = 0
    docs = yaml.load_all(text, Loader=codec.BoundedLoader)  # noqa: S506 - a SafeLoader
    while True:
        try:
            doc = next(docs)
        except StopIteration:
            return out
        except yaml.YAMLError as e:
            raise CliError(f"{source}: document {n + 1}: {_yaml_problem(e)}") from None
        n += 1
        if doc is not None:
            out.append((f"{source}: document {n}", doc))


def load_manifests(paths: list[str] | None, verb: str) -> list[dict]:
    """Every object in the ``-f`` arguments, in order; ``kind: List`` documents are expanded. A file that
    is not UTF-8 or YAML/JSON, or a document without apiVersion or kind, is one CliError naming the file
    and the document."""
    if not paths:
        raise CliError("must specify one of -f and -k")
    out: list[dict] = []
    for path in paths:
        for source, raw in _files(path):
            for where, doc in _documents(source, raw):
                out.extend(_expand(doc, where))
    if not out:
        raise CliError(f"no objects passed to {verb}")
    return out


async def each_object(objs: list[dict], action: Callable[[dict, list[str]], Awaitable[str]]) -> int:
    """Run ``action(obj, warnings)`` for every object, printing its line (or its error, then going
    on, as kubectl does); 1 if any failed."""
    failures = Failures()
    for obj in objs:
        warnings: list[str] = []
        try:
            line = await action(obj, warnings)
        except (errors.ApiError, CliError) as e:
            print_warnings(warnings)
            failures.report(e)
            continue
        print_warnings(warnings)
        print(line, flush=True)
    return 1 if failures.count else 0
