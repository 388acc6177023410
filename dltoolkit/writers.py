"""The writer contract: where a run's records and images go (metrics.jsonl, TensorBoard, the progress
line, an experiment tracker), for plugins of the ``dltk_register_writers`` hook.

* :class:`Writer`: a base class with the four optional methods a writer may have, ``start(run,
  resume_from)``, ``record(record)``, ``image(image)`` and ``end(exit_code)`` (any object with some
  of them will do); docs/writers.md has the whole contract and a worked tracker plugin.
* :class:`Record`: one record of scalars (``kind`` step, epoch or eval; ``epoch``, ``iteration``,
  ``values``, ``protocol`` of evaluations, ``extra``), as metrics.jsonl holds it.
* :class:`Image`: one image of a run (``tag``, ``image`` a uint8 ``(C, H, W)`` tensor, ``iteration``,
  ``path`` of its file under ``samples/`` when one was written).
* :func:`finite_number`: whether a value is a plain finite number (what trackers can plot).
* :func:`printable`: a text with control characters shown escaped, to print names on one line.

Importing this module imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dltoolkit._lazy import lazy_exports

if TYPE_CHECKING:
    from dltoolkit._paths import one_line as printable
    from dltoolkit._recorder import Image, Record, Writer, finite_number

__all__ = ["Image", "Record", "Writer", "finite_number", "printable"]

_getattr, __dir__ = lazy_exports(
    __name__,
    {
        "Image": "dltoolkit._recorder",
        "Record": "dltoolkit._recorder",
        "Writer": "dltoolkit._recorder",
        "finite_number": "dltoolkit._recorder",
    },
)


def __getattr__(name: str) -> object:
    if name == "printable":
        from dltoolkit._paths import one_line

        return one_line
    return _getattr(name)
