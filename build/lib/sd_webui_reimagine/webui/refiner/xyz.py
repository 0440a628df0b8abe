"""Axes of the built-in X/Y/Z plot script."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ...params import REFINER
from .controls import XYZ_ATTR, XYZ_AXES, model_names


def _xyz_apply(name: str) -> Callable[[Any, Any, Any], None]:
    def apply(p: Any, value: Any, _values: Any) -> None:
        setattr(p, XYZ_ATTR, {**(getattr(p, XYZ_ATTR, None) or {}), name: value})  # a new dict: cells share p's

    return apply


def _xyz_confirm(name: str) -> Callable[[Any, Any], None]:
    def confirm(_p: Any, values: Sequence[Any]) -> None:
        if name == "model":
            offered = model_names()
            for value in values:
                if value not in offered:
                    raise RuntimeError(f"Unknown SDXL refiner model: {value} (offered: {', '.join(offered) or 'none'})")
            return
        for value in values:
            REFINER[name].coerce(value)

    return confirm


def register_xyz_axes() -> bool:
    """Add strength / steps / model axes to the built-in X/Y/Z plot script when it is loaded (idempotent).

    The script file ``scripts/xyz_grid.py`` is loaded as module ``xyz_grid.py`` (not in ``sys.modules``); it is found
    in ``scripts.scripts_data``, the usual way extensions add axes.
    """
    from modules import scripts

    module = next(
        (
            data.module
            for data in scripts.scripts_data
            if getattr(data.script_class, "__module__", "") == "xyz_grid.py"
            and hasattr(data.module, "AxisOption")
            and hasattr(data.module, "axis_options")
        ),
        None,
    )
    if module is None:
        return False
    present = {getattr(option, "label", None) for option in module.axis_options}
    types = {"strength": float, "steps": int, "model": str}
    for name, label in XYZ_AXES.items():
        if label in present:
            continue
        kwargs: dict[str, Any] = {"confirm": _xyz_confirm(name)}
        if name == "model":
            kwargs["choices"] = model_names
        module.axis_options.append(module.AxisOption(label, types[name], _xyz_apply(name), **kwargs))
    return True
