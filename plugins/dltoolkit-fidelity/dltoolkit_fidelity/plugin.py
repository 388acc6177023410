"""The dltoolkit-fidelity plugin: registers the metrics ``fid``, ``isc``, ``kid`` and ``prc``."""

from __future__ import annotations

from dltoolkit import Component, Scalar, hookimpl
from dltoolkit_fidelity.metrics import FidelityConfig, IscConfig, KidConfig, PrcConfig, fid, isc, kid, prc

SAMPLES = {"recipe": "sample"}


@hookimpl
def dltk_register_metrics() -> list[Component]:
    return [
        Component(
            "fid",
            fid,
            FidelityConfig,
            needs=SAMPLES,
            reports=[Scalar("fid", "Frechet distance of sample features to the reference's.", "lower")],
        ),
        Component(
            "isc",
            isc,
            IscConfig,
            needs=SAMPLES,
            reports=[Scalar("isc", "Inception Score of the samples (mean over splits).", "higher")],
        ),
        Component(
            "kid",
            kid,
            KidConfig,
            needs=SAMPLES,
            reports=[Scalar("kid", "Kernel distance of sample features to the reference's.", "lower")],
        ),
        Component(
            "prc",
            prc,
            PrcConfig,
            needs=SAMPLES,
            reports=[Scalar("prc", "F-score of precision and recall of the samples.", "higher")],
        ),
    ]
