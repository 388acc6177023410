"""classifier-fid: FID/KID in the penultimate feature space of a dltoolkit classifier run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dltoolkit.testing import run_cli

CLASSIFIER = """
seed = 0

[run]
device = "cpu"
threads = 1

[recipe]
name = "classify"
epochs = 2
batch_size = 64
optimizer = "adamw"
lr = 0.01
log_every = 10
confusion_matrix = false

[model]
name = "lenet"
channels = [8, 16]
hidden = [64, 32]

[dataset]
name = "digits"

[[metrics]]
name = "accuracy"

[checkpoint]
best_by = "eval/accuracy"
"""


def records(run: Path, kind: str) -> list[dict]:
    found = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in found if r["kind"] == kind]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("classifier")
    (folder / "c.toml").write_text(CLASSIFIER)
    result = run_cli("run", folder / "c.toml", "--run-dir", folder / "run")
    assert result.exit_code == 0, result.err
    return folder / "run"


class Source:
    """What the metric reads from a run, with a dataset split served as the 'generated' images."""

    def __init__(self, split: str):
        from dltoolkit.builtin.datasets import ImageDatasetConfig, digits

        self.seed, self.device, self.cache_dir = 0, "cpu", Path.cwd() / "cache"
        self._data = {s: digits(ImageDatasetConfig(), split=s) for s in ("train", "test")}
        self.sampler = self
        self.split = split

    def batches(self, n: int, *, seed: int, batch_size: int):
        import torch

        data = self._data[self.split]
        n = min(n, len(data))
        for start in range(0, n, batch_size):
            yield torch.stack([data[i][0] for i in range(start, min(n, start + batch_size))])

    def reference(self, split: str):
        return self._data[split], {"dataset": "digits", "split": split}


@pytest.mark.slow
def test_a_gan_run_is_scored_in_the_classifier_space_with_its_protocol_and_cache(
    classifier, dltk, tiny_gan, tmp_path, monkeypatch
):
    from dltoolkit.files import sha256_file
    from dltoolkit_vision import classifier_fid
    from dltoolkit_vision.options import ClassifierFidConfig

    monkeypatch.setenv("DLTK_CACHE_DIR", str(tmp_path / "cache"))
    path = tiny_gan(
        f'[[metrics]]\nname = "classifier-fid"\nclassifier = "{classifier.as_posix()}"\n'
        'num_samples = 500\nreference = "train"\nevery = 1\n'
    )
    gan = tmp_path / "gan"
    result = dltk("run", path, "recipe.epochs=1", "--run-dir", gan)
    assert result.exit_code == 0, result.err
    [record] = records(gan, "eval")
    value = record["classifier-fid"]
    protocol = record["protocol"]["classifier-fid"]
    best = next((classifier / "checkpoints").glob("best_checkpoint_*.pt"))
    assert value > 0
    assert protocol["classifier_sha256"] == sha256_file(best) and protocol["classifier_model"] == "lenet"
    assert protocol["classifier_dataset"]["name"] == "digits"
    assert protocol["classifier_accuracy"] == max(r["accuracy"] for r in records(classifier, "eval"))
    assert protocol["classifier_accuracy_split"] == "test"
    assert protocol["feature_dim"] == 32 and protocol["num_samples"] == 500 and protocol["seed"] == 1
    assert (protocol["reference_split"], protocol["reference_count"]) == ("train", 1437)
    assert protocol["reference_cached"] is None and protocol["kid"] > 0
    assert len(list((tmp_path / "cache" / "classifier-fid").glob("reference-*.pt"))) == 1

    # the real held-out digits against the training digits: far closer than a 1-epoch GAN
    metric = classifier_fid.ClassifierFid(ClassifierFidConfig(str(classifier), reference="train"), Source("test"))
    real = metric.score(Source("test"))
    assert real["num_samples"] == 360 and real["value"] < value / 5

    # evaluating again reuses the reference features: from memory, then from disk
    result = dltk("eval", gan, "--json", tmp_path / "scores.json")
    assert result.exit_code == 0, result.err
    again = json.loads((tmp_path / "scores.json").read_text())["classifier-fid"]
    assert again["reference_cached"] == "memory" and again["classifier_sha256"] == protocol["classifier_sha256"]
    classifier_fid._MEMO.clear()
    result = dltk("eval", gan, "--json", tmp_path / "scores.json", "--force")
    assert json.loads((tmp_path / "scores.json").read_text())["classifier-fid"]["reference_cached"] == "disk"


@pytest.mark.slow
def test_a_path_that_is_not_a_classifier_run_is_refused_in_one_line(classifier, dltk, tiny_gan, tmp_path):
    for bad, says in [(tmp_path / "missing", "no such run directory"), (tmp_path / "empty", "not a run directory")]:
        (tmp_path / "empty").mkdir(exist_ok=True)
        path = tiny_gan(f'[[metrics]]\nname = "classifier-fid"\nclassifier = "{bad.as_posix()}"\n')
        result = dltk("run", path, "--run-dir", tmp_path / "r")
        assert result.exit_code == 2 and len(result.err_lines) == 1, result.err
        assert "metrics.0.classifier" in result.err and says in result.err
    import torch

    foreign = tmp_path / "gan.pt"  # a checkpoint of another family: refused by its recorded model
    torch.save({"meta": {"recipe": "gan", "model": "mlp-gan"}}, foreign)
    path = tiny_gan(f'[[metrics]]\nname = "classifier-fid"\nclassifier = "{foreign.as_posix()}"\n')
    result = dltk("run", path, "--run-dir", tmp_path / "r2")
    assert result.exit_code == 2 and len(result.err_lines) == 1, result.err
    assert "not a classifier run" in result.err and "metrics.0.classifier" in result.err


@pytest.mark.slow
def test_dltk_eval_takes_metric_options_with_set(classifier, dltk, tiny_gan, tmp_path):
    """A run whose recipe names no metric is scored with classifier-fid from the command line:
    --set gives the options --metrics cannot carry (user trial)."""
    gan = tmp_path / "gan"
    assert dltk("run", tiny_gan(), "recipe.epochs=1", "--run-dir", gan).exit_code == 0
    result = dltk("eval", gan)
    assert result.exit_code == 2
    assert result.err_lines[0].startswith(
        f"--metrics: {gan}'s recipe file has no [[metrics]]; name at least one metric (installed: "
    )
    result = dltk("eval", gan, "--metrics", "classifier-fid")
    assert (result.exit_code, result.err_lines) == (
        2,
        ["dltk eval: metric.classifier: missing required key; give it with --set classifier=VALUE"],
    )
    result = dltk("eval", gan, "--metrics", "classifier-fid", "--set", f"clasifier={classifier}")
    assert (result.exit_code, result.err_lines) == (
        2,
        ["--set: clasifier: no option of classifier-fid (did you mean 'classifier'?)"],
    )
    result = dltk("eval", gan, "--metrics", "classifier-fid", "--set", "num_samples=300", "--set", "x")
    assert (result.exit_code, result.err_lines) == (
        2,
        [
            "--set: num_samples: use --num-samples",  # one way to say it, so that neither silently wins
            "--set: expected KEY=VALUE, an option of the named metrics (for example classifier=RUN_DIR), got 'x'",
        ],
    )
    out = tmp_path / "scores.json"
    result = dltk(
        "eval", gan, "--metrics", "classifier-fid", "--set", f"classifier={classifier}", "--num-samples", "300",
        "--json", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.err
    scored = json.loads(out.read_text())["classifier-fid"]
    assert scored["value"] > 0 and scored["num_samples"] == 300 and scored["classifier_model"] == "lenet"


def test_loading_a_classifier_leaves_the_global_rng_where_it_was(classifier):
    """A scorer loaded at a run's start must not shift the run's random draws: the first load in a
    process (a fresh model, randomly initialised, then the weights) and a cached one agree."""
    import torch

    from dltoolkit_vision import classifier_fid

    classifier_fid._CLASSIFIERS.clear()
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    loaded = classifier_fid.load_classifier(classifier)
    assert torch.equal(torch.rand(4), expected)
    assert classifier_fid.load_classifier(classifier) is loaded  # cached while the file is unchanged
