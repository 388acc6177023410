"""``dltk predict``: what a finished run's model predicts, as CSV rows or as files the recipe writes."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from dltoolkit import _checkpoint
from dltoolkit._config import validate_options
from dltoolkit._errors import DltkError
from dltoolkit._generate import device_option, load_trained, write_by_recipe
from dltoolkit._plugin_options import refuse_foreign
from dltoolkit._registry import Registry


def recorded_dataset(registry: Registry, meta: dict[str, Any], source: Path, split: str) -> Any:
    """The ``split`` of the dataset a run trained on, as recorded in its metadata."""
    try:
        table = json.loads(meta.get("dataset") or "")
        name = table.pop("name")
    except (ValueError, KeyError, AttributeError, TypeError):
        raise DltkError(f"{source}: no dataset recorded with this model; give --input a file or folder") from None
    component = registry.get("dataset", name)
    config = validate_options(component, {k: v for k, v in table.items() if k != "split"}, str(source))
    return component.build(config, split=split)


def predict_rows(
    registry: Registry,
    source: Path,
    *,
    input: str,
    out: Path | None,
    device: str = "auto",
    force: bool = False,
    options: dict[str, Any] | None = None,
    flags: dict[str, str] | None = None,
) -> str:
    """Write what SOURCE's model predicts for ``input``; return what was written, in words.

    CSV rows (to ``out``, else stdout), the default; or, when the recipe's ``predict`` takes
    ``out`` and ``out`` is a folder (not a ``.csv`` file), the files it writes there, with its
    rows (if any) as ``predictions.csv`` beside them. An existing file is replaced only with
    ``force``. ``options`` (plugin options) go to ``predict`` by name; those it does not take are
    refused.
    """
    options = dict(options or {})
    torch_device = device_option(device)
    trained, meta, path = load_trained(registry, source, torch_device)
    if trained.predict is None:
        raise DltkError(
            f"{path}: the '{meta.get('recipe')}' recipe does not predict "
            f"(its runs offer: {', '.join(trained.capabilities()) or 'nothing'}); dltk predict needs one that does"
        )
    writes_files = "out" in inspect.signature(trained.predict).parameters
    to_folder = writes_files and out is not None and Path(out).suffix.lower() != ".csv"
    if out is not None and not to_folder and Path(out).is_dir():
        raise DltkError(f"--out: '{out}' is a folder; give a file name such as predictions.csv")
    if out is not None and not to_folder and Path(out).exists() and not force:
        raise DltkError(f"--out: '{out}' exists; pass --force to replace it")
    if to_folder and Path(out).exists() and not Path(out).is_dir():  # type: ignore[arg-type]
        raise DltkError(f"--out: '{out}' is a file; give a folder for the files this recipe writes")
    refuse_foreign(options, trained.predict, f"the '{meta.get('recipe')}' recipe's predictions", flags)
    given = Path(input)
    if input in ("train", "test") and not given.exists():
        arguments: tuple[Any, Any] = (None, recorded_dataset(registry, meta, path, input))
    elif given.exists():
        arguments = (given, None)
    else:
        raise DltkError(f"--input: '{input}' is not a file, a folder, or a split name (train, test)")
    if to_folder:
        return _predict_to_folder(trained.predict, arguments, Path(out), force=force, options=options)  # type: ignore[arg-type]
    if writes_files:
        options["out"] = None
    text, count = _csv(trained.predict(*arguments, **options))
    if out is None:
        import sys

        sys.stdout.write(text)
    else:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        _checkpoint.atomic_write(Path(out), lambda handle: handle.write(text.encode()))
    return f"{count} predictions"


def _csv(rows: Any) -> tuple[str, int]:
    """``(CSV text, row count)`` of prediction mappings, with the first row's keys as the header."""
    import csv
    import io

    buffer = io.StringIO()
    writer: Any = None
    count = 0
    for row in rows or ():
        if writer is None:
            writer = csv.DictWriter(buffer, fieldnames=list(row), lineterminator="\n")
            writer.writeheader()
        writer.writerow(row)
        count += 1
    return buffer.getvalue(), count


def _predict_to_folder(
    predict: Any, arguments: tuple[Any, Any], target: Path, *, force: bool, options: dict[str, Any]
) -> str:
    """A recipe's ``predict(..., out=folder)`` writing files (its rows as ``predictions.csv``), moved into
    ``out`` as ``dltk generate`` moves what a recipe writes."""
    count = 0

    def write(folder: Path, **_ignored: Any) -> None:
        nonlocal count
        text, count = _csv(predict(*arguments, **{**options, "out": folder}))
        if count:
            (folder / "predictions.csv").write_text(text, encoding="utf-8")

    written = write_by_recipe(write, target, force=force)
    return f"{written} ({count} prediction{'s' if count != 1 else ''})"
