"""Stand-in of modules/script_callbacks.py (docs/webui-contract.md §4): every ``on_*(callback, *, name=None)`` and the invokers.

The invokers (``ui_tabs_callback()``, ``ui_settings_callback()``, ``app_started_callback(demo, app)``,
``before_image_saved_callback(params)``, ``infotext_pasted_callback(infotext, params)``,
``script_unloaded_callback()`` ...) are what the WebUI calls; tests call them the same way. Exceptions in callbacks
are reported (``errors.reported``), not raised.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from typing import Any

from modules import errors


class ImageSaveParams:
    """Passed to ``on_before_image_saved``/``on_image_saved`` callbacks; mutable before saving."""

    def __init__(self, image, p, filename, pnginfo):
        self.image = image
        """the PIL image itself"""
        self.p = p
        """p object with processing parameters; either StableDiffusionProcessing or an object with same fields"""
        self.filename = filename
        """name of file that the image would be saved to"""
        self.pnginfo = pnginfo
        """dictionary with parameters for image's PNG info data; infotext will have the key 'parameters'"""


class ExtraNoiseParams:
    def __init__(self, noise, x, xi):
        self.noise = noise
        self.x = x
        self.xi = xi


class CFGDenoiserParams:
    def __init__(
        self, x, image_cond, sigma, sampling_step, total_sampling_steps, text_cond, text_uncond, denoiser=None
    ):
        self.x = x
        self.image_cond = image_cond
        self.sigma = sigma
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps
        self.text_cond = text_cond
        self.text_uncond = text_uncond
        self.denoiser = denoiser


class CFGDenoisedParams:
    def __init__(self, x, sampling_step, total_sampling_steps, inner_model):
        self.x = x
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps
        self.inner_model = inner_model


class AfterCFGCallbackParams:
    def __init__(self, x, sampling_step, total_sampling_steps):
        self.x = x
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps


class UiTrainTabParams:
    def __init__(self, txt2img_preview_params):
        self.txt2img_preview_params = txt2img_preview_params


class ImageGridLoopParams:
    def __init__(self, imgs, cols, rows):
        self.imgs = imgs
        self.cols = cols
        self.rows = rows


@dataclasses.dataclass
class BeforeTokenCounterParams:
    prompt: str
    steps: int
    styles: list
    is_positive: bool = True


@dataclasses.dataclass
class ScriptCallback:
    script: str
    callback: Any
    name: str = "unnamed"


callback_map: dict[str, list[ScriptCallback]] = {
    "callbacks_app_started": [],
    "callbacks_model_loaded": [],
    "callbacks_ui_tabs": [],
    "callbacks_ui_train_tabs": [],
    "callbacks_ui_settings": [],
    "callbacks_before_image_saved": [],
    "callbacks_image_saved": [],
    "callbacks_extra_noise": [],
    "callbacks_cfg_denoiser": [],
    "callbacks_cfg_denoised": [],
    "callbacks_cfg_after_cfg": [],
    "callbacks_before_component": [],
    "callbacks_after_component": [],
    "callbacks_image_grid": [],
    "callbacks_infotext_pasted": [],
    "callbacks_script_unloaded": [],
    "callbacks_before_ui": [],
    "callbacks_on_reload": [],
    "callbacks_list_optimizers": [],
    "callbacks_list_unets": [],
    "callbacks_before_token_counter": [],
}


def clear_callbacks() -> None:
    """Forget every callback (``scripts.load_scripts`` does this first, on startup and on every Reload UI)."""
    for callback_list in callback_map.values():
        callback_list.clear()


def report_exception(c: ScriptCallback, job: str) -> None:
    errors.report(f"Error executing callback {job} for {c.script}", exc_info=True)


def ordered_callbacks(category: str, unordered_callbacks=None, *, enable_user_sort=True) -> list[ScriptCallback]:
    """Callbacks of a category in registration order (user ordering is not imitated)."""
    if unordered_callbacks is None:
        unordered_callbacks = callback_map.get("callbacks_" + category, [])
    return list(unordered_callbacks)


