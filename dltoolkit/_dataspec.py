"""What a dataset's samples are: the description models are built from and checkpoints record."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

SAMPLE_KINDS = ("images", "sequences", "text", "series")


def _ints(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


@attrs.frozen
class DataSpec:
    """What one sample of a dataset is, so that a model can be built to fit it without the data.

    * ``kind``: ``"images"`` (``shape`` is ``(C, H, W)``, values in [-1, 1]), ``"sequences"``
      (``shape`` is ``(length, features)``), ``"text"`` (token ids; ``shape`` is ``(length,)``,
      ``vocab_size`` set) or ``"series"`` (``shape`` is ``(context, features)``; ``horizon``
      steps are predicted). Other kinds are allowed; models document which they take.
    * ``num_classes`` and ``class_names`` when each sample has a class label.
    * ``vocab`` (text): the tokens in id order, so a checkpoint or an export can decode alone.
    * ``extra``: anything else a family needs to rebuild a model (plain JSON-able data).

    Datasets expose it as their ``spec`` attribute; it is stored in every checkpoint and export,
    and a model factory receives it as ``data=``.
    """

    kind: str
    shape: tuple[int, ...] = attrs.field(converter=_ints)
    num_classes: int | None = None
    class_names: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    vocab_size: int | None = None
    vocab: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    horizon: int | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)

    @classmethod
    def images(cls, shape: Any, num_classes: int | None = None, class_names: Any = ()) -> DataSpec:
        """An image dataset: ``shape`` is ``(C, H, W)``, pixel values in [-1, 1]."""
        shape = _ints(shape)
        if len(shape) != 3:
            raise ValueError(f"an image shape is (C, H, W), got {shape}")
        names = tuple(class_names)
        if num_classes is None and names:
            num_classes = len(names)
        return cls("images", shape, num_classes=num_classes, class_names=names)

    @property
    def labelled(self) -> bool:
        return self.num_classes is not None

    def to_json(self) -> str:
        return json.dumps(attrs.asdict(self, recurse=True), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DataSpec:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a data description is a JSON object")
        return cls(**data)

    def describe(self) -> str:
        """``images 1x8x8, 10 classes``: how messages and listings show it."""
        text = f"{self.kind} {'x'.join(str(s) for s in self.shape)}"
        if self.num_classes is not None:
            text += f", {self.num_classes} classes"
        if self.vocab_size is not None:
            text += f", vocabulary {self.vocab_size}"
        return text


def spec_of(dataset: Any) -> DataSpec:
    """The :class:`DataSpec` of ``dataset``: its ``spec``, or images from an ``image_shape``."""
    spec = getattr(dataset, "spec", None)
    if isinstance(spec, DataSpec):
        return spec
    shape = getattr(dataset, "image_shape", None)
    if shape is not None:
        return DataSpec.images(shape)
    raise TypeError(
        f"{type(dataset).__name__} does not describe its samples: give it a `spec` attribute (a dltoolkit.DataSpec)"
    )
