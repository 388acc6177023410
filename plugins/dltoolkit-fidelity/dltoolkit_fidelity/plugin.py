"""The dltoolkit-fidelity plugin: registers the metrics ``fid``, ``isc``, ``kid`` and ``prc``.

Registration is light: torch and torch-fidelity are imported when a metric is built.
"""

from __future__ import annotations

from typing import Any

from dltoolkit import Component, Scalar, hookimpl
from dltoolkit_fidelity.options import FidelityConfig, IscConfig, KidConfig, PrcConfig

SAMPLES = {"recipe": "sample"}


def fid(config: FidelityConfig, *, run: Any) -> Any:
    """Fréchet Inception Distance via torch-fidelity (lower is better)."""
    from dltoolkit_fidelity.metrics import Fid

    return Fid(config, run)


def isc(config: IscConfig, *, run: Any) -> Any:
    """Inception Score via torch-fidelity (higher is better)."""
    from dltoolkit_fidelity.metrics import Isc

    return Isc(config, run)


def kid(config: KidConfig, *, run: Any) -> Any:
    """Kernel Inception Distance via torch-fidelity (lower is better)."""
    from dltoolkit_fidelity.metrics import Kid

    return Kid(config, run)


def prc(config: PrcConfig, *, run: Any) -> Any:
    """Precision/recall via torch-fidelity; scored by their F-score (higher is better)."""
    from dltoolkit_fidelity.metrics import Prc

    return Prc(config, run)


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