def _call(category: str, *args, **kwargs) -> list:
    results = []
    for c in ordered_callbacks(category):
        try:
            results.append(c.callback(*args, **kwargs))
        except Exception:
            report_exception(c, f"{category}_callback")
    return results


def app_started_callback(demo, app) -> None:
    _call("app_started", demo, app)


def app_reload_callback() -> None:
    _call("on_reload")


def model_loaded_callback(sd_model) -> None:
    _call("model_loaded", sd_model)


def ui_tabs_callback() -> list:
    """Every ``(component, title, elem_id)`` the ``on_ui_tabs`` callbacks return."""
    res = []
    for result in _call("ui_tabs"):
        res += result or []
    return res


def ui_train_tabs_callback(params: UiTrainTabParams) -> None:
    _call("ui_train_tabs", params)


def ui_settings_callback() -> None:
    _call("ui_settings")


def before_image_saved_callback(params: ImageSaveParams) -> None:
    _call("before_image_saved", params)


def image_saved_callback(params: ImageSaveParams) -> None:
    _call("image_saved", params)


def extra_noise_callback(params: ExtraNoiseParams) -> None:
    _call("extra_noise", params)


def cfg_denoiser_callback(params: CFGDenoiserParams) -> None:
    _call("cfg_denoiser", params)


def cfg_denoised_callback(params: CFGDenoisedParams) -> None:
    _call("cfg_denoised", params)


def cfg_after_cfg_callback(params: AfterCFGCallbackParams) -> None:
    _call("cfg_after_cfg", params)


def before_component_callback(component, **kwargs) -> None:
    _call("before_component", component, **kwargs)


def after_component_callback(component, **kwargs) -> None:
    _call("after_component", component, **kwargs)


def image_grid_callback(params: ImageGridLoopParams) -> None:
    _call("image_grid", params)


def infotext_pasted_callback(infotext: str, params: dict[str, Any]) -> None:
    _call("infotext_pasted", infotext, params)


def script_unloaded_callback() -> None:
    _call("script_unloaded")


def before_ui_callback() -> None:
    _call("before_ui")


def list_optimizers_callback() -> list:
    res: list = []
    _call("list_optimizers", res)
    return res


def list_unets_callback() -> list:
    res: list = []
    _call("list_unets", res)
    return res


def before_token_counter_callback(params: BeforeTokenCounterParams) -> None:
    _call("before_token_counter", params)


def add_callback(callbacks, fun, *, name=None, category="unknown", filename=None) -> None:
    """Register ``fun``; its name is ``<extension>/<file>/<category>[/<name>]`` (script_callbacks.py:127-147)."""
    from modules import extensions

    if filename is None:
        stack = [x for x in inspect.stack() if x.filename != __file__]
        filename = stack[0].filename if stack else "unknown file"

    extension = extensions.find_extension(filename)
    extension_name = extension.canonical_name if extension else "base"

    callback_name = f"{extension_name}/{os.path.basename(filename)}/{category}"
    if name is not None:
        callback_name += f"/{name}"

    unique_callback_name = callback_name
    for index in range(1000):
        if not any(x.name == unique_callback_name for x in callbacks):
            break
        unique_callback_name = f"{callback_name}-{index + 1}"

    callbacks.append(ScriptCallback(filename, fun, unique_callback_name))


def remove_current_script_callbacks() -> None:
    stack = [x for x in inspect.stack() if x.filename != __file__]
    filename = stack[0].filename if stack else "unknown file"
    if filename == "unknown file":
        return
    for callback_list in callback_map.values():
        for callback_to_remove in [cb for cb in callback_list if cb.script == filename]:
            callback_list.remove(callback_to_remove)


