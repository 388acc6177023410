"""Reliability, round three (issue 25): ``dltk new plugin`` refuses names its generated code cannot
use, and every name it accepts gives a plugin whose code compiles (a property over many names)."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
from runs import needs_first_party

from dltoolkit._errors import DltkError
from dltoolkit._new_plugin import KINDS, NAME_PATTERN, check_name, new_plugin, template_names


@pytest.mark.parametrize("name", ["import", "class", "lambda", "return", "def", "match"])
def test_a_python_keyword_is_refused_in_one_line(dltk, tmp_path, name):
    result = dltk("new", "plugin", name, "--out", tmp_path)
    assert (result.exit_code, result.err_lines) == (
        2,
        [f"NAME: '{name}' is a Python keyword, which the generated code cannot use as a function name"],
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["data", "torch", "dltoolkit", "hookimpl", "config", "images", "pytest", "light"])
def test_a_name_the_generated_code_uses_is_refused_in_one_line(dltk, tmp_path, name):
    result = dltk("new", "plugin", name, "--out", tmp_path)
    assert result.exit_code == 2 and len(result.err_lines) == 1, result.err
    assert result.err_lines[0].startswith(f"NAME: '{name}' is a name the generated code already uses ")
    assert list(tmp_path.iterdir()) == []


def test_a_name_pytest_would_collect_is_refused(dltk, tmp_path):
    result = dltk("new", "plugin", "test-thing", "--out", tmp_path)
    assert (result.exit_code, result.err_lines) == (
        2,
        ["NAME: 'test-thing' starts with 'test', so pytest would take the plugin's function for a test"],
    )


@pytest.mark.parametrize("name", ["toy", "dltoolkit-toy"])  # the core tests' toy plugin, seen as installed
def test_the_name_of_an_installed_plugin_is_refused(dltk, tmp_path, name):
    result = dltk("new", "plugin", name, "--out", tmp_path)
    assert (result.exit_code, result.err_lines) == (
        2,
        [f"NAME: '{name}' is the name of an installed plugin; choose another name"],
    )
    assert list(tmp_path.iterdir()) == []


def names(count: int, seed: int = 0) -> list[str]:
    """``count`` plugin names of every shape the pattern allows: one letter, digits, dashes, keyword-like
    and module-like words (some of which are refused), long ones."""
    rng = random.Random(seed)
    words = ["a", "x", "my", "in", "is", "if", "for", "model", "data", "torch", "net", "io", "os", "sys", "json"]
    words += ["self", "none", "true", "async", "await", "lambda", "match", "case", "type", "print", "list", "nn"]
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    found = {"a", "z9", "my-plug", "x-1-2", "a" * 60}
    while len(found) < count:
        parts = []
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.5:
                parts.append(rng.choice(words))
            else:
                part = rng.choice(alphabet[:26]) + "".join(rng.choices(alphabet, k=rng.randint(0, 6)))
                parts.append(part)
        if not parts[0][0].isalpha():
            continue
        name = "-".join(parts)
        if NAME_PATTERN.match(name):
            found.add(name)
    return sorted(found)


def test_every_accepted_name_gives_a_plugin_whose_code_compiles(tmp_path):
    """A property over 60 names: each is refused in one line or gives a plugin whose every Python
    file compiles and does not rebind a name the templates use."""
    accepted = 0
    for i, name in enumerate(names(60)):
        kind = list(KINDS)[i % len(KINDS)]
        try:
            check_name(name)
        except DltkError as exc:
            assert len(exc.problems) >= 1 and all(p.startswith(f"NAME: '{name}' ") for p in exc.problems)
            continue
        accepted += 1
        folder = new_plugin(name, kind=kind, out=tmp_path / str(i))
        for source in folder.rglob("*.py"):
            compile(source.read_text(encoding="utf-8"), str(source), "exec")
        assert name.replace("-", "_") not in template_names()
    assert accepted > 25


@needs_first_party("gan")
@pytest.mark.slow
@pytest.mark.parametrize(("name", "kind"), [("zeta-2", "dataset"), ("q", "callback")])
def test_plugins_of_unusual_accepted_names_pass_their_own_tests(tmp_path, name, kind):
    folder = new_plugin(name, kind=kind, out=tmp_path / "out")
    env = {**os.environ, "PYTHONPATH": str(folder)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--import-mode=importlib",
         "--rootdir", str(folder), "-c", os.devnull, str(folder / "tests"), "-k", "not example and not trains"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


def test_the_reserved_names_are_read_from_the_templates():
    reserved = template_names()
    assert {"data", "torch", "dltoolkit", "hookimpl", "config", "images", "pytest", "attrs"} <= reserved
    assert "my_plug" not in reserved
