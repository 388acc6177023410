"""The dltoolkit-fidelity plugin: registers the metrics ``fid``, ``isc``, ``kid`` and ``prc``.

Registration is light: the factories are named by ``"module:attr"`` strings, so torch and
torch-fidelity are imported when a metric is built.
"""

from __future__ import annotations

from dltoolkit import Component, Scalar, hookimpl
from dltoolkit_fidelity.options import FidelityConfig, IscConfig, KidConfig, PrcConfig

SAMPLES = {"recipe": "sample"}


@hookimpl
def dltk_register_metrics() -> list[Component]:
    return [
        Component(
            "fid",
            "dltoolkit_fidelity.metrics:fid",
            FidelityConfig,
            summary="Fréchet Inception Distance via torch-fidelity (lower is better).",
            needs=SAMPLES,
            reports=[Scalar("fid", "Frechet distance of sample features to the reference's.", "lower")],
        ),
        Component(
            "isc",
            "dltoolkit_fidelity.metrics:isc",
            IscConfig,
            summary="Inception Score via torch-fidelity (higher is better).",
            needs=SAMPLES,
            reports=[Scalar("isc", "Inception Score of the samples (mean over splits).", "higher")],
        ),
        Component(
            "kid",
            "dltoolkit_fidelity.metrics:kid",
            KidConfig,
            summary="Kernel Inception Distance via torch-fidelity (lower is better).",
            needs=SAMPLES,
            reports=[Scalar("kid", "Kernel distance of sample features to the reference's.", "lower")],
        ),
        Component(
            "prc",
            "dltoolkit_fidelity.metrics:prc",
            PrcConfig,
            summary="Precision/recall via torch-fidelity; scored by their F-score (higher is better).",
            needs=SAMPLES,
            reports=[Scalar("prc", "F-score of precision and recall of the samples.", "higher")],
        ),
    ]
