"""The WebUI callbacks of the Reimagine tab: ``on_ui_tabs``, ``on_ui_settings``, ``on_after_component``.

"Send to Reimagine": a ToolButton next to txt2img's / img2img's / extras' send-to buttons and a "Send to Reimagine"
button in PNG Info, created when the WebUI builds those rows (``on_after_component``) and bound with the WebUI's own
paste machinery (``infotext_utils.register_paste_params_button``) once the tab exists: the image goes into input
slot 1, PNG Info also pastes the parameters, and ``switch_to_reimagine()`` (javascript/reimagine.js) opens the tab.
"""

from __future__ import annotations

from typing import Any

from ..loading.discovery import UNCLIP_KINDS
from ..params import NOISE_PRESETS, REIMAGINE
from ..runtime.host import MEMORY_MODES
from .host import (
    OPT_COMPILE,
    OPT_DEFAULT_MODEL,
    OPT_KARLO_STATS,
    OPT_MEMORY,
    OPT_MODELS_DIRS,
    OPT_NOISE_PRESET,
    OPT_PRECISION,
    PRECISIONS,
    shared_host,
)

TABNAME = "reimagine"
TITLE = "Reimagine"
SECTION = ("reimagine", "Reimagine")
CATEGORY = "sd"  # listed with the WebUI's "Stable Diffusion" settings
SEND_SYMBOL = "\U0001f300"  # 🌀
SEND_TOOLTIP = "Send image to Reimagine tab."
SEND_LABEL = "Send to Reimagine"
SEND_SOURCES = ("txt2img", "img2img", "extras")
SETTING_LABELS = {
    OPT_MODELS_DIRS: "Extra folders with Reimagine models (unCLIP, SDXL refiner), one per line",
    OPT_DEFAULT_MODEL: "Default unCLIP model",
    OPT_KARLO_STATS: "Karlo statistics file for unCLIP-L (ViT-L-14_stats.th)",
    OPT_MEMORY: "Reimagine and refiner models between runs",
    OPT_NOISE_PRESET: "Default noise preset",
    OPT_PRECISION: "Reimagine and refiner weights on the GPU",
    OPT_COMPILE: "Compile the UNet with torch.compile",
}
SETTING_INFOS = {
    OPT_MODELS_DIRS: "models/Stable-diffusion and --ckpt-dir are always searched",
    OPT_KARLO_STATS: "empty = models/karlo/ViT-L-14_stats.th",
    OPT_MEMORY: "offloading frees VRAM between runs but loads the model again each time",
    OPT_PRECISION: "bf16 needs an RTX 30xx or newer; --no-half keeps fp32. Applies when a model is next loaded",
    OPT_COMPILE: "CUDA only, when the model stays on the GPU: the first run compiles (slow), later runs are faster",
}

_sources: dict[str, Any] = {}
_pending: list[Any] = []


def default_noise_preset() -> str:
    """The preset whose value is the table's default noise level."""
    default = REIMAGINE["noise_level"].default
    return next((name for name, value in NOISE_PRESETS.items() if value == default), next(iter(NOISE_PRESETS)))


def on_ui_tabs() -> list[tuple[Any, str, str]]:
    """``script_callbacks.on_ui_tabs``: the Reimagine tab, registered as a paste destination."""
    from modules import infotext_utils

    from ..ui import tab as tab_ui

    built = tab_ui.build(shared_host())
    infotext_utils.add_paste_fields(TABNAME, built.init_image, list(built.paste_fields))
    for binding in _pending:
        infotext_utils.register_paste_params_button(binding)
    _pending.clear()
    return [(built.blocks, TITLE, TABNAME)]


