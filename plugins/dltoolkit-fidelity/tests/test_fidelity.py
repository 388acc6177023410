"""FID/IS/KID/PRC through torch-fidelity: the whole path with stand-in feature extractors.

The real Inception weights cannot be downloaded here. Two stand-ins cover the path:
torch-fidelity's own Inception-v3 architecture with random weights the test saves to a file
(passed with weights_path + weights_sha256), and a tiny extractor registered through
torch-fidelity's registry for fast numeric checks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import dltoolkit_fidelity.weights as weights_module
from dltoolkit._checkpoint import best_checkpoint_in, load_checkpoint
from dltoolkit.files import sha256_file
from dltoolkit.testing import write_image_folder
from dltoolkit_fidelity.weights import INCEPTION_FILE

ROOT = Path(__file__).resolve().parents[3]  # the repository
TINY = "tiny-test-extractor"


def _register_tiny_extractor() -> None:
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    class TinyExtractor(FeatureExtractorBase):
        """Fixed random projections of 8x8-pooled pixels: fast, deterministic, distribution-sensitive."""

        def __init__(self, name, features_list, **kwargs):
            super().__init__(name, features_list)
            generator = torch.Generator().manual_seed(0)
            self.register_buffer("pool_proj", torch.randn(192, 32, generator=generator) / 14)
            self.register_buffer("logit_proj", torch.randn(192, 10, generator=generator) / 14)

        @staticmethod
        def get_provided_features_list():
            return "2048", "logits_unbiased"

        def forward(self, x):
            pooled = torch.nn.functional.adaptive_avg_pool2d(x.float() / 255.0, 8).flatten(1)
            out = {"2048": pooled @ self.pool_proj, "logits_unbiased": pooled @ self.logit_proj * 5}
            return tuple(out[name] for name in self.features_list)

    if TINY not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(TINY, TinyExtractor)


@pytest.fixture
def tiny_extractor():
    _register_tiny_extractor()
    return TINY


@pytest.fixture(scope="session")
def random_inception(tmp_path_factory) -> tuple[Path, str]:
    """torch-fidelity's Inception-v3 with random weights, saved as a plain state dict."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    original_load, original_url = fe.FeatureExtractorInceptionV3.load_state_dict, fe.load_state_dict_from_url
    fe.FeatureExtractorInceptionV3.load_state_dict = lambda self, state, strict=True: None
    fe.load_state_dict_from_url = lambda *a, **k: {}
    try:
        torch.manual_seed(0)
        model = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    finally:
        fe.FeatureExtractorInceptionV3.load_state_dict, fe.load_state_dict_from_url = original_load, original_url
    path = tmp_path_factory.mktemp("weights") / "random-inception.pth"
    torch.save(model.state_dict(), path)
    return path, sha256_file(path)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DLTK_CACHE_DIR", str(tmp_path / "cache"))


def records(run: Path, kind: str = "eval") -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == kind]


def metric_tables(*names: str, extractor: str, **options) -> str:
    text = ""
    for name in names:
        text += f'\n[[metrics]]\nname = "{name}"\nfeature_extractor = "{extractor}"\n'
        for key, value in options.items():
            text += f"{key} = {json.dumps(value)}\n"
    return text


@pytest.mark.slow
def test_offline_failure_is_early_and_names_the_file(dltk, tiny_gan, tmp_path, monkeypatch):
    def no_network(dest):
        raise OSError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(weights_module, "download_inception", no_network)
    recipe = tiny_gan('\n[[metrics]]\nname = "fid"\n')
    result = dltk("run", recipe)
    assert result.exit_code == 2
    (line,) = result.err_lines
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    assert line == (
        f"{recipe}: metrics.0: needs the Inception weights file {INCEPTION_FILE} at '{hub / INCEPTION_FILE}', but the "
        "download failed (OSError: [Errno 101] Network is unreachable); put the file in "
        f"{hub} (the torch hub cache under $TORCH_HOME), or set metrics.0.weights_path to a local copy "
        "(and metrics.0.weights_sha256 for weights other than the official file)"
    )
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.slow
def test_wrong_weights_are_refused_before_loading(dltk, tiny_gan, tmp_path, random_inception):
    path, sha = random_inception
    recipe = tiny_gan(f'\n[[metrics]]\nname = "fid"\nweights_path = "{path}"\n')
    result = dltk("run", recipe)
    assert result.exit_code == 2
    assert result.err_lines == [
        f"{recipe}: metrics.0.weights_path: '{path}' is not the official Inception weights file "
        f"(its sha256 {sha} does not "
        f'start with 6726825d); to use other weights set metrics.0.weights_sha256 = "{sha}"'
    ]
    result = dltk("run", recipe, "metrics.0.weights_sha256=" + "0" * 64)
    assert result.err_lines == [f"{recipe}: metrics.0.weights_sha256: '{path}' has sha256 {sha}, not {'0' * 64}"]


