"""Every shell command of docs/*.md runs on tiny data: the machinery and the SKIP list are in
tests/test_docs_commands.py (README.md is tested there, so the two files run on two xdist workers)."""

from __future__ import annotations

import pytest
from test_docs_commands import PAGES, run_page, workspace  # noqa: F401  (workspace: the fixture)


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if p != "README.md"])
def test_every_command_of_the_page_runs(page, workspace):  # noqa: F811
    run_page(page, workspace)
