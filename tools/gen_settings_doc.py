"""Generate docs/settings.md from the Setting classes.

Usage (from the repository root)::

    hatch run python tools/gen_settings_doc.py          # write docs/settings.md
    hatch run python tools/gen_settings_doc.py --check  # exit 1 when the file is stale

The page documents pulsar-core's settings plus those of the applications listed in ``APPS``
(application name -> module that declares its settings); add an entry when an application
declares settings of its own.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "settings.md"

#: application name -> module declaring its settings (imported before rendering)
APPS: dict[str, str] = {
    "shell": "pulsar.apps.shell._settings",
    "tasks": "pulsar.apps.tasks._settings",
    "wsgi": "pulsar.apps.wsgi._settings",
    "rpc": "pulsar.apps.rpc._settings",
    "dashboard": "pulsar.apps.dashboard._settings",
}


def render() -> str:
    """The Markdown text of docs/settings.md."""
    from pulsar._config import settings_reference

    for module in APPS.values():
        importlib.import_module(module)
    return settings_reference(tuple(APPS))


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` verify) docs/settings.md; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else None
    if args.check:
        if current != text:
            print(f"{TARGET.relative_to(ROOT)} is stale: run python tools/gen_settings_doc.py")
            return 1
        return 0
    if current != text:
        TARGET.parent.mkdir(parents=True, exist_ok=True)
        TARGET.write_text(text, encoding="utf-8")
        print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
