"""The vision plugin's component checks: run by ``dltk check`` and ``dltk run`` before anything is built."""

from __future__ import annotations

from typing import Any


def check_torchvision(config: Any, *, where: str, stage: str) -> list[str]:
    """A ``torchvision`` model's ``arch`` must be a classification model torchvision ships; when a run
    starts (not under ``dltk check``, nor on ``--resume``, whose checkpoint holds the weights),
    its starting weights file must be there and be the one named."""
    from dltoolkit_vision.models import arch_problem
    from dltoolkit_vision.weights import check_weights

    problem = arch_problem(config.arch, where)
    if problem is not None:
        return [problem]
    return check_weights(config, where) if stage == "run" else []
