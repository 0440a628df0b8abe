"""Gradio controls made entirely from a :class:`~extension.params.Param` (label, range, step, default, choices), and
the token counter of a prompt box: shared by the Reimagine tab, the standalone Refine tab and the txt2img refiner
accordion."""

from __future__ import annotations

import functools
import html
from typing import Any

import gradio as gr

from ..params import Param
from ..prompts import PromptError, count_tokens


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


@functools.lru_cache(maxsize=1)
def _clip_tokenizer() -> Any:
    """The CLIP BPE tokenizer of the bundled configs (SD 2.x and SDXL count tokens alike), built once, offline."""
    from ..loading.configs import build_tokenizer, config_dir

    return build_tokenizer(config_dir("unclip-h") / "tokenizer")


def token_count_html(text: str | None) -> str:
    """txt2img's counter text, e.g. ``<span>12/75</span>`` (:func:`prompts.count_tokens`); a prompt over the limits
    shows why instead (the job would refuse it with the same words). gradio runs it on a worker thread, and the
    parser is linear, so a long paste cannot stall the server."""
    try:
        used, available = count_tokens(_clip_tokenizer(), text or "")
    except PromptError as error:
        return f"<span class='reimagine-token-error'>{html.escape(str(error))}</span>"
    return f"<span>{used}/{available}</span>"


def token_counter(textbox: gr.Textbox, elem_id: str) -> gr.HTML:
    """A "0/75" counter under ``textbox``, as txt2img has, updated whenever the text changes."""
    counter = gr.HTML(value="<span>0/75</span>", elem_id=elem_id, elem_classes=["reimagine-token-counter"])
    textbox.change(fn=token_count_html, inputs=[textbox], outputs=[counter], show_progress=False, queue=False)
    return counter
