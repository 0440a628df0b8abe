"""The WebUI's side of the tab's surface (``extension.ui.surface.TabSurface``): its ``ToolButton``, txt2img's output
panel, its queue and progress bar around a button's handler, its image saving and gallery reading
(docs/webui-contract.md §4–§5). Mixed into :class:`extension.webui.host.WebUIHost`.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..ui.surface import OutputPanel, TabSurface

OUTPUT_SUBDIR = "reimagine-images"


class WebUISurface(TabSurface):
    """The Reimagine tab's widgets, saving and handler wrapping inside AUTOMATIC1111 / Forge."""

    submit_js = "submit_reimagine"
    interrupt_js = "reimagine_interrupting"
    show_progress = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from ..ui import compat

        with contextlib.suppress(ImportError):  # the WebUI's gradio patches (tooltip=, component callbacks)
            importlib.import_module("modules.ui_components")
        # A1111 patches gradio 3 so every component takes ``tooltip=``; under gradio 4 only ToolButton surely does.
        self.tooltips = not compat.GRADIO_4

    def outdir(self) -> Path:
        """``opts.outdir_samples`` or ``outputs/reimagine-images``."""
        from modules import paths_internal, shared

        custom = getattr(shared.opts, "outdir_samples", "") or ""
        return Path(custom) if custom else Path(paths_internal.default_output_dir) / OUTPUT_SUBDIR

    def tool_button(self, symbol: str, elem_id: str, tooltip: str) -> Any:
        """The WebUI's own ``ToolButton``."""
        from modules.ui_components import ToolButton

        return ToolButton(symbol, elem_id=elem_id, tooltip=tooltip)

    def run(self, fn: Callable[..., tuple], n_inputs: int) -> Callable[..., Any]:
        """``call_queue.wrap_gradio_gpu_call(fn, extra_outputs=[None, '', ''])``: queue lock, ``state.begin/end``,
        the progress task of the id from JavaScript, errors as a message, the time taken appended to the log."""
        from modules import call_queue

        return call_queue.wrap_gradio_gpu_call(fn, extra_outputs=[None, "", ""])

    # -- outputs ---------------------------------------------------------------------------------------------------
    def output_panel(self, tabname: str = "reimagine") -> OutputPanel:
        """``ui_common.create_output_panel``: txt2img's gallery, 📂 💾 🗃️, send to img2img / inpaint / extras."""
        from modules import ui_common

        res = ui_common.create_output_panel(tabname, str(self.outdir()))
        return OutputPanel(res.gallery, res.generation_info, res.infotext, res.html_log)

    def save(self, images: list[Any], infotexts: list[str], info: Any) -> list[Any]:
        """``images.save_image`` into ``outdir_samples`` or ``outputs/reimagine-images`` when ``samples_save`` is on,
        as ``samples_format``; the infotext always travels in ``image.info["parameters"]`` (the gallery's PNG)."""
        from modules import images as webui_images
        from modules import shared

        seeds = info.all_seeds[-len(images) :]
        save = bool(getattr(shared.opts, "samples_save", True))
        extension = getattr(shared.opts, "samples_format", "png") or "png"
        outdir = str(self.outdir())
        first = len(info.all_seeds) - len(images)
        for offset, (image, text, seed) in enumerate(zip(images, infotexts, seeds)):
            image.info["parameters"] = text
            if save:
                info.batch_index = (first + offset) % max(1, info.batch_size)
                info.iteration = (first + offset) // max(1, info.batch_size)
                webui_images.save_image(
                    image, outdir, "", seed=seed, prompt=info.prompt, extension=extension, info=text, p=info
                )
        return list(images)

    def gallery_image(self, value: Any, index: int) -> Any:
        """``infotext_utils.image_from_url_text`` (checks the file is one the WebUI serves; handles gradio 4)."""
        from modules import infotext_utils

        items = list(value or [])
        if not items:
            return None
        return infotext_utils.image_from_url_text(items[index if 0 <= index < len(items) else 0])
