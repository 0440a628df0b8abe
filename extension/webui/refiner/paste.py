"""Paste-back: what a pasted infotext sets each control to."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ...loading.discovery import REFINER_KINDS, closest
from ...params import REFINER, refiner_value_to_ui
from ..host import shared_host
from .controls import MODE_KEY, PREFIX, chosen_mode


class PasteKey(str):
    """An infotext key that is also its paste function.

    The WebUI calls a callable paste field with the parsed infotext; a ``str`` key is what "Send to img2img" matches
    against ``paste_field_names`` (both tabs' fields carry equal keys) and what Settings → "Disregard fields from
    pasted infotext" lists. Being both lets blank (inherited) values be restored as blank and still be copied.
    """

    def __new__(cls, key: str, function: Callable[[Mapping[str, Any]], Any]) -> PasteKey:
        obj = super().__new__(cls, key)
        obj.function = function
        return obj

    def __call__(self, params: Mapping[str, Any]) -> Any:
        return self.function(params)


def paste_value(name: str, params: Mapping[str, Any]) -> Any:
    """What pasting ``params`` (a parsed infotext) sets control ``name`` to; None = leave it unchanged.

    Without our keys the post-pass is switched off and nothing else changes. With them: every written value is
    restored; inherited ones (not written) go back to blank; the model is matched by name among the offered ones; the
    mode is the one chosen (``Pixel (Hires fix)``: Latent, which could not run).
    """
    if PREFIX not in params:
        return False if name == "enabled" else None
    if name == "enabled":
        return True
    if name == "model":
        choice = closest(shared_host().models(REFINER_KINDS), params.get(PREFIX))
        return choice.name if choice is not None else None
    if MODE_KEY in params:  # "Pixel (Hires fix)": the user chose Latent
        params = {**params, MODE_KEY: chosen_mode(str(params[MODE_KEY]))}
    found = REFINER.from_infotext(params)
    if name in found:
        return refiner_value_to_ui(name, found[name])
    param = REFINER[name]
    if param.inherit or name in ("prompt", "negative_prompt"):
        return refiner_value_to_ui(name, None) if param.inherit else ""
    return None


def paste_key(name: str) -> PasteKey:
    """The paste field key of control ``name``."""
    key = REFINER[name].infotext or f"{PREFIX} {name.replace('_', ' ')}"
    if name == "enabled":
        key = PREFIX
    return PasteKey(key, lambda params: paste_value(name, params))
