"""The metric contract: a held-out metric's factory returns a plain Ignite ``Metric``, the core owns
its ``every``, ``split`` and ``batch_size`` (``dltoolkit.MetricConfig``) and its evaluator; a sample
metric follows ``dltoolkit.SampleMetric``."""

from __future__ import annotations

import json
import types
from typing import Any

import attrs
import pytest
from ignite.metrics import Accuracy

import dltoolkit
from dltoolkit._config import validate_options
from dltoolkit._metrics import HeldOutMetric

VISION = ("dltoolkit-vision", "0.1.0", {"vision": "dltoolkit_vision.plugin"})  # the classify recipe

SEEN: list[int] = []  # the batch sizes the metric was updated with
ATTACHED: list[int] = []  # id() of each metric attached to an evaluator


class CountingAccuracy(Accuracy):
    """Ignite's Accuracy, noting what the core feeds it."""

    def attach(self, engine: Any, name: str, *args: Any, **kwargs: Any) -> None:
        ATTACHED.append(id(self))
        super().attach(engine, name, *args, **kwargs)

    def update(self, output: Any) -> None:
        SEEN.append(len(output[1]))
        super().update(output)


def counting_accuracy(config: dltoolkit.MetricConfig) -> CountingAccuracy:
    """Held-out accuracy that counts its batches."""
    return CountingAccuracy()


def plugin_module() -> types.ModuleType:
    module = types.ModuleType("held_out_plugin")

    @dltoolkit.hookimpl
    def dltk_register_metrics() -> list[dltoolkit.Component]:
        scalar = dltoolkit.Scalar("held-acc", "Held-out accuracy.", "higher")
        return [
            dltoolkit.Component(
                "held-acc", counting_accuracy, dltoolkit.MetricConfig, needs={"recipe": "evaluate"}, reports=[scalar]
            )
        ]

    module.dltk_register_metrics = dltk_register_metrics
    return module


RECIPE = """
seed = 0
[run]
device = "cpu"
threads = 1
[recipe]
name = "classify"
epochs = 3
batch_size = 64
log_every = 1000
[model]
name = "lenet"
[dataset]
name = "digits"
[[metrics]]
name = "held-acc"
every = 2
split = "train"
batch_size = 100
"""


def component(factory: Any, config: type = dltoolkit.MetricConfig) -> dltoolkit.Component:
    return attrs.evolve(dltoolkit.Component("x", factory, config), kind="metric", plugin="t")


def test_an_ignite_metric_factory_gives_a_held_out_metric_with_the_core_options():
    metric = component(counting_accuracy).build(dltoolkit.MetricConfig(every=3, split="train", batch_size=5), run=None)
    assert isinstance(metric, HeldOutMetric)
    assert (metric.name, metric.every, metric.split, metric.batch_size) == ("x", 3, "train", 5)
    first, second, third = metric.ignite_metric(), metric.ignite_metric(), metric.ignite_metric()
    assert all(isinstance(m, CountingAccuracy) for m in (first, second, third))
    assert len({id(first), id(second), id(third)}) == 3  # a fresh Metric for each evaluation
    assert metric.summary({"count": 9, "split": "test", "reference": {"dataset": "digits"}}) == (
        "9 digits/test examples; Held-out accuracy that counts its batches."
    )


def test_metric_config_validates_the_options_the_core_owns():
    held = component(counting_accuracy)
    assert validate_options(held, {}, "r.toml") == dltoolkit.MetricConfig(every=1, split="test", batch_size=256)
    with pytest.raises(dltoolkit.DltkError) as error:
        validate_options(held, {"every": 0, "split": "valid", "batch_size": 0}, "r.toml")
    text = str(error.value)
    assert "every" in text and "split" in text and "batch_size" in text


def test_a_metric_config_subclass_adds_options_and_may_require_them():
    @attrs.frozen
    class TopConfig(dltoolkit.MetricConfig):
        k: int  # required, after the core's (keyword-only) options

    config = TopConfig(k=3, every=2)
    assert (config.k, config.every, config.split) == (3, 2, "test")
    names = [row[0] for row in component(counting_accuracy, TopConfig).options()]
    assert names == ["every", "split", "batch_size", "k"]


def test_what_is_neither_an_ignite_metric_nor_a_sample_metric_is_refused_naming_the_component():
    with pytest.raises(TypeError, match="plugin 't': metric 'x': its factory must return an Ignite Metric or a"):
        component(lambda config: object()).build(dltoolkit.MetricConfig())

    @attrs.frozen
    class NoSchedule:
        size: int = 1

    with pytest.raises(TypeError, match=r"its config must be a dltoolkit.MetricConfig \(no every, split, batch_size"):
        component(counting_accuracy, NoSchedule).build(NoSchedule())


class Gap:
    """A sample metric: name, every and evaluate_together."""

    name = "gap"

    def __init__(self, config: Any):
        self.every = 2

    @staticmethod
    def evaluate_together(run: Any, metrics: list[Any]) -> dict[str, dict[str, Any]]:
        return {m.name: {"value": 0.0} for m in metrics}


def test_a_sample_metric_follows_the_protocol_and_is_returned_as_built():
    built = component(Gap).build(dltoolkit.MetricConfig())
    assert isinstance(built, Gap) and isinstance(built, dltoolkit.SampleMetric)
    assert not isinstance(types.SimpleNamespace(name="x", every=1), dltoolkit.SampleMetric)


def test_held_out_metric_is_evaluated_on_the_core_schedule_split_and_batches_in_a_run_and_by_eval(
    dltk, fake_plugins, recipe_file, tmp_path
):
    pytest.importorskip("dltoolkit_vision")
    fake_plugins(VISION, ("held-out-plugin", "0.1.0", {"held": plugin_module()}))
    SEEN.clear()
    ATTACHED.clear()
    result = dltk("run", recipe_file(RECIPE), "--run-dir", tmp_path / "r")
    assert result.exit_code == 0, result.err

    records = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["epoch"] for r in evals] == [2, 3]  # every = 2, and after the last epoch
    assert all(r["protocol"]["held-acc"]["split"] == "train" for r in evals)
    assert all(r["protocol"]["held-acc"]["count"] == 1437 for r in evals)  # the digits' train split
    assert max(SEEN) == 100 and sum(SEEN) == 2 * 1437  # batch_size = 100, the whole split each time
    assert len(ATTACHED) == 2 and len(set(ATTACHED)) == 2  # a fresh Ignite Metric per evaluation

    # dltk eval: the run's own [[metrics]] options (split = "train"), the same score as the last evaluation
    result = dltk("eval", tmp_path / "r", "--json", tmp_path / "s.json")
    assert result.exit_code == 0, result.err
    scored = json.loads((tmp_path / "s.json").read_text())["held-acc"]
    assert scored["split"] == "train" and scored["count"] == 1437
    assert scored["value"] == pytest.approx(evals[-1]["held-acc"], rel=1e-6)
    assert "1437 digits/train examples; Held-out accuracy that counts its batches." in result.out

    # --metrics with no options: the core's defaults (the test split), and --batch-size is the core's option
    SEEN.clear()
    result = dltk("eval", tmp_path / "r", "--metrics", "held-acc", "--batch-size", "7", "--json", tmp_path / "t.json")
    assert result.exit_code == 0, result.err
    scored = json.loads((tmp_path / "t.json").read_text())["held-acc"]
    assert scored["split"] == "test" and scored["count"] == 360
    assert max(SEEN) == 7 and sum(SEEN) == 360
