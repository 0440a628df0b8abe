"""Gradio controls made entirely from a :class:`~extension.params.Param` (label, range, step, default, choices):
shared by the Reimagine tab, the standalone Refine tab and the txt2img refiner accordion."""

from __future__ import annotations

from typing import Any

import gradio as gr

from ..params import Param


def slider(param: Param, elem_id: str, value: Any = None, **kwargs: Any) -> gr.Slider:
    """A slider entirely from the parameter table."""
    return gr.Slider(
        minimum=param.minimum,
        maximum=param.maximum,
        step=param.step,
        value=param.default if value is None else value,
        label=param.label,
        elem_id=elem_id,
        **kwargs,
    )


def dropdown(param: Param, elem_id: str, **kwargs: Any) -> gr.Dropdown:
    """A dropdown entirely from the parameter table."""
    return gr.Dropdown(list(param.choices or ()), value=param.default, label=param.label, elem_id=elem_id, **kwargs)


def radio(param: Param, elem_id: str, **kwargs: Any) -> gr.Radio:
    """A radio group entirely from the parameter table."""
    return gr.Radio(list(param.choices or ()), value=param.default, label=param.label, elem_id=elem_id, **kwargs)
