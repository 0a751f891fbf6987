"""What every ``python -m`` entry point shares (``master``, ``master.scheduler``, ``master.gateway``,
``node``, ``node.proxy``, ``node.hollow``): the ``--server`` and ``--log-level`` options, resolving
them, and running the main coroutine.

    p = argparse.ArgumentParser(prog="python -m node.proxy")
    cmdline.add_common_options(p)        # --server/-s, --log-level
    cmdline.add_node_name_option(p)      # --name (node entry points)
    args = cmdline.parse(p, argv)        # args.server is a URL; logging is configured
    cmdline.run(main(args))

``--server``, else ``K8N_SERVER``, else the server ``k8n up`` recorded in the data directory
(``bus.config.server_url``), else ``bus.config.DEFAULT_SERVER``. ``--creds-dir`` (else ``K8N_CREDS_DIR``, else
``<data dir>/creds``) is where the process finds the bus credentials of its identities (``bus.connect``). ``--log-level``, else
``K8N_LOG_LEVEL``, else INFO.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import socket
from pathlib import Path
from typing import Any, Callable, Coroutine, TypeVar

from bus import aio, config
from bus.settings import SettingsError

T = TypeVar("T")
LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
DEFAULT_LOG_LEVEL = "INFO"


def add_common_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--server", "-s", default=None,
                        help="NATS URL (default: $K8N_SERVER, else the server `k8n up` recorded in the data "
                             f"directory, else {config.DEFAULT_SERVER})")
    parser.add_argument("--creds-dir", default=None,
                        help="directory of the bus credentials (<identity>.creds) this process connects with "
                             "(default: $K8N_CREDS_DIR, else <data dir>/creds, where `k8n up` mints them)")
    parser.add_argument("--log-level", default=None,
                        help=f"DEBUG, INFO, WARNING, ERROR (default: $K8N_LOG_LEVEL, else {DEFAULT_LOG_LEVEL})")
    return parser


def node_name() -> str:
    """A node entry point's default ``--name``: ``K8N_NODE_NAME``, else this host's name."""
    return os.environ.get("K8N_NODE_NAME") or socket.gethostname().lower()


def add_node_name_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--name", default=node_name(), help="the node's name (default: $K8N_NODE_NAME, else hostname)")
    return parser


def log_level(flag: str | None) -> str:
    """The level name to log at; ValueError when it is not one."""
    level = (flag or os.environ.get("K8N_LOG_LEVEL") or DEFAULT_LOG_LEVEL).strip().upper()
    if not isinstance(logging.getLevelName(level), int):
        source = "--log-level" if flag else "K8N_LOG_LEVEL"
        raise ValueError(f"{source}: unknown log level {level!r} (DEBUG, INFO, WARNING, ERROR, CRITICAL)")
    return level


def configure_logging(level: str) -> None:
    # the format names no thread or process: each record skips looking them up (a share of the CPU of busy loops)
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.basicConfig(level=level, format=LOG_FORMAT)


def resolve(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Fill in ``args.server`` (a URL) and ``args.log_level`` (a level name) and configure logging.
    A bad log level is a usage error (``parser.error``, exit 2)."""
    args.server = config.server_url(args.server)
    if getattr(args, "creds_dir", None):  # every connection of this process looks there (bus.connect)
        os.environ["K8N_CREDS_DIR"] = str(Path(args.creds_dir).expanduser().resolve())
    try:
        args.log_level = log_level(args.log_level)
    except ValueError as e:
        _usage_error(parser, str(e))
    configure_logging(args.log_level)
    return args


def parse(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args(argv)``, then :func:`resolve`."""
    return resolve(parser.parse_args(argv), parser)


def settings(parser: argparse.ArgumentParser | None, build: Callable[[], T]) -> T:
    """``build()`` (settings read from the environment); a bad value (``SettingsError``, which names the
    variable) is a usage error rather than a traceback."""
    try:
        return build()
    except SettingsError as e:
        _usage_error(parser, f"bad setting: {e}")
        raise  # not reached


#: the cyclic collector's thresholds (gen0 allocations, gen1 and gen2 collections; CPython's default: 700, 10, 10)
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Informer caches hold hundreds of thousands of small dicts with no cycles among them: with CPython's default
    thresholds the collector rescans them every few hundred allocations, which costs more CPU than the work (and
    tail latency). Collect young objects ~70x less often, and never rescan what was imported before the start."""
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()


def run(main: Coroutine[Any, Any, Any], uvloop: bool = True) -> None:
    """Run an entry point's main coroutine to its end; Ctrl-C ends it quietly. ``uvloop=False``: the
    standard loop (the node agent's netlink sockets need datagram endpoints uvloop lacks). Missing or refused bus
    credentials end it with a message naming them (exit 1), not a traceback."""
    from bus import connect, skew
    from bus.natsauth import AuthError

    connect.STOP_WHEN_REVOKED = True
    skew.CHECK_AT_CONNECT = True  # a component outside the version-skew policy stops at connect, saying why
    tune_gc()
    try:
        if uvloop:
            aio.run(main)
        else:
            asyncio.run(main)
    except KeyboardInterrupt:
        pass
    except (AuthError, BaseExceptionGroup) as e:
        auth = [e] if isinstance(e, AuthError) else list(_auth_errors(e))
        if not auth:
            raise
        for err in dict.fromkeys(str(a) for a in auth):
            logging.getLogger("k8n").error("%s", err)
        raise SystemExit(1) from None


def _auth_errors(group: BaseExceptionGroup):
    from bus.natsauth import AuthError

    for e in group.exceptions:
        if isinstance(e, AuthError):
            yield e
        elif isinstance(e, BaseExceptionGroup):
            yield from _auth_errors(e)


def _usage_error(parser: argparse.ArgumentParser | None, message: str) -> None:
    if parser is not None:
        parser.error(message)
    raise SystemExit(f"error: {message}")
