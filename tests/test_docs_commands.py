"""Every shell command shown in README.md and docs/*.md runs, on tiny data, so that the docs stay true.

Commands are the lines of ```bash / ```sh / ```console blocks and the ``$ `` lines of any other
block (the lines after a ``$`` line, up to the next, are its output). They run in document order
(``dltk run`` commands first, so later commands find their run directories), one workspace per
page, in-process through ``dltoolkit.testing.run_cli``, on tiny copies of ``recipes/``: one or two
epochs, MNIST / Fashion-MNIST / CIFAR-10 replaced by tiny files in their real formats, and
metrics that need torch-fidelity's Inception weights (a download) left out.

A command that exits non-zero fails the test unless its shown output is the error it prints (then
every shown line must be printed). The output shown for ``dltk check`` / ``list`` / ``plugins``
must be printed as shown (lines with ``...`` are elisions and are not compared). A command that
exits 0 must have produced what it is for (``check_products``): a run its checkpoints, log and
last epoch, ``generate`` readable images (``--num`` of them), ``export`` a safetensors file with
weights, ``predict`` the rows it counts, ``eval`` a finite score for each metric asked for,
``compare`` its page, ``new`` a distribution with tests; a command it has no check for fails.

Paths under ``/tmp/`` (also as ``KEY=/tmp/...`` values, e.g. ``--set classifier=/tmp/cfid/cnn``)
are the workspace's own: a test never reads what an earlier manual run left on the machine.

A command that cannot run here (a download, a GPU, several machines, minutes of measuring)
goes in SKIP (or SKIP_PATTERNS) below, with the reason.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tomli_w
import tomllib
from PIL import Image

from dltoolkit._checkpoint import checkpoints_in
from dltoolkit.testing import run_cli, use_cifar10_checksums, write_cifar10, write_image_folder, write_mnist

ROOT = Path(__file__).resolve().parent.parent
MISSING = [
    f"dltoolkit-{n}"
    for n in ("gan", "vae", "vision", "sequence", "fidelity")
    if not importlib.util.find_spec(f"dltoolkit_{n}")
]
# the pages document the first-party plugins too: their commands run where those are installed
needs_first_party = pytest.mark.skipif(bool(MISSING), reason=f"the first-party plugins are not installed: {MISSING}")
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]

# command as written in the docs (without "$ " and a trailing comment) -> why it does not run here
SKIP: dict[str, str] = {
    "uv run dltk run recipes/dcgan_cifar10.toml recipe.precision=bf16 recipe.channels_last=true": (
        "bf16 autocast and channels_last are for a GPU; CI has none (tests/test_dcgan.py covers the flags)"
    ),
    "uv run dltk eval runs/dcgan_cifar10-20261123-101500 --metrics fid,isc,kid,prc --num-samples 10000": (
        "FID/IS/KID/PRC need torch-fidelity's Inception weights, a download (tests/test_fidelity.py uses a stand-in)"
    ),
    "uv run dltk eval runs/dcgan_cifar10-20261123-101500 --metrics fid,isc,kid,prc --num-samples 10000 "
    "--json scores.json": "Inception weights, a download (as above)",
    "uv run dltk eval --real photos/ --fake samples-again/ --metrics fid": "Inception weights, a download",
    "uv run dltk eval generator.safetensors --metrics fid --reference test": "Inception weights, a download",
    "uv run dltk eval --real real_images/ --fake generated_images/ --metrics fid,kid": "Inception weights, a download",
    "pip install -e . -e plugins/dltoolkit-gan -e plugins/dltoolkit-vae -e plugins/dltoolkit-vision "
    "-e plugins/dltoolkit-sequence -e plugins/dltoolkit-fidelity": (
        "installs into the environment; the suite runs in the uv environment that the README sets up"
    ),
    # docs/writing_plugins.md: working in a generated plugin (tests/test_new_plugin.py generates each kind,
    # installs it into a folder, lists it, runs its tests and its example recipe file)
    "uv pip install -e /tmp/plugins/dltoolkit-my-blocks": (
        "installs into the environment (tests/test_new_plugin.py installs into a folder)"
    ),
    "uv run pytest": "the test suite itself",
    "uv run pytest /tmp/plugins/dltoolkit-my-blocks": "tests/test_new_plugin.py runs a generated plugin's tests",
    "uv run dltk run /tmp/plugins/dltoolkit-my-blocks/examples/my-blocks.toml": (
        "needs the generated plugin installed (tests/test_new_plugin.py)"
    ),
    "PYTHONPATH=tests/example_plugin uv run dltk generate runs/ae --num 2 --out g -p dltoolkit_example": (
        "needs a run of the example plugin's autoencode recipe (tests/test_contract.py makes one)"
    ),
    # docs/tracking.md and docs/sweeps.md (issue 23)
    "mlflow ui --backend-store-uri sqlite:///mlruns.db": (
        "starts MLflow's web server (the full mlflow package); plugins/dltoolkit-mlflow/tests read the store back"
    ),
    "createdb dltk_sweeps": "a PostgreSQL server; CI has none",
    "dltk sweep sweeps/digits_classifier.toml --jobs 2 --storage postgresql://me:secret@db.example:5432/dltk_sweeps": (
        "a PostgreSQL server; CI has none (the same study code runs on SQLite in plugins/dltoolkit-optuna/tests)"
    ),
    "uv run dltk sweep sweeps/digits_classifier.toml --jobs 2": (
        "8 trials, minutes of measuring (its figures are on docs/sweeps.md); plugins/dltoolkit-optuna/tests/"
        "test_sweep_runs.py runs the same sweep on a tiny classifier, killed and restarted"
    ),
    "uv run dltk sweep sweeps/quickstart_gan.toml --jobs 2": (
        "12 GAN trials of 60 epochs: an hour of CPU (plugins/dltoolkit-optuna/tests cover dltk sweep)"
    ),
    "uv run dltk generate runs/sweeps/quickstart_gan/trial-NNNN --num 100 --grid --out samples/best": (
        "needs the GAN sweep above (NNNN: the best trial's number it prints)"
    ),
}
# commands whose shown output is what dltoolkit should print but does not yet: each must still
# differ (the test says when it is fixed, so the entry goes)
KNOWN_WRONG: dict[str, str] = {}
# families of commands, by regular expression -> why they do not run here
SKIP_PATTERNS: list[tuple[str, str]] = [
    (r"^uv run python benchmarks/", "a measurement that takes minutes; its figures are on the page that shows it"),
    (r"^torchrun ", "several processes or machines; tests/test_distributed.py covers what CI can run"),
    (r"--nproc-per-node [3-9]", "one process per GPU: that many GPUs (tests/test_distributed.py runs 2 on CPU)"),
    (
        r"--nproc-per-node 2",
        "starts 2 processes: ~35 s of start-up a run on a 2-core CPU; tests/test_distributed.py runs them",
    ),
    (
        r"dltoolkit-tinynet|grep tiny-net|tiny\.toml|runs/tiny\b",
        "the opening plugin of docs/writing_plugins.md is not installed here: tests/test_docs_reference.py "
        "writes it from the page, installs it (fake_plugins) and runs these commands",
    ),
    (
        r"recipe\.compile=true",
        "torch.compile builds kernels for minutes on a CPU (tests/test_distributed.py covers it)",
    ),
]

# files a page names but shows only in part (or not at all), written into the workspace
DOC_FILES = {
    "mismatch.toml": '[recipe]\nname = "vae"\n\n[model]\nname = "mlp-gan"\n\n[dataset]\nname = "digits"\n',
    "gan_elbo.toml": (
        '[recipe]\nname = "gan"\n\n[model]\nname = "mlp-gan"\n\n[dataset]\nname = "digits"\n\n'
        '[[metrics]]\nname = "negative-elbo"\n'
    ),
}
# run directories a page names without making them on that page -> the dltk arguments that make it
NAMED_RUNS = {
    # docs/writing_plugins.md makes it; docs/evaluation.md shows `dltk eval` of it
    "runs/vae-run": ["run", "recipes/vae_digits.toml", "recipe.epochs=3", "--run-dir", "runs/vae-run"],
}
INCEPTION_METRICS = {"fid", "isc", "kid", "prc"}  # their weights are a download
TINY_DATA = {"mnist", "fashion-mnist", "cifar10", "image-folder"}  # written tiny into the workspace
SHOWN_OUTPUT_COMMANDS = {"check", "list", "plugins"}  # deterministic: the shown output is compared
ADVICE = (
    "If this command cannot run in the test suite (a download, a GPU, several machines, minutes of "
    "measuring), add it to SKIP in tests/test_docs_commands.py with the reason."
)


@dataclass
class DocCommand:
    page: str
    line: int
    text: str  # as written, without "$ " and a trailing comment
    shown: list[str] = field(default_factory=list)  # the output the page shows after it


def _strip_comment(text: str) -> str:
    """The command without a trailing ``# comment`` (a ``#`` outside quotes, after a space)."""
    quote = None
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip()
    return text.rstrip()


