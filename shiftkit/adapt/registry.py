"""The one registry of adapters, by short name, and the one way to hand them data.

Every front end (`Experiment`, the dashboard, the CLI) lists and builds adapters from here, and
fits them with `fit_adapter`, which picks each adapter's data from what it *declares*
(`Adapter.requires`, `Adapter.uses`, `Adapter.source_data`), so no caller branches on the kind.

Adding an adapter = one module with a subclass of `Adapter` that sets `name`, `title`,
`requires` (and `uses` / `source_data` when needed), decorated with `@register_adapter`, plus its
import in `shiftkit/adapt/__init__.py`.

Example:
    >>> from shiftkit.adapt import adapter_names, get_adapter
    >>> adapter_names()
    ('copy', 'finetune', 'mmd', 'label_shift', 'coral', 'adabn', 'self_training', 'dann', 'importance', 'auto')
    >>> get_adapter("copy").__name__
    'CopyAdapter'
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DATA_KEYS",
    "EXTRA_DATA_KEYS",
    "register_adapter",
    "unregister_adapter",
    "get_adapter",
    "adapter_names",
    "adapter_classes",
    "adapter_for_class_name",
    "fit_data",
]

#: The data keywords every adapter's `fit` accepts: labelled source data, target inputs, target labels.
DATA_KEYS: tuple[str, ...] = ("x_source", "y_source", "x_target", "y_target")
#: Further data an adapter may declare in `uses` (and then accepts in `fit`): labelled held-out source
#: data besides its training data, and a few labelled target samples besides the unlabelled target
#: inputs (`AutoAdapter` scores candidates with them).
EXTRA_DATA_KEYS: tuple[str, ...] = ("x_source_val", "y_source_val", "x_target_labeled", "y_target_labeled")

_BY_NAME: dict[str, type] = {}
_BY_CLASS_NAME: dict[str, type] = {}


def register_adapter(cls: type) -> type:
    """Class decorator: list an adapter under its short `name` (and its class name, for `load_adapter`).

    Raises:
        TypeError: `cls` declares no `name`, or `requires` / `uses` name something other than `DATA_KEYS`.
        ValueError: another class is registered under the same name.
    """
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} must set a class attribute `name` (its short name, e.g. 'copy').")
    unknown = [k for k in cls.requires if k not in DATA_KEYS]
    unknown += [k for k in cls.uses if k not in DATA_KEYS + EXTRA_DATA_KEYS]
    if unknown:
        raise TypeError(
            f"{cls.__name__}.requires may only name {list(DATA_KEYS)} and .uses also {list(EXTRA_DATA_KEYS)}; "
            f"got {unknown}."
        )
    if cls.source_data not in ("train", "held_out"):
        raise TypeError(f"{cls.__name__}.source_data must be 'train' or 'held_out'; got {cls.source_data!r}.")
    other = _BY_NAME.get(name)
    if other is not None and other.__qualname__ != cls.__qualname__:
        raise ValueError(f"Adapter name {name!r} is already taken by {other.__name__}; choose another `name`.")
    _BY_NAME[name] = cls
    _BY_CLASS_NAME[cls.__name__] = cls
    return cls


def unregister_adapter(name: str) -> None:
    """Remove an adapter from the registry (e.g. a test's toy adapter)."""
    cls = _BY_NAME.pop(name, None)
    if cls is not None and _BY_CLASS_NAME.get(cls.__name__) is cls:
        del _BY_CLASS_NAME[cls.__name__]


def adapter_names(*, default_list: bool = False) -> tuple[str, ...]:
    """Short names of the registered adapters, in registration order.

    Args:
        default_list: only those in front ends' default lists (`Adapter.in_default_list`; not
            "auto", which fits the others itself).
    """
    return tuple(n for n, c in _BY_NAME.items() if not default_list or getattr(c, "in_default_list", True))


def adapter_classes() -> dict[str, type]:
    """Short name -> adapter class, in registration order."""
    return dict(_BY_NAME)


def get_adapter(name: str) -> type:
    """The adapter class registered under `name`.

    Raises:
        ValueError: no adapter has that name (the message lists the names).
    """
    if name not in _BY_NAME:
        raise ValueError(f"Unknown adapter {name!r}. Choose from: {', '.join(_BY_NAME)}.")
    return _BY_NAME[name]


def adapter_for_class_name(class_name: str) -> type | None:
    """The registered class called `class_name` (how `load_adapter` finds a saved adapter's class)."""
    return _BY_CLASS_NAME.get(class_name)


def fit_data(
    cls: type,
    *,
    source_train: tuple[Any, Any] | None = None,
    source_held_out: tuple[Any, Any] | None = None,
    target_labeled: tuple[Any, Any] | None = None,
    target_unlabeled: Any = None,
) -> dict[str, Any]:
    """The data keywords of `cls.fit`, chosen from a front end's splits by what the adapter declares.

    * Source: `source_held_out` for an adapter with `source_data = "held_out"` (label-shift
      correction calibrates on data the model did not train on), else `source_train`.
    * Target: the labelled target samples for an adapter that requires `y_target`; otherwise the
      unlabelled target inputs (falling back to the labelled samples' inputs when there are none),
      with their labels only if there were no unlabelled inputs.
    * `EXTRA_DATA_KEYS`, for an adapter that `uses` them: `x_source_val`/`y_source_val` from
      `source_held_out`, `x_target_labeled`/`y_target_labeled` from `target_labeled`.

    Returns:
        A dict with some of `x_source`, `y_source`, `x_target`, `y_target` (only what `cls`
        requires or uses, and only what is available).

    Raises:
        ValueError: data the adapter requires is missing; the message names it and says what to pass.
    """
    out: dict[str, Any] = {}
    source = source_held_out if cls.source_data == "held_out" else source_train
    if source is not None:
        out["x_source"], out["y_source"] = source
    if "y_target" in cls.requires:
        if target_labeled is not None:
            out["x_target"], out["y_target"] = target_labeled
    elif target_unlabeled is not None:
        out["x_target"] = target_unlabeled
    elif target_labeled is not None:
        out["x_target"], out["y_target"] = target_labeled
    if source_held_out is not None:
        out["x_source_val"], out["y_source_val"] = source_held_out
    if target_labeled is not None:
        out["x_target_labeled"], out["y_target_labeled"] = target_labeled
    wanted = set(cls.requires) | set(cls.uses)
    out = {k: v for k, v in out.items() if k in wanted}
    cls.check_fit_data(**out)
    return out
