"""TOML reading for sweep files (tomllib on Python 3.11+, tomli before), one line on bad TOML."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from dltoolkit import DltkError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML file at ``path`` as a dict; not TOML is a :class:`DltkError`."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DltkError(f"{path}: cannot read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise DltkError(f"{path}: not valid TOML: {exc}") from None
