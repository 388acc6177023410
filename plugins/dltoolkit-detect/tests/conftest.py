"""The detection plugin's tests import their shared helpers (detect_helpers.py) from this folder."""

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
