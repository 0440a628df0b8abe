"""sd-webui-reimagine: the WebUI entry point. Thin: load the core, register callbacks, define the Script class.

The WebUI executes every ``scripts/*.py`` file itself (module name = file name, not in ``sys.modules``; the extension
root is on ``sys.path`` only while this file runs; docs/webui-contract.md §2). So:

* the core package ``extension/`` is loaded under the unique module name ``sd_webui_reimagine`` (another extension's
  top-level ``extension``/``utils`` package can never shadow it, and it never shadows theirs), once per process;
  on Reload UI this file runs again and reuses the loaded core;
* every ``script_callbacks.on_*`` is registered here, at top level, on every load (the WebUI clears all callbacks
  before loading scripts, so registrations done as an import side effect of the core would vanish on Reload UI);
* nothing heavy is imported at load time (torch/diffusers/gradio come later, inside callbacks).

Import WebUI modules as ``from modules import scripts`` (never ``from modules.scripts import Script``: every
``Script`` subclass found in this module's namespace is instantiated, imported base classes included).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from modules import script_callbacks, scripts  # noqa: F401 -- scripts: the refiner Script class below

CORE_NAME = "sd_webui_reimagine"
EXTENSION_ROOT = Path(__file__).absolute().parent.parent


def load_core(root: Path = EXTENSION_ROOT) -> ModuleType:
    """The core package ``<root>/extension`` as ``sd_webui_reimagine``; imported once, then reused."""
    core = sys.modules.get(CORE_NAME)
    if core is not None:
        loaded_from = Path(getattr(core, "__file__", "") or "").absolute().parent.parent
        if loaded_from != root:
            print(f"[sd-webui-reimagine] a second copy in {root} is ignored; using the one in {loaded_from}")
        return core
    init = root / "extension" / "__init__.py"
    spec = importlib.util.spec_from_file_location(CORE_NAME, init, submodule_search_locations=[str(init.parent)])
    if spec is None or spec.loader is None:
        raise ImportError(f"sd-webui-reimagine: cannot load its core package from {init}")
    core = importlib.util.module_from_spec(spec)
    sys.modules[CORE_NAME] = core  # before executing: relative imports inside the core resolve through it
    try:
        spec.loader.exec_module(core)
    except BaseException:
        sys.modules.pop(CORE_NAME, None)
        raise
    return core


core = load_core()
webui = importlib.import_module(f"{CORE_NAME}.webui")  # the WebUI adapter (the only core part importing `modules`)

# ---- callbacks: registered on every load (startup and Reload UI) -------------------------------------------------
script_callbacks.on_script_unloaded(webui.on_script_unloaded, name="reimagine")
script_callbacks.on_before_ui(webui.on_before_ui, name="reimagine")
script_callbacks.on_after_component(webui.on_after_component, name="reimagine send-to buttons")
script_callbacks.on_ui_tabs(webui.on_ui_tabs, name="reimagine")
script_callbacks.on_ui_settings(webui.on_ui_settings, name="reimagine")
script_callbacks.on_app_started(webui.on_app_started, name="reimagine api")


# ---- the refiner post-pass -------------------------------------------------------------------------------
refiner = importlib.import_module(f"{CORE_NAME}.webui.refiner")


class ReimagineRefinerScript(scripts.Script):
    """The SDXL refiner post-pass accordion in txt2img and img2img; every hook delegates to ``webui.refiner``.

    API: ``"alwayson_scripts": {"refiner post-pass": {"args": [...]}}`` (positional, or one dict of named values).
    """

    section = "accordions"  # next to Hires fix and the WebUI's own Refiner
    create_group = False
    sorting_priority = 15  # Forge: after its built-in accordions

    def __init__(self) -> None:
        refiner.register_xyz_axes()  # X/Y/Z plot axes; idempotent, runs when the WebUI instantiates its scripts

    def title(self) -> str:
        return refiner.TITLE

    def show(self, is_img2img: bool) -> object:
        return scripts.AlwaysVisible

    def ui(self, is_img2img: bool) -> list:
        return refiner.ui(self, is_img2img)

    def process(self, p, *args) -> None:
        refiner.process(p, *args)

    def process_batch(self, p, *args, **kwargs) -> None:
        refiner.process_batch(p, *args, **kwargs)

    def post_sample(self, p, ps, *args) -> None:
        refiner.post_sample(p, ps, *args)

    def postprocess_batch_list(self, p, pp, *args, **kwargs) -> None:
        refiner.postprocess_batch_list(p, pp, *args, **kwargs)

    def postprocess_image(self, p, pp, *args) -> None:
        refiner.postprocess_image(p, pp, *args)

    def postprocess(self, p, processed, *args) -> None:
        refiner.postprocess(p, processed, *args)
