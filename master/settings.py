"""The README's settings tables, generated from the control plane's typed settings (``bus.settings``):

    python -m master.settings             # print every table
    python -m master.settings --write     # rewrite their blocks in README.md

Each table sits in README.md between ``<!-- settings:<block> -->`` and ``<!-- /settings -->``;
``tests/unit/test_settings_docs.py`` fails when one differs from what this prints."""

from __future__ import annotations

from pathlib import Path

from bus import settings as _s
from bus.store import StoreSettings
from master.apiserver.settings import ApiServerSettings
from master.controllers.settings import ControllerManagerSettings
from master.leaderelection import ElectionConfig

README = Path(__file__).resolve().parents[1] / "README.md"
#: README block → the settings classes its table shows, in order
BLOCKS: dict[str, tuple[type, ...]] = {
    "controller-manager": (ControllerManagerSettings, ElectionConfig),
    "apiserver": (ApiServerSettings, StoreSettings),
}


def readme_table(block: str) -> str:
    return _s.markdown_table(BLOCKS[block])


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(prog="python -m master.settings",
                                description="Print the settings tables, or write them into README.md.")
    p.add_argument("--write", nargs="?", const=str(README), default=None, metavar="README",
                   help=f"rewrite the <!-- settings:BLOCK --> blocks of README (default {README})")
    args = p.parse_args(argv)
    if args.write is None:
        for block in BLOCKS:
            print(f"{_s.begin_marker(block)}\n{readme_table(block)}{_s.END_MARKER}")
        return
    path = Path(args.write)
    text = path.read_text()
    try:
        for block in BLOCKS:
            text = _s.replace_block(text, block, readme_table(block))
    except _s.SettingsError as e:
        p.error(f"{path}: {e}")
    path.write_text(text)
    print(f"wrote the settings tables ({', '.join(BLOCKS)}) into {path}")


if __name__ == "__main__":
    main()