@pytest.mark.slow
def test_training_with_inception_architecture_scores_and_keeps_best(dltk, tiny_gan, tmp_path, random_inception):
    """Nothing here may depend on the machine's load: torch computes on one thread (run.threads=1)
    whatever else runs (the number of threads changes the order of float sums), and the scores are
    compared as what they are mathematically, up to rounding (random Inception weights predict
    nearly the same classes for every image: the Inception score is 1 plus a rounding-sized amount)."""
    path, sha = random_inception
    options = {
        "every": 1,
        "num_samples": 12,
        "reference_samples": 12,
        "batch_size": 12,
        "weights_path": str(path),
        "weights_sha256": sha,
    }
    recipe = tiny_gan(metric_tables("fid", "isc", extractor="inception-v3-compat", **options))
    result = dltk(
        "run", recipe, "recipe.epochs=2", "run.threads=1", "checkpoint.best_by=fid", "--run-dir", tmp_path / "run"
    )
    assert result.exit_code == 0, result.err
    evals = records(tmp_path / "run")
    assert [r["epoch"] for r in evals] == [1, 2]
    first, second = evals
    assert np.isfinite(first["fid"]) and first["fid"] > 0
    assert first["isc"] >= 1.0 - 1e-5  # exp(KL) >= 1 mathematically; here it is 1 up to rounding
    protocol = first["protocol"]["fid"]
    assert protocol["num_samples"] == 12 and protocol["reference_count"] == 12
    assert protocol["reference_dataset"] == "digits" and protocol["reference_split"] == "train"
    assert protocol["feature_extractor"] == "inception-v3-compat" and protocol["feature_layer"] == "2048"
    assert protocol["weights_sha256"] == sha and protocol["generated_resolution"] == [8, 8]
    assert protocol["resize"].startswith("bilinear, TF1.x-compatible, to 299x299")
    assert protocol["torch_fidelity"] and protocol["seed"] == 1
    assert first["protocol"]["isc"]["feature_layer"] == "logits_unbiased"
    assert protocol["reference_cached"] is False and second["protocol"]["fid"]["reference_cached"] is True
    best = best_checkpoint_in(tmp_path / "run" / "checkpoints")
    assert best is not None
    assert load_checkpoint(best)["meta"]["best_score"] == min(r["fid"] for r in evals)


@pytest.mark.slow
def test_metrics_share_one_pass_and_cache_reference(dltk, tiny_gan, tmp_path, tiny_extractor, monkeypatch):
    import dltoolkit_fidelity.metrics as metrics_module

    calls = []
    original = metrics_module.extract

    def counting(batches, extractor, features, device):
        calls.append(features)
        return original(batches, extractor, features, device)

    monkeypatch.setattr(metrics_module, "extract", counting)
    options = {"every": 1, "num_samples": 64, "reference_samples": 100}
    recipe = tiny_gan(
        metric_tables("fid", "isc", "prc", extractor=tiny_extractor, **options)
        + metric_tables("kid", extractor=tiny_extractor, subset_size=32, **options)
    )
    result = dltk("run", recipe, "recipe.epochs=2", "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.err
    # epoch 1: one generated pass (both layers) + one reference pass; epoch 2: the generated pass only
    assert calls == [("2048", "logits_unbiased"), ("2048",), ("2048", "logits_unbiased")]
    first = records(tmp_path / "run")[0]
    assert {"fid", "isc", "kid", "prc"} <= set(first)
    assert 0 <= first["protocol"]["prc"]["precision"] <= 1 and 0 <= first["protocol"]["prc"]["recall"] <= 1


@pytest.mark.slow
def test_changed_protocol_never_reuses_reference_features(dltk, tiny_gan, tmp_path, tiny_extractor):
    def cached(*overrides: str, name: str) -> bool:
        options = {"every": 1, "num_samples": 16, "reference_samples": 40}
        recipe = tiny_gan(metric_tables("fid", extractor=tiny_extractor, **options))
        result = dltk("run", recipe, "recipe.epochs=1", *overrides, "--run-dir", tmp_path / name)
        assert result.exit_code == 0, result.err
        return records(tmp_path / name)[0]["protocol"]["fid"]["reference_cached"]

    assert cached(name="a") is False
    assert cached(name="b") is True  # same protocol, from the disk cache
    assert cached("metrics.0.reference_samples=41", name="c") is False  # count changed
    assert cached("dataset.image_size=16", name="d") is False  # resolution changed
    assert cached('metrics.0.reference="test"', name="e") is False  # split changed


def _write_folder(folder: Path, images: np.ndarray) -> Path:
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    return folder


@pytest.mark.slow
def test_fid_of_identical_sets_is_zero_and_grows_with_shift(dltk, tmp_path, tiny_extractor):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 150, size=(48, 16, 16, 3), dtype=np.uint8)
    real = _write_folder(tmp_path / "real", base)
    scores = []
    for shift in (0, 40, 90):
        fake = _write_folder(tmp_path / f"fake{shift}", np.clip(base.astype(int) + shift, 0, 255).astype(np.uint8))
        out = tmp_path / f"scores{shift}.json"
        result = dltk(
            "eval",
            "--real",
            real,
            "--fake",
            fake,
            "--metrics",
            "fid,kid",
            "--feature-extractor",
            tiny_extractor,
            "--json",
            out,
        )
        assert result.exit_code == 0, result.err
        assert result.out.splitlines()[0].split() == ["metric", "value", "protocol"]
        scores.append(json.loads(out.read_text())["fid"]["value"])
    assert abs(scores[0]) < 1e-6
    assert 0 < scores[1] < scores[2]