def commands_of(page: str) -> list[DocCommand]:
    """The shell commands of one page, with the output shown after ``$`` lines."""
    found: list[DocCommand] = []
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    fence: str | None = None
    pending = ""
    current: DocCommand | None = None
    for number, raw in enumerate(lines, 1):
        opening = re.match(r"^\s*```(\S*)", raw)
        if opening:
            fence = opening.group(1) if fence is None else None
            current = None
            continue
        if fence is None:
            continue
        text = raw.strip()
        if fence in ("bash", "sh", "shell", "console"):
            text = text.removeprefix("$ ")
            if not text or text.startswith("#"):
                continue
            pending += text
            if pending.endswith("\\"):
                pending = pending[:-1].rstrip() + " "
                continue
            found.append(DocCommand(page, number, _strip_comment(pending)))
            pending = ""
        elif text.startswith("$ "):
            current = DocCommand(page, number, _strip_comment(text[2:]))
            found.append(current)
        elif current is not None and text:
            current.shown.append(raw.rstrip())
        elif fence == "" and re.match(r"^(uv run )?dltk \S", text):
            pytest.fail(
                f"{page}:{number}: a command in an untagged code block: tag the block ```bash (commands to run) "
                "or ```text (a synopsis or output)"
            )
    return found


def skip_reason(command: DocCommand) -> str | None:
    if command.text in SKIP:
        return SKIP[command.text]
    for pattern, reason in SKIP_PATTERNS:
        if re.search(pattern, command.text):
            return reason
    return None


