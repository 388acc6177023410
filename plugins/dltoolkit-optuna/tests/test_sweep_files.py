"""Bad sweep files (issue 23): each problem one line naming the key, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

RECIPE = """
seed = 3
[run]
device = "cpu"
threads = 1
writers = []
[recipe]
name = "classify"
epochs = 2
batch_size = 64
log_every = 10
[model]
name = "lenet"
channels = [4, 8]
hidden = [16, 16]
[dataset]
name = "digits"
[[metrics]]
name = "accuracy"
"""

SWEEP = """
recipe = "tiny.toml"
objective = "accuracy"
trials = 8
{extra}
[space]
"recipe.lr" = {{ type = "float", low = 1e-4, high = 0.5, log = true }}
{space}
"""


def files(tmp_path: Path) -> set[Path]:
    return set(tmp_path.rglob("*"))


@pytest.fixture
def sweep_file(tmp_path):
    (tmp_path / "tiny.toml").write_text(RECIPE)

    def write(extra: str = "", space: str = "") -> Path:
        path = tmp_path / "sweep.toml"
        path.write_text(SWEEP.format(extra=extra, space=space))
        return path

    return write


@pytest.mark.parametrize(
    ("extra", "space", "line"),
    [
        ("trails = 3", "", "trails: unknown key (did you mean 'trials'?)"),
        ("", '"recipe.weight_decay" = { type = "float", low = 0.1, high = 0.01 }',
         "space.recipe.weight_decay: the range is empty (low 0.1 must be below high 0.01)"),
        ("", '"recipe.optimizer" = { type = "categorical", choices = ["sgd", 1] }',
         "space.recipe.optimizer.choices: the choices mix types (number, str); give one type"),
        ("", '"recipe.lrr" = { type = "float", low = 0.1, high = 0.2 }',
         "space.recipe.lrr: unknown key (did you mean 'lr'?)"),
        ("", '"recipe.batch_size" = { type = "int", low = 16, high = 64, lg = true }',
         "space.recipe.batch_size.lg: unknown key for an int (did you mean 'log'?)"),
        ("sampler = \"tpee\"", "", "sampler: expected one of tpe, random, grid, got 'tpee' (did you mean 'tpe'?)"),
    ],
)  # fmt: skip
def test_a_bad_sweep_file_is_one_line_naming_the_key(dltk, sweep_file, tmp_path, extra, space, line):
    path = sweep_file(extra, space)
    before = files(tmp_path)
    result = dltk("sweep", path)
    assert (result.exit_code, result.err_lines) == (2, [f"{path}: {line}"])
    assert files(tmp_path) == before


def test_a_sweep_table_is_read_as_the_sweep_file(dltk, sweep_file, tmp_path):
    """The keys may sit in a [sweep] table (with [sweep.space]); its problems are named the same way."""
    text = sweep_file("trails = 3").read_text().replace("[space]", "[sweep.space]")
    (tmp_path / "sweep.toml").write_text("[sweep]\n" + text)
    result = dltk("sweep", tmp_path / "sweep.toml")
    assert (result.exit_code, result.err_lines) == (
        2,
        [f"{tmp_path / 'sweep.toml'}: trails: unknown key (did you mean 'trials'?)"],
    )


def test_an_objective_no_component_declares_is_refused(dltk, sweep_file, tmp_path):
    path = sweep_file().read_text().replace('objective = "accuracy"', 'objective = "fid"')
    (tmp_path / "sweep.toml").write_text(path)
    before = files(tmp_path)
    result = dltk("sweep", tmp_path / "sweep.toml")
    assert result.exit_code == 2
    assert result.err_lines == [
        f"{tmp_path / 'sweep.toml'}: objective: 'fid' is not declared by the recipe or its metrics (declared: "
        "eval/accuracy, train/accuracy, train/loss, train/lr)"
    ]
    assert files(tmp_path) == before


def test_a_storage_that_cannot_be_opened_is_refused(dltk, sweep_file, tmp_path):
    path = sweep_file()
    (tmp_path / "not-a-db.db").write_text("hello, I am text\n" * 100)
    before = files(tmp_path)
    result = dltk("sweep", path, "--storage", "sqlite:///nowhere/study.db")
    assert (result.exit_code, result.err_lines) == (2, ["--storage: folder nowhere does not exist"])
    result = dltk("sweep", path, "--storage", "sqlite:///not-a-db.db")
    assert result.exit_code == 2
    assert result.err_lines[0].startswith("--storage: cannot open not-a-db.db as a database (file is not a database")
    result = dltk("sweep", path, "--storage", "postgresql://nobody@127.0.0.1:9/none")
    assert result.exit_code == 2 and result.err_lines[0].startswith("--storage: ")
    assert files(tmp_path) == before


def test_sweep_is_a_plugin_command_listed_by_help(dltk):
    assert "sweep" in dltk("--help").out
    assert "--jobs J" in dltk("sweep", "--help").out


@pytest.mark.slow
def test_help_imports_neither_optuna_nor_torch(tmp_path):
    """dltk --help loads the plugins' registration (to list their commands), which stays light."""
    import subprocess
    import sys

    heavy = ("optuna", "torch", "mlflow", "sqlalchemy")
    probe = (
        "import sys\nfrom dltoolkit.cli import main\n"
        "try:\n    code = main(sys.argv[1:])\nexcept SystemExit as exc:\n    code = exc.code\n"
        f"print('EXIT', code, 'HEAVY', sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    for args in (["--help"], ["sweep", "--help"]):
        done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, cwd=tmp_path)
        assert done.stdout.strip().splitlines()[-1] == "EXIT 0 HEAVY []", done.stderr
