import pytest

pytest_plugins = ["dltoolkit.testing"]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Runs write under tmp_path; the developer's DLTK_* variables do not leak into tests."""
    for var in ("DLTK_LOAD_PLUGINS", "DLTK_TRACE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