# --- the workspace: tiny recipes and data ------------------------------------------------------


def tiny_recipe(data: dict) -> dict:
    """A recipe file made tiny: one epoch, no download, no Inception metric."""
    data = {key: (dict(value) if isinstance(value, dict) else value) for key, value in data.items()}
    recipe = data.setdefault("recipe", {})
    if isinstance(recipe.get("epochs"), int):
        recipe["epochs"] = 1
    if recipe.get("steps_per_epoch"):  # random windows (language-model): a few steps
        recipe["steps_per_epoch"] = min(int(recipe["steps_per_epoch"]), 5)
    data.setdefault("run", {}).update(device="cpu", threads=1)
    dataset = data.get("dataset", {})
    if "download" in dataset:
        dataset["download"] = False
    if dataset.get("name") in TINY_DATA:  # a few dozen images: batches that fit
        recipe["batch_size"] = min(int(recipe.get("batch_size", 16)), 16)
    if dataset.get("name") == "image-folder":
        dataset["image_size"] = min(int(dataset.get("image_size", 32)), 32)
    metrics = [m for m in data.get("metrics", []) if m.get("name") not in INCEPTION_METRICS]
    if "metrics" in data:
        data["metrics"] = metrics
    if str(data.get("checkpoint", {}).get("best_by")).removeprefix("eval/") in INCEPTION_METRICS:
        del data["checkpoint"]["best_by"]
    return data


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder laid out like a checkout: tiny recipes/, tiny data/, the files pages name."""
    (tmp_path / "recipes").mkdir()
    for path in sorted((ROOT / "recipes").glob("*.toml")):
        data = tiny_recipe(tomllib.loads(path.read_text(encoding="utf-8")))
        (tmp_path / "recipes" / path.name).write_text(tomli_w.dumps(data), encoding="utf-8")
    write_mnist(tmp_path / "data", n_train=64, n_test=16, folder="MNIST")
    write_mnist(tmp_path / "data", n_train=64, n_test=16, folder="FashionMNIST")
    sums = write_cifar10(tmp_path / "data", per_batch=8, n_test=8)
    write_image_folder(tmp_path / "data" / "my_images", n=12)
    write_image_folder(tmp_path / "my_digits", n=3)
    (tmp_path / "book.txt").write_text("Once upon a time there was a tiny test of a language model. " * 160)
    for name, text in DOC_FILES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with use_cifar10_checksums(sums):
        yield tmp_path


# --- running one command -----------------------------------------------------------------------


def resolve_run_dirs(args: list[str], workspace: Path, made: dict[str, Path]) -> list[str]:
    """``runs/<stem>-<stamp>`` placeholders (``-<stamp>``, ``-20261123-101500``) -> the run of that stem;
    ``/tmp/...`` -> the same path in the workspace."""
    resolved: list[str] = []
    for arg in args:
        if arg.startswith("/tmp/"):  # a scratch folder of the page: the workspace's own
            arg = str(workspace / arg[1:])
        key, equals, value = arg.partition("=")
        if equals and value.startswith("/tmp/"):  # KEY=/tmp/... (e.g. --set classifier=PATH): the same
            arg = f"{key}={workspace / value[1:]}"
        if resolved and resolved[-1] in ("--run-dir", "--out"):  # what the command writes
            resolved.append(arg)
            continue
        match = re.fullmatch(r"runs/([A-Za-z0-9_]+)-(<stamp>|\d{8}-\d{6})/?", arg)
        if match and not (workspace / arg).exists():
            stem = match.group(1)
            found = [made[stem]] if stem in made else sorted((workspace / "runs").glob(f"{stem}-*"))
            assert found, f"{arg}: no run of recipes/{stem}.toml was made by an earlier command on this page"
            arg = str(found[-1])
        elif arg.rstrip("/") in NAMED_RUNS and not (workspace / arg).exists():
            result = run_cli(*NAMED_RUNS[arg.rstrip("/")])
            assert result.exit_code == 0, result.err
        resolved.append(arg)
    return resolved


@contextlib.contextmanager
def environment(assignments: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in assignments}
    os.environ.update(assignments)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def dltk_args(command: DocCommand) -> tuple[dict[str, str], list[str], str | None]:
    """(environment, dltk arguments, grep pattern) of a ``dltk`` command line."""
    text, _, grep = command.text.partition(" | grep ")
    words = shlex.split(text)
    env = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    if words[:3] == ["uv", "run", "dltk"]:
        words = words[3:]
    elif words[:1] == ["dltk"]:
        words = words[1:]
    else:
        pytest.fail(f"{command.page}:{command.line}: `{command.text}`: not a dltk command this test can run. {ADVICE}")
    return env, words, (shlex.split(grep)[0] if grep else None)


def run_command(command: DocCommand, workspace: Path, made: dict[str, Path]) -> None:
    """Run one command; ``made`` maps recipe stems to the run directories made so far."""
    env, args, grep = dltk_args(command)
    args = resolve_run_dirs(args, workspace, made)
    if args[:1] == ["run"] and "--resume" in args and not any(a.startswith("recipe.epochs=") for a in args):
        # the page's run was stopped early; the tiny one finished: continue it for one more epoch
        resumed = Path(args[args.index("--resume") + 1])
        epochs = tomllib.loads((resumed / "recipe.toml").read_text())["recipe"]["epochs"]
        args.append(f"recipe.epochs={epochs + 1}")
    if args[:1] == ["run"] and "--resume" not in args:
        args = [
            re.sub(r"^recipe\.epochs=(\d+)$", lambda m: f"recipe.epochs={min(int(m.group(1)), 2)}", a) for a in args
        ]
    with environment(env):
        result = run_cli(*args)
    where = f"{command.page}:{command.line}: `{command.text}`"
    done = re.search(r"^dltk: done\. Results in (.+?)/(?: |;|$)", result.out, flags=re.M)
    if args[:1] == ["run"] and done and "--resume" not in args:
        made[Path(args[1]).stem] = Path(done.group(1))
    out_lines = result.out.splitlines()
    if grep is not None:
        out_lines = [line for line in out_lines if grep in line]
    compared = [line for line in command.shown if "..." not in line]
    if result.exit_code != 0:
        printed = result.err_lines + out_lines
        assert compared, f"{where} exited {result.exit_code}:\n{result.err[-2000:]}\n{ADVICE}"
        missing = [line for line in compared if line not in printed]
        if command.text in KNOWN_WRONG:
            assert missing, f"{where}: prints what the page shows now: remove it from KNOWN_WRONG"
            return
        assert not missing, f"{where}: the page shows lines it does not print:\n{missing}\nit printed:\n{printed}"
    elif args[:1] and args[0] in SHOWN_OUTPUT_COMMANDS and compared:
        printed = [line.rstrip() for line in out_lines + result.err_lines]
        missing = [line for line in compared if line not in printed]
        assert not missing, f"{where}: the page shows lines it does not print:\n{missing}\nit printed:\n{printed}"
    elif compared and not any(line.startswith(("epoch ", "metric ")) for line in compared):
        # a run's or a command's last line (dltk: done..., dltk: wrote ...) names what it wrote
        assert not [line for line in compared if line.startswith("dltk: wrote") and line not in out_lines], (
            f"{where}: printed {out_lines}"
        )
    if result.exit_code == 0:
        check_products(args, result.out, where)


def _option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def _wrote(out: str, where: str) -> Path:
    """The path of the ``dltk: wrote PATH`` line."""
    match = re.search(r"^dltk: wrote (\S+?)/?;?(?: |$)", out, flags=re.M)
    assert match, f"{where}: no 'dltk: wrote' line in:\n{out}"
    return Path(match.group(1))


def check_products(args: list[str], out: str, where: str) -> None:
    """What a command that exited 0 must have produced: its files, with their content, or its output."""
    command = args[0]
    if command == "run":
        done = re.search(r"^dltk: done\. Results in (.+?)/(?: |;|$)", out, flags=re.M)
        assert done, f"{where}: no 'dltk: done' line in:\n{out}"
        run = Path(done.group(1))
        if "--run-dir" in args:
            assert run == Path(_option(args, "--run-dir") or ""), f"{where}: wrote {run}"
        recipe = tomllib.loads((run / "recipe.toml").read_text())
        assert checkpoints_in(run / "checkpoints"), f"{where}: {run} has no checkpoint"
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        epochs = [r["epoch"] for r in records if r["kind"] == "epoch"]
        assert epochs and epochs[-1] == recipe["recipe"]["epochs"], f"{where}: epochs logged {epochs}"
        assert (run / "run.json").is_file(), f"{where}: {run} has no run.json"
    elif command == "check":
        assert re.search(r": ok \(recipe \S+", out), f"{where}: printed {out!r}"
    elif command == "list":
        rows = [line for line in out.splitlines() if line.startswith("  ") and line.strip()]
        assert rows, f"{where}: listed nothing:\n{out}"
        kind = next((a for a in args[1:] if not a.startswith("-")), None)
        if kind is not None:
            assert out.startswith(f"{kind.rstrip('s')}s:"), f"{where}: printed {out!r}"
    elif command == "plugins":
        assert "dltoolkit.builtin.datasets" in out, f"{where}: printed {out!r}"
    elif command == "generate":
        folder = Path(_option(args, "--out") or "")
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        assert files and all(p.stat().st_size for p in files), f"{where}: wrote {files}"
        images = [p for p in files if p.suffix == ".png"]
        for path in images:
            with Image.open(path) as image:
                image.verify()
        if "--grid" in args:
            assert images, f"{where}: no grid image in {files}"
        elif "--prompt" not in args and "--num" in args:
            assert len(images) == int(_option(args, "--num") or 0), f"{where}: wrote {files}"
    elif command == "export":
        from safetensors import safe_open

        with safe_open(_option(args, "--out"), framework="pt") as handle:
            meta = handle.metadata()
            assert list(handle.keys()), f"{where}: an export without weights"
        assert meta["format"].startswith("dltoolkit-"), f"{where}: metadata {meta}"
    elif command == "predict":
        rows = (Path(_option(args, "--out") or "")).read_text().splitlines()
        count = re.search(r"^dltk: wrote (\d+) predictions", out, flags=re.M)
        assert count and len(rows) == int(count.group(1)) + 1 > 1, f"{where}: {len(rows)} lines, printed {out!r}"
    elif command == "eval":
        lines = out.splitlines()
        header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["metric", "value"])
        scored = {line.split()[0]: float(line.split()[1]) for line in lines[header + 1 :] if line.strip()}
        wanted = (_option(args, "--metrics") or "").split(",")
        assert scored and all(name in scored for name in wanted if name), f"{where}: printed {out!r}"
        assert all(math.isfinite(value) for value in scored.values()), f"{where}: printed {out!r}"
    elif command == "compare":
        page = _wrote(out, where)
        assert page.is_file() and page.stat().st_size, f"{where}: {page}"
        runs = [a for a in args[1:] if not a.startswith("-") and a != _option(args, "--out")]
        assert all(f"| {Path(run).name} |" in out for run in runs), f"{where}: printed {out!r}"
    elif command == "new":
        folder = _wrote(out, where)
        assert (folder / "pyproject.toml").is_file() and list(folder.glob("tests/test_*.py")), f"{where}: {folder}"
    else:
        pytest.fail(f"{where}: no check of what `dltk {command}` produces: add one to check_products")


def run_page(page: str, workspace: Path) -> None:
    """Run the commands of ``page`` not skipped: its ``dltk run`` commands first, then the rest."""
    commands = [c for c in commands_of(page) if skip_reason(c) is None]
    first = [c for c in commands if re.match(r"^(\S+=\S+ )*(uv run )?dltk run ", c.text) and "--resume" not in c.text]
    made: dict[str, Path] = {}
    for command in first + [c for c in commands if c not in first]:
        run_command(command, workspace, made)


@pytest.mark.slow
@needs_first_party
def test_every_command_of_the_readme_runs(workspace):
    """README.md here; the pages of docs/ in tests/test_docs_pages.py (the two run side by side under xdist)."""
    run_page("README.md", workspace)


def test_commands_are_found_and_skips_are_still_in_the_docs():
    """The extractor sees the commands (a typo in a fence would hide them) and SKIP lists no stale entry."""
    every = [c.text for page in PAGES for c in commands_of(page)]
    assert "uv run dltk run recipes/quickstart.toml" in every
    assert any(text.startswith("uv run dltk check ") for text in every)
    stale = [text for text in SKIP if text not in every]
    assert not stale, f"SKIP lists commands no page shows any more (remove them): {stale}"


def test_no_bare_dltk_in_the_uv_workflow():
    """The README teaches `uv run dltk`; a bare `dltk` is only right after a pip install in the same block."""
    bare = [
        c
        for c in commands_of("README.md")
        if c.text.startswith("dltk ") and "pip install" not in (ROOT / "README.md").read_text().split(c.text)[0][-400:]
    ]
    assert not bare, [f"README.md:{c.line}: {c.text}" for c in bare]


def test_workspace_recipes_are_tiny(workspace):
    data = tomllib.loads((workspace / "recipes" / "dcgan_cifar10.toml").read_text())
    assert data["recipe"]["epochs"] == 1 and data["dataset"]["download"] is False
    assert not [m for m in data.get("metrics", []) if m["name"] in INCEPTION_METRICS]
    assert "best_by" not in data["checkpoint"]  # it named fid


def test_a_command_that_exits_0_without_its_products_fails(tmp_path):
    """check_products can fail: a run without checkpoints, a generate that wrote nothing, a predict
    with fewer rows than it says, an eval missing a metric asked for, a command it does not know."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.toml").write_text("[recipe]\nepochs = 2\n")
    cases = [
        (["run", "r.toml"], f"dltk: done. Results in {run}/ (samples/, checkpoints/, metrics.jsonl)"),
        (["generate", str(run), "--num", "4", "--out", str(tmp_path / "none")], "dltk: wrote 4 images"),
        (["eval", str(run), "--metrics", "fid,kid"], "metric        value  protocol\nfid   12.5  n=10"),
        (["check", "r.toml"], "r.toml: 1 problem"),
    ]
    for args, out in cases:
        with pytest.raises(AssertionError):
            check_products(args, out, "page.md:1")
    (tmp_path / "p.csv").write_text("input,label\na.png,3\n")
    with pytest.raises(AssertionError):
        check_products(["predict", "x", "--out", str(tmp_path / "p.csv")], "dltk: wrote 2 predictions to p.csv", "p")
    with pytest.raises(pytest.fail.Exception, match="no check of what `dltk sweep` produces"):
        check_products(["sweep", "s.toml"], "", "page.md:1")
