"""Every shell command of docs/*.md runs on tiny data: the machinery and the SKIP list are in
tests/test_docs_commands.py (README.md is tested there, so the two files run on two xdist workers)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

# test modules are imported by path (--import-mode=importlib), not by name: load the machinery so
_spec = importlib.util.spec_from_file_location("_docs_commands", Path(__file__).with_name("test_docs_commands.py"))
_machinery = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_machinery)
PAGES, run_page, workspace = _machinery.PAGES, _machinery.run_page, _machinery.workspace


@pytest.mark.slow
@_machinery.needs_first_party
@pytest.mark.parametrize("page", [p for p in PAGES if p != "README.md"])
def test_every_command_of_the_page_runs(page, workspace):
    run_page(page, workspace)