@pytest.mark.slow
def test_eval_on_a_run_and_its_export(dltk, tiny_gan, tmp_path, tiny_extractor):
    assert dltk("run", tiny_gan(), "recipe.epochs=1", "--run-dir", tmp_path / "run").exit_code == 0
    args = ["--metrics", "fid,isc", "--num-samples", "32", "--feature-extractor", tiny_extractor]
    result = dltk("eval", tmp_path / "run", *args, "--json", tmp_path / "a.json")
    assert result.exit_code == 0, result.err
    rows = {line.split()[0]: line for line in result.out.splitlines()[1:]}
    assert set(rows) == {"fid", "isc"}
    assert "32 generated vs 1437 digits/train" in rows["fid"]
    assert dltk("export", tmp_path / "run", "--out", tmp_path / "g.safetensors").exit_code == 0
    result = dltk("eval", tmp_path / "g.safetensors", *args, "--json", tmp_path / "b.json")
    assert result.exit_code == 0, result.err
    a, b = json.loads((tmp_path / "a.json").read_text()), json.loads((tmp_path / "b.json").read_text())
    assert a["fid"]["value"] == b["fid"]["value"]  # same generator, same seed, same reference


def test_eval_argument_errors(dltk, tmp_path):
    result = dltk("eval", "--metrics", "fdi")
    assert result.exit_code == 2
    assert result.err_lines[0].startswith("--metrics: unknown metric 'fdi' (did you mean 'fid'?)")
    assert result.err_lines[1] == ("dltk eval: give SOURCE (a run directory, checkpoint or export) or --real/--fake")
    result = dltk("eval", "--real", tmp_path)  # every problem at once: no metric named, no --fake
    assert result.err_lines[0].startswith("--metrics: name at least one metric (")
    assert result.err_lines[1:] == ["dltk eval: give SOURCE, or both --real DIR and --fake DIR"]


REAL_WEIGHTS = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


@pytest.mark.skipif(
    not REAL_WEIGHTS.is_file(),
    reason=f"the official Inception weights are not at {REAL_WEIGHTS} "
    "(they cannot be downloaded here); place the file there to run this test",
)
def test_real_inception_weights_load_safely_and_score(dltk, tmp_path):  # pragma: no cover - needs the file
    rng = np.random.default_rng(0)
    real = _write_folder(tmp_path / "real", rng.integers(0, 255, size=(20, 32, 32, 3), dtype=np.uint8))
    result = dltk("eval", "--real", real, "--fake", real, "--metrics", "fid", "--weights-path", REAL_WEIGHTS)
    assert result.exit_code == 0, result.err
    assert abs(float(result.out.splitlines()[1].split()[1])) < 1e-3


@pytest.mark.slow
def test_vae_runs_are_scored_like_gan_runs(dltk, tmp_path, tiny_extractor):
    """dltk eval --metrics fid,isc on a VAE run and its export: the same path as for a GAN, no change."""
    recipe = ROOT / "recipes" / "vae_digits.toml"
    small = ["recipe.epochs=1", "model.hidden_dim=16", "model.latent_dim=4", "metrics=[]", "callbacks=[]"]
    result = dltk("run", recipe, *small, "checkpoint.best_by=loss", "--run-dir", tmp_path / "vae")
    assert result.exit_code == 0, result.err
    args = ["--metrics", "fid,isc", "--num-samples", "24", "--feature-extractor", tiny_extractor]
    result = dltk("eval", tmp_path / "vae", *args, "--json", tmp_path / "a.json")
    assert result.exit_code == 0, result.err
    assert "24 generated vs 1437 digits/train" in result.out
    assert dltk("export", tmp_path / "vae", "--out", tmp_path / "v.safetensors").exit_code == 0
    result = dltk("eval", tmp_path / "v.safetensors", *args, "--json", tmp_path / "b.json")
    assert result.exit_code == 0, result.err
    a, b = json.loads((tmp_path / "a.json").read_text()), json.loads((tmp_path / "b.json").read_text())
    assert a["fid"]["value"] == b["fid"]["value"] and a["isc"]["value"] == b["isc"]["value"]


def test_eval_errors_name_the_flags_of_dltk_eval(dltk, tmp_path):
    """Outside a recipe file the fix is a flag (--weights-path), not a recipe key (issue 12, item 5)."""
    real = tmp_path / "real"
    write_image_folder(real, n=4)
    missing = tmp_path / "nowhere.pth"
    result = dltk("eval", "--real", real, "--fake", real, "--metrics", "fid", "--weights-path", missing)
    assert result.exit_code == 2
    (line,) = result.err_lines
    assert line.startswith(f"--metrics fid: needs the Inception weights file {INCEPTION_FILE} at '{missing}'")
    assert "or give --weights-path to a local copy (and --weights-sha256 for weights other than the official" in line
    assert ".weights_path" not in line
