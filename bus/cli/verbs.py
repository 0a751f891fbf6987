"""The kubectl-shaped client verbs of ``k8n``. Each lives in its own module and registers itself on
``bus.cli.main.app`` when imported; ``version`` is small enough to live here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import typer

import bus
from bus.cli import apply, delete, describe, get, history, join, nodecmds, rollout  # noqa: F401  (their commands)
from bus.cli.common import DataDirOpt, ServerOpt, run
from bus.cli.main import app

if TYPE_CHECKING:
    from bus.client import ApiClient


@app.command()
def version(
    client_only: bool = typer.Option(False, "--client", help="print only the client version"),
    server: Optional[str] = ServerOpt,
    data_dir: Optional[str] = DataDirOpt,
) -> None:
    """Print the client and server versions."""
    print(f"Client Version: v{bus.__version__}", flush=True)
    if client_only:
        return

    async def body(client: ApiClient) -> int:
        info = await client.server_version()
        print(f"Server Version: {info.get('gitVersion', 'unknown')}")
        return 0

    run(server, data_dir, body)
