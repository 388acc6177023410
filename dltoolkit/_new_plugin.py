"""``dltk new plugin NAME``: write a pip-installable plugin distribution from a template.

The templates (``dltoolkit/templates/plugin/``) hold one working component of each kind on the
current contract: a light registration module (``plugin.py``: Config, Component, hook), the code
that imports torch in a module of its own (which the component's ``"module:attr"`` factory string
names, imported when a run builds the component), a recipe file under ``examples/`` and tests
written with :mod:`dltoolkit.testing` that pass as generated.
"""

from __future__ import annotations

import ast
import functools
import keyword
import re
import shutil
import uuid
from pathlib import Path

from dltoolkit._errors import DltkError

TEMPLATES = Path(__file__).resolve().parent / "templates" / "plugin"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

# kind -> (module of the heavy code, one-line summary, extra dependencies, usage paragraph)
KINDS: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "model": (
        "models",
        "the `{name}` model, an image classifier for the `classify` recipe of dltoolkit-vision.",
        ("dltoolkit-vision",),
        'In a recipe file: `[model]` with `name = "{name}"` under a `classify` recipe. The model '
        "is an `nn.Module` from images to class logits, which is what `classify` documents for its "
        'models; `provides="classifier"` in `plugin.py` is what lets `dltk check` pair them.',
    ),
    "dataset": (
        "datasets",
        "the `{name}` dataset, greyscale images of lines in four directions, with labels.",
        (),
        'In a recipe file: `[dataset]` with `name = "{name}"`. The factory returns a dataset of '
        "`(image, label)` pairs, images in [-1, 1], with a `spec` (a `dltoolkit.DataSpec`) that "
        "recipes and models are built from; `train` and `test` never share an image.",
    ),
    "metric": (
        "metrics",
        "the `{name}` metric, the distance between generated and real pixel-value histograms.",
        (),
        'In a recipe file: a `[[metrics]]` table with `name = "{name}"` under any recipe whose '
        "model draws samples; also `dltk eval RUN --metrics {name}`. Each score is "
        "recorded in `metrics.jsonl` with its protocol, which `dltk compare` reads.",
    ),
    "callback": (
        "callbacks",
        "the `{name}` callback, the wall time and speed of each training epoch.",
        (),
        'In a recipe file: a `[[callbacks]]` table with `name = "{name}"` under any recipe. It '
        "attaches itself to the trainer (an Ignite engine), reports `epoch_seconds` and "
        "`iterations_per_second` and keeps `epoch_times.csv` in the run directory.",
    ),
    "recipe": (
        "recipe",
        "the `{name}` recipe, an autoencoder family (recipe and its `{name}-mlp` model).",
        (),
        'In a recipe file: `[recipe]` with `name = "{name}"` and `[model]` with '
        '`name = "{name}-mlp"`. The recipe is a readable script: it builds the parts, writes the '
        "step and hands everything to `run.fit`, which logs, checkpoints, resumes and stops cleanly.",
    ),
}


def names_for(name: str) -> dict[str, str]:
    """The template's tokens for plugin ``name`` (``my-plug``)."""
    snake = name.replace("-", "_")
    return {
        "__NAME__": name,
        "__DIST__": f"dltoolkit-{name}",
        "__PKG__": f"dltoolkit_{snake}",
        "__CLASS__": "".join(part.capitalize() for part in name.split("-")),
        "__FUNC__": snake,
    }


def check_name(name: str) -> str:
    """The plugin name without a ``dltoolkit-`` prefix; bad names are a :class:`DltkError`, one line
    per problem: not a plugin name, a Python keyword, a name the generated code already uses (a module
    it imports, a function it defines), or the name of an installed plugin."""
    bare = name.removeprefix("dltoolkit-")
    if not NAME_PATTERN.match(bare):
        raise DltkError(
            f"NAME: '{name}' is not a plugin name: use lowercase letters, digits and single dashes, "
            "starting with a letter (for example 'my-model')"
        )
    snake = bare.replace("-", "_")
    problems = []
    if keyword.iskeyword(snake) or keyword.issoftkeyword(snake):
        problems.append(f"NAME: '{name}' is a Python keyword, which the generated code cannot use as a function name")
    elif snake.startswith("test"):
        problems.append(f"NAME: '{name}' starts with 'test', so pytest would take the plugin's function for a test")
    elif snake in template_names():
        problems.append(
            f"NAME: '{name}' is a name the generated code already uses ({snake}: a module it imports or a name it "
            "defines), so the plugin's function would hide it; choose another name"
        )
    installed = installed_plugins()
    if bare in installed or f"dltoolkit-{bare}" in installed:
        problems.append(f"NAME: '{name}' is the name of an installed plugin; choose another name")
    if problems:
        raise DltkError(problems)
    return bare