def remove_callbacks_for_function(callback_func) -> None:
    for callback_list in callback_map.values():
        for callback_to_remove in [cb for cb in callback_list if cb.callback == callback_func]:
            callback_list.remove(callback_to_remove)


def on_app_started(callback, *, name=None):
    """``callback(demo: gr.Blocks | None, app: FastAPI)`` after the server started (demo None with --nowebui)."""
    add_callback(callback_map["callbacks_app_started"], callback, name=name, category="app_started")


def on_before_reload(callback, *, name=None):
    add_callback(callback_map["callbacks_on_reload"], callback, name=name, category="on_reload")


def on_model_loaded(callback, *, name=None):
    """``callback(sd_model)`` after a checkpoint is loaded."""
    add_callback(callback_map["callbacks_model_loaded"], callback, name=name, category="model_loaded")


def on_ui_tabs(callback, *, name=None):
    """``callback()`` returns None or a list of ``(gradio_component, title, elem_id)``."""
    add_callback(callback_map["callbacks_ui_tabs"], callback, name=name, category="ui_tabs")


def on_ui_train_tabs(callback, *, name=None):
    add_callback(callback_map["callbacks_ui_train_tabs"], callback, name=name, category="ui_train_tabs")


def on_ui_settings(callback, *, name=None):
    """``callback()`` calls ``shared.opts.add_option(...)``."""
    add_callback(callback_map["callbacks_ui_settings"], callback, name=name, category="ui_settings")


def on_before_image_saved(callback, *, name=None):
    """``callback(params: ImageSaveParams)`` inside ``images.save_image`` before writing."""
    add_callback(callback_map["callbacks_before_image_saved"], callback, name=name, category="before_image_saved")


def on_image_saved(callback, *, name=None):
    add_callback(callback_map["callbacks_image_saved"], callback, name=name, category="image_saved")


def on_extra_noise(callback, *, name=None):
    add_callback(callback_map["callbacks_extra_noise"], callback, name=name, category="extra_noise")


def on_cfg_denoiser(callback, *, name=None):
    add_callback(callback_map["callbacks_cfg_denoiser"], callback, name=name, category="cfg_denoiser")


def on_cfg_denoised(callback, *, name=None):
    add_callback(callback_map["callbacks_cfg_denoised"], callback, name=name, category="cfg_denoised")


def on_cfg_after_cfg(callback, *, name=None):
    add_callback(callback_map["callbacks_cfg_after_cfg"], callback, name=name, category="cfg_after_cfg")


def on_before_component(callback, *, name=None):
    add_callback(callback_map["callbacks_before_component"], callback, name=name, category="before_component")


def on_after_component(callback, *, name=None):
    add_callback(callback_map["callbacks_after_component"], callback, name=name, category="after_component")


def on_image_grid(callback, *, name=None):
    add_callback(callback_map["callbacks_image_grid"], callback, name=name, category="image_grid")


def on_infotext_pasted(callback, *, name=None):
    """``callback(infotext: str, params: dict)``; may change ``params`` before they are pasted."""
    add_callback(callback_map["callbacks_infotext_pasted"], callback, name=name, category="infotext_pasted")


def on_script_unloaded(callback, *, name=None):
    """``callback()`` before the scripts are reloaded (Reload UI) or the server stops."""
    add_callback(callback_map["callbacks_script_unloaded"], callback, name=name, category="script_unloaded")


def on_before_ui(callback, *, name=None):
    add_callback(callback_map["callbacks_before_ui"], callback, name=name, category="before_ui")


def on_list_optimizers(callback, *, name=None):
    add_callback(callback_map["callbacks_list_optimizers"], callback, name=name, category="list_optimizers")


def on_list_unets(callback, *, name=None):
    add_callback(callback_map["callbacks_list_unets"], callback, name=name, category="list_unets")


def on_before_token_counter(callback, *, name=None):
    add_callback(callback_map["callbacks_before_token_counter"], callback, name=name, category="before_token_counter")
