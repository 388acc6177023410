"""Do the components of a recipe file fit together? Checked from declarations, before anything is built.

A recipe (and a model) declares ``needs``: for a table kind, the tags the component named there
must ``provide``. A mismatch is one problem naming both components and what each expects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import SimpleNamespace
from typing import Any

from dltoolkit._component import Component


def describe_tags(tags: Iterable[str]) -> str:
    tags = list(tags)
    return " + ".join(f"'{t}'" for t in tags) if tags else "nothing declared"


def fitting(registry: Any, kind: str, tags: Iterable[str]) -> list[str]:
    """Names of the ``kind`` components that provide every tag in ``tags``."""
    wanted = set(tags)
    return [n for n in registry.names(kind) if wanted <= set(registry.components[kind][n].provides)]


def serves(registry: Any, component: Component) -> list[str]:
    """The recipes a model or dataset fits, by the rules of ``dltk check``: the recipe needs what the
    component provides, and some installed partner (a dataset for a model, a model for a dataset)
    makes a recipe file that :func:`mismatches` finds nothing wrong with."""
    partner_kind = "dataset" if component.kind == "model" else "model"
    partners = [registry.components[partner_kind][n] for n in registry.names(partner_kind)]
    found = []
    for name in registry.names("recipe"):
        recipe = registry.components["recipe"][name]
        needed = recipe.needs.get(component.kind)
        if not needed or not set(needed) <= set(component.provides):
            continue
        uses_partner = partner_kind in recipe.requires or partner_kind in recipe.needs
        for partner in partners if uses_partner else [None]:
            tables = {"recipe": _table(recipe), component.kind: _table(component)}
            if partner is not None:
                tables[partner_kind] = _table(partner)
            if not mismatches(registry, tables):
                found.append(name)
                break
    return found


def _table(component: Component) -> Any:
    """A stand-in for a recipe file's table naming ``component`` (for what-fits questions)."""
    return SimpleNamespace(name=component.name, component=component, path=component.kind)


def mismatches(registry: Any, tables: Mapping[str, Any], extra_owners: Iterable[Any] = ()) -> list[tuple[str, str]]:
    """``(key, problem)`` for every declared need that the component named by a table does not meet.

    ``tables`` maps a kind (``"recipe"``, ``"model"``, ``"dataset"``) to a table with ``name``,
    ``component`` and ``path``; the recipe's and the model's needs are checked against them, and
    so are those of ``extra_owners`` (the ``[[metrics]]`` and ``[[callbacks]]`` tables). A need
    of the recipe or model is reported at the table that falls short (``model.name``); a need of
    a metric or callback at that metric or callback (``metrics.0.name``). A component that
    provides nothing is not checked here (its data is checked once built, see :func:`data_problem`).
    """
    problems: list[tuple[str, str]] = []
    owners = [tables[k] for k in ("recipe", "model") if tables.get(k) is not None] + list(extra_owners)
    for owner in owners:
        for kind, tags in owner.component.needs.items():
            table = tables.get(kind)
            if table is None or not table.component.provides:
                continue  # declares nothing (written before declarations): checked when built
            missing = [t for t in tags if t not in table.component.provides]
            if not missing:
                continue
            others = fitting(registry, kind, tags)
            where = f"{kind}.name" if owner.component.kind in ("recipe", "model") else f"{owner.path}.name"
            problems.append(
                (
                    where,
                    f"{kind} '{table.name}' provides {describe_tags(table.component.provides)}, but the "
                    f"{owner.component.kind} '{owner.name}' needs a {kind} that provides {describe_tags(tags)}"
                    f" ({kind}s that do: {', '.join(others) if others else 'none installed'})",
                )
            )
    return problems


def data_problem(needed: Iterable[str], spec: Any, dataset: str, owner: str) -> str | None:
    """Why data described by ``spec`` (a DataSpec) does not meet the sample tags ``needed``, or None."""
    from dltoolkit._dataspec import SAMPLE_KINDS

    for tag in needed:
        if tag in SAMPLE_KINDS and spec.kind != tag:
            return f"dataset '{dataset}' gives {spec.describe()}, but {owner} needs '{tag}'"
        if tag == "labels" and not spec.labelled:
            return f"dataset '{dataset}' gives {spec.describe()} without labels, but {owner} needs 'labels'"
    return None


def component_problems(recipe_file: Any, *, stage: str, registry: Any = None) -> list[str]:
    """What each component's own ``check`` finds wrong with its options, one line each, prefixed
    with the recipe file (see :class:`~dltoolkit.Component`'s ``check``); called before anything
    is built by ``dltk check`` and ``dltk run`` (``stage``: ``"check"``, ``"run"`` or ``"resume"``).
    Writers are checked too: ``[[writers]]`` tables, and (given ``registry``) those named in
    ``[run] writers``, with their default options, at ``run.writers.N``."""
    from dltoolkit._component import accepted

    kinds = ("recipe", "model", "dataset")
    tables = {k: recipe_file.table(k) for k in kinds if recipe_file.table(k) is not None}
    writers = tuple(getattr(recipe_file, "writers", ()))
    owners = [*tables.values(), *recipe_file.metrics, *recipe_file.callbacks, *writers]
    if registry is not None:
        given = {t.name for t in writers}
        for index, name in enumerate(recipe_file.run.writers):
            if name in given or registry.problem_with("writer", name) is not None:
                continue
            component = registry.get("writer", name)
            owners.append(SimpleNamespace(component=component, config=component.config(), path=f"run.writers.{index}"))
    problems: list[str] = []
    for table in owners:
        if table.component.check is None:
            continue
        check = table.component.check
        context = {"where": table.path, "tables": tables, "stage": stage}
        found = check(table.config, **accepted(check, context)) or ()
        problems += [f"{recipe_file.path}: {line}" for line in ([found] if isinstance(found, str) else found)]
    return problems
