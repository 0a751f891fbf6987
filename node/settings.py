"""The README's tables of the node agent's and the ingress controller's flags, generated from
``node.agent.AgentConfig`` and ``node.ingress.settings.IngressSettings``:

    python -m node.settings             # print it
    python -m node.settings --write     # rewrite its block in README.md

``tests/unit/test_settings_docs.py`` fails when the README's block differs from what this prints."""

from __future__ import annotations

from pathlib import Path

from bus import settings as _s
from node.agent import AgentConfig
from node.ingress.settings import IngressSettings

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = "agent"
INGRESS_BLOCK = "ingress"


def readme_table() -> str:
    return _s.markdown_table((AgentConfig,), flags=True)


def ingress_table() -> str:
    return _s.markdown_table((IngressSettings,), flags=True)


def main(argv: list[str] | None = None) -> None:
    _s.readme_main("python -m node.settings", {BLOCK: readme_table(), INGRESS_BLOCK: ingress_table()}, str(README), argv)


if __name__ == "__main__":
    main()
