"""``k8n logs``, ``k8n exec`` and ``k8n top``: calls answered by the node agents over NATS."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, List, Optional

import typer

from bus.cli.common import DataDirOpt, ServerOpt, run
from bus.cli.main import app

if TYPE_CHECKING:
    from bus.client import ApiClient

NsOpt = typer.Option(None, "--namespace", "-n", help="namespace (default: default)")


@app.command()
def logs(
    pod: str = typer.Argument(..., help="POD or pod/POD"),
    container: Optional[str] = typer.Option(None, "--container", "-c"),
    follow: bool = typer.Option(False, "--follow", "-f"),
    tail: Optional[int] = typer.Option(None, "--tail"),
    previous: bool = typer.Option(False, "--previous", "-p"),
    namespace: Optional[str] = NsOpt,
    server: Optional[str] = ServerOpt,
    data_dir: Optional[str] = DataDirOpt,
) -> None:
    """Print the logs of a container in a pod."""
    from bus import nodeclient

    name = pod.split("/", 1)[1] if pod.startswith(("pod/", "pods/", "po/")) else pod

    async def body(client: ApiClient) -> int:
        out = sys.stdout.buffer
        async for chunk in nodeclient.logs(client, namespace or "default", name, container, follow,
                                           None if tail is None or tail < 0 else tail, previous):
            out.write(chunk)
            out.flush()
        return 0

    run(server, data_dir, body)


@app.command(name="exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_(
    ctx: typer.Context,
    pod: str = typer.Argument(..., help="POD or pod/POD"),
    container: Optional[str] = typer.Option(None, "--container", "-c"),
    stdin: bool = typer.Option(False, "--stdin", "-i", help="pass stdin to the container"),
    tty: bool = typer.Option(False, "--tty", "-t"),
    namespace: Optional[str] = NsOpt,
    server: Optional[str] = ServerOpt,
    data_dir: Optional[str] = DataDirOpt,
) -> None:
    """Run a command in a container: k8n exec POD [-c C] [-i] -- CMD ARGS..."""
    import asyncio

    from bus import nodeclient

    command: List[str] = list(ctx.args)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("error: you must specify at least one command for the container", file=sys.stderr)
        raise typer.Exit(1)
    name = pod.split("/", 1)[1] if pod.startswith(("pod/", "pods/", "po/")) else pod

    async def body(client: ApiClient) -> int:
        session = await nodeclient.exec_(client, namespace or "default", name, command, container, stdin, tty)
        feeder = None
        if stdin:
            async def feed() -> None:
                loop = asyncio.get_running_loop()
                while True:
                    data = await loop.run_in_executor(None, sys.stdin.buffer.read1, 65536)
                    if not data:
                        await session.close_stdin()
                        return
                    await session.write(data)
            feeder = asyncio.create_task(feed())
        async for stream, data in session:
            target = sys.stdout.buffer if stream == "stdout" else sys.stderr.buffer
            target.write(data)
            target.flush()
        if feeder is not None:
            feeder.cancel()
        return session.exit_code or 0

    run(server, data_dir, body)


top = typer.Typer(help="Show CPU and memory use of nodes or pods (from the node agents' metrics).")
app.add_typer(top, name="top")


def _cpu_m(q: str) -> int:
    from bus.quantity import cpu_millis

    return cpu_millis(q)


def _mem_mi(q: str) -> int:
    from bus.quantity import memory_bytes

    return memory_bytes(q) // (1024 * 1024)


async def _all_stats(client: "ApiClient") -> list[dict]:
    import asyncio

    from bus import nodeclient

    nodes, _ = await client.list("nodes")
    results = await asyncio.gather(*(nodeclient.stats(client, n["metadata"]["name"]) for n in nodes),
                                   return_exceptions=True)
    return [(n, r) for n, r in zip(nodes, results)]


@top.command("nodes")
def top_nodes(server: Optional[str] = ServerOpt, data_dir: Optional[str] = DataDirOpt) -> None:
    """CPU and memory of every node."""
    from bus.cli.printers import render

    async def body(client: ApiClient) -> int:
        rows = []
        for node, st in await _all_stats(client):
            name = node["metadata"]["name"]
            alloc = (node.get("status") or {}).get("allocatable") or {}
            if isinstance(st, BaseException) or not st.get("node"):
                rows.append([name, "<unknown>", "<unknown>", "<unknown>", "<unknown>"])
                continue
            u = st["node"]["usage"]
            cpu, mem = _cpu_m(u["cpu"]), _mem_mi(u["memory"])
            cpu_pct = f"{cpu * 100 // max(1, _cpu_m(alloc.get('cpu', '1')))}%"
            mem_pct = f"{mem * 100 // max(1, _mem_mi(alloc.get('memory', '1Mi')))}%"
            rows.append([name, f"{cpu}m", cpu_pct, f"{mem}Mi", mem_pct])
        print(render(["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"], rows))
        return 0

    run(server, data_dir, body)


@top.command("pods")
def top_pods(
    namespace: Optional[str] = NsOpt,
    all_namespaces: bool = typer.Option(False, "--all-namespaces", "-A"),
    server: Optional[str] = ServerOpt,
    data_dir: Optional[str] = DataDirOpt,
) -> None:
    """CPU and memory of the pods in a namespace."""
    from bus.cli.printers import render

    ns = namespace or "default"

    async def body(client: ApiClient) -> int:
        rows = []
        for _node, st in await _all_stats(client):
            if isinstance(st, BaseException):
                continue
            for p in st.get("pods") or []:
                m = p["metadata"]
                if not all_namespaces and m.get("namespace") != ns:
                    continue
                cpu = sum(_cpu_m(c["usage"]["cpu"]) for c in p["containers"])
                mem = sum(_mem_mi(c["usage"]["memory"]) for c in p["containers"])
                row = [m["name"], f"{cpu}m", f"{mem}Mi"]
                rows.append([m["namespace"], *row] if all_namespaces else row)
        if not rows:
            print(f"No resources found in {ns} namespace." if not all_namespaces else "No resources found",
                  file=sys.stderr)
            return 0
        head = ["NAME", "CPU(cores)", "MEMORY(bytes)"]
        print(render(["NAMESPACE", *head] if all_namespaces else head, sorted(rows)))
        return 0

    run(server, data_dir, body)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def agent(ctx: typer.Context, server: Optional[str] = ServerOpt, data_dir: Optional[str] = DataDirOpt) -> None:
    """Run a node agent: k8n agent --name NODE [--server URL] [--pod-cidr CIDR] [--hollow N] ...
    (every option of ``python -m node --help``)."""
    import os

    from bus import config
    from bus.cli.runner import agent_argv

    if data_dir:
        os.environ["K8N_DATA_DIR"] = data_dir
    argv = agent_argv(config.server_url(server, data_dir), list(ctx.args))
    os.execv(argv[0], argv)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def ingress(ctx: typer.Context, server: Optional[str] = ServerOpt, data_dir: Optional[str] = DataDirOpt) -> None:
    """Run the ingress controller (haproxy on ports 80/443) on this node: k8n ingress [--name NODE]
    [--ingress-http-port 80] [--ingress-https-port 443] ... (every option of ``python -m node.ingress --help``)."""
    import os

    from bus import config
    from bus.cli.runner import ingress_argv

    if data_dir:
        os.environ["K8N_DATA_DIR"] = data_dir
    argv = ingress_argv(config.server_url(server, data_dir), list(ctx.args))
    os.execv(argv[0], argv)