def on_ui_settings() -> None:
    """``script_callbacks.on_ui_settings``: the "Reimagine" section."""
    import gradio as gr
    from modules import shared

    def model_choices() -> dict[str, Any]:
        return {"choices": ["", *(choice.name for choice in shared_host().models(UNCLIP_KINDS))]}

    def refresh_models() -> None:
        shared_host().models(refresh=True)

    options = {
        OPT_MODELS_DIRS: shared.OptionInfo(
            "", SETTING_LABELS[OPT_MODELS_DIRS], gr.Textbox, {"lines": 2}, section=SECTION, category_id=CATEGORY
        ).info(SETTING_INFOS[OPT_MODELS_DIRS]),
        OPT_DEFAULT_MODEL: shared.OptionInfo(
            "",
            SETTING_LABELS[OPT_DEFAULT_MODEL],
            gr.Dropdown,
            model_choices,
            refresh=refresh_models,
            section=SECTION,
            category_id=CATEGORY,
        ),
        OPT_KARLO_STATS: shared.OptionInfo(
            "", SETTING_LABELS[OPT_KARLO_STATS], section=SECTION, category_id=CATEGORY
        ).info(SETTING_INFOS[OPT_KARLO_STATS]),
        OPT_MEMORY: shared.OptionInfo(
            MEMORY_MODES[0],
            SETTING_LABELS[OPT_MEMORY],
            gr.Radio,
            {"choices": list(MEMORY_MODES)},
            section=SECTION,
            category_id=CATEGORY,
        ).info(SETTING_INFOS[OPT_MEMORY]),
        OPT_NOISE_PRESET: shared.OptionInfo(
            default_noise_preset(),
            SETTING_LABELS[OPT_NOISE_PRESET],
            gr.Radio,
            {"choices": list(NOISE_PRESETS)},
            section=SECTION,
            category_id=CATEGORY,
        ),
        OPT_PRECISION: shared.OptionInfo(
            PRECISIONS[0],
            SETTING_LABELS[OPT_PRECISION],
            gr.Radio,
            {"choices": list(PRECISIONS)},
            section=SECTION,
            category_id=CATEGORY,
        ).info(SETTING_INFOS[OPT_PRECISION]),
        OPT_COMPILE: shared.OptionInfo(False, SETTING_LABELS[OPT_COMPILE], section=SECTION, category_id=CATEGORY).info(
            SETTING_INFOS[OPT_COMPILE]
        ),
    }
    for key, info in options.items():
        shared.opts.add_option(key, info)


def on_after_component(component: Any, **kwargs: Any) -> None:
    """``script_callbacks.on_after_component``: add "Send to Reimagine" next to the WebUI's send-to buttons."""
    elem_id = kwargs.get("elem_id")
    if not isinstance(elem_id, str):
        return
    if elem_id in {f"{tab}_gallery" for tab in SEND_SOURCES} | {"pnginfo_image", "pnginfo_generation_info"}:
        _sources[elem_id] = component
        return
    if elem_id.endswith("_send_to_extras"):
        tab = elem_id[: -len("_send_to_extras")]
        gallery = _sources.get(f"{tab}_gallery")
        if tab in SEND_SOURCES and gallery is not None:
            button = shared_host().tool_button(SEND_SYMBOL, f"{tab}_send_to_{TABNAME}", SEND_TOOLTIP)
            _bind(button, source_image_component=gallery)
        return
    if elem_id == "extras_tab" and "pnginfo_generation_info" in _sources:  # PNG Info's last "Send to ..." button
        import gradio as gr

        button = gr.Button(SEND_LABEL, elem_id=f"{TABNAME}_tab")
        _bind(
            button,
            source_text_component=_sources["pnginfo_generation_info"],
            source_image_component=_sources.get("pnginfo_image"),
        )


def _bind(button: Any, **sources: Any) -> None:
    from modules import infotext_utils

    _pending.append(infotext_utils.ParamBinding(paste_button=button, tabname=TABNAME, **sources))


def reset() -> None:
    """Forget the components of a previous UI build (``on_before_ui`` / Reload UI)."""
    _sources.clear()
    _pending.clear()