PLACEHOLDER = "zqxplaceholder"


@functools.cache
def template_names() -> frozenset[str]:
    """Every name the templates' Python code binds or reads (modules it imports, functions and
    classes it defines, arguments and variables), the plugin's own names excepted, and the names of
    the test files every plugin gets: what a plugin's function name must not be."""
    tokens = names_for(PLACEHOLDER)
    tokens |= {"__KIND__": "model", "__IMPL__": "models", "__SUMMARY__": "", "__USAGE__": "", "__DEPENDENCIES__": ""}
    found: set[str] = set()
    for template in TEMPLATES.rglob("*.py.tmpl"):
        tree = ast.parse(render(template.read_text(encoding="utf-8"), tokens))
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                found.add(node.id)
            elif isinstance(node, ast.arg):
                found.add(node.arg)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.add(node.name)
            elif isinstance(node, ast.alias):
                found.add(node.asname or node.name.split(".")[0])
    found |= {t.name.removeprefix("test_").removesuffix(".py.tmpl") for t in (TEMPLATES / "common").glob("test_*")}
    return frozenset(n for n in found if PLACEHOLDER not in n.lower())


def installed_plugins() -> set[str]:
    """Names of the plugins installed here: entry-point names of the ``dltoolkit`` group and the
    distributions that provide them."""
    import importlib.metadata

    found: set[str] = set()
    for dist in importlib.metadata.distributions():
        eps = [ep for ep in dist.entry_points if ep.group == "dltoolkit"]
        if eps:
            found |= {ep.name for ep in eps} | {(dist.metadata["Name"] or "").lower()}
    return found


def render(text: str, tokens: dict[str, str]) -> str:
    for token, value in tokens.items():
        text = text.replace(token, value)
    return text


def new_plugin(name: str, *, kind: str = "model", out: Path = Path(".")) -> Path:
    """Write ``OUT/dltoolkit-NAME/`` for a component of ``kind``; return the folder.

    Refused (nothing written) when the name is not a plugin name, ``OUT`` is a file, or the
    folder already exists and is not empty. The files are written to a temporary folder beside
    it and renamed into place, so a failure leaves nothing half-written.
    """
    if kind not in KINDS:
        raise DltkError(f"--kind: '{kind}' is not one of {', '.join(KINDS)}")
    bare = check_name(name)
    if out.exists() and not out.is_dir():
        raise DltkError(f"--out: '{out}' is a file, not a folder")
    tokens = names_for(bare)
    folder = out / tokens["__DIST__"]
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise DltkError(f"{folder}: already exists; remove it or choose another --out or NAME")
    impl, summary, extra, usage = KINDS[kind]
    dependencies = ", ".join(f'"{d}"' for d in ("dltoolkit", *extra))
    tokens |= {
        "__KIND__": kind,
        "__IMPL__": impl,
        "__SUMMARY__": summary.format(name=bare),
        "__USAGE__": usage.format(name=bare),
        "__DEPENDENCIES__": dependencies,
    }
    pkg = tokens["__PKG__"]
    files = {
        "pyproject.toml": TEMPLATES / "common" / "pyproject.toml.tmpl",
        "README.md": TEMPLATES / "common" / "README.md.tmpl",
        f"{pkg}/__init__.py": TEMPLATES / "common" / "__init__.py.tmpl",
        f"{pkg}/plugin.py": TEMPLATES / kind / "plugin.py.tmpl",
        f"{pkg}/{impl}.py": TEMPLATES / kind / f"{impl}.py.tmpl",
        f"examples/{bare}.toml": TEMPLATES / kind / "example.toml.tmpl",
        "tests/conftest.py": TEMPLATES / "common" / "conftest.py.tmpl",
        f"tests/test_{tokens['__FUNC__']}.py": TEMPLATES / kind / "test.py.tmpl",
        "tests/test_light.py": TEMPLATES / "common" / "test_light.py.tmpl",
    }
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = out / f".tmp-{tokens['__DIST__']}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()  # mode from the umask, like the files
    except OSError as exc:
        raise DltkError(f"--out: cannot write in '{out}': {exc.strerror}") from None
    try:
        for relative, template in files.items():
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(render(template.read_text(encoding="utf-8"), tokens), encoding="utf-8")
        (staging / pkg / "py.typed").write_text("", encoding="utf-8")
        if folder.is_dir():
            folder.rmdir()  # empty, checked above
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder
