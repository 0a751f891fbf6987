"""The README's settings tables, generated from the control plane's typed settings (``bus.settings``):

    python -m master.settings             # print every table
    python -m master.settings --write     # rewrite their blocks in README.md

Each table sits in README.md between ``<!-- settings:<block> -->`` and ``<!-- /settings -->``;
``tests/unit/test_settings_docs.py`` fails when one differs from what this prints."""

from __future__ import annotations

from pathlib import Path

from bus import settings as _s
from bus.history import HistorySettings
from bus.store import StoreSettings
from bus.telemetry import TelemetrySettings
from master.apiserver.settings import ApiServerSettings
from master.controllers.settings import ControllerManagerSettings
from master.leaderelection import ElectionConfig

README = Path(__file__).resolve().parents[1] / "README.md"
#: README block → the settings classes its table shows, in order
BLOCKS: dict[str, tuple[type, ...]] = {
    "controller-manager": (ControllerManagerSettings, ElectionConfig),
    "apiserver": (ApiServerSettings, StoreSettings, HistorySettings),
    "telemetry": (TelemetrySettings,),
}


def readme_table(block: str) -> str:
    return _s.markdown_table(BLOCKS[block])


def main(argv: list[str] | None = None) -> None:
    _s.readme_main("python -m master.settings", {b: readme_table(b) for b in BLOCKS}, str(README), argv)


if __name__ == "__main__":
    main()
