"""The dltoolkit-fidelity plugin: registers the metrics ``fid``, ``isc``, ``kid`` and ``prc``."""

from __future__ import annotations

from dltoolkit import Component, hookimpl
from dltoolkit_fidelity.metrics import FidelityConfig, IscConfig, KidConfig, PrcConfig, fid, isc, kid, prc


@hookimpl
def dltk_register_metrics() -> list[Component]:
    return [
        Component("fid", fid, FidelityConfig),
        Component("isc", isc, IscConfig),
        Component("kid", kid, KidConfig),
        Component("prc", prc, PrcConfig),
    ]
