"""Stand-in of modules/gradio_extensons.py (sic): A1111 patches gradio 3 components on startup so that every
component accepts ``tooltip=`` (kept as ``.webui_tooltip``) and runs the before/after component callbacks.

Patched when imported (``modules.ui_components`` imports it, as the WebUI has done so before any extension UI is
built); ``unpatch()`` (the fixture calls it) restores gradio. Under gradio 4 (Forge) the components are not patched
(gradio 4 components take no ``**kwargs``; ``ToolButton`` still accepts ``tooltip=``), but gradio 4's writing of a
``.pyi`` stub next to every module that subclasses a component is suppressed for classes marked
``webui_do_not_create_gradio_pyi_thank_you`` and for the stand-in's own modules.
"""

from __future__ import annotations

import gradio as gr

GRADIO_MAJOR = int(gr.__version__.split(".")[0])
_original_init = None
_original_create_or_modify_pyi = None


def IOComponent_init(self, *args, **kwargs):
    from modules import script_callbacks, scripts

    self.webui_tooltip = kwargs.pop("tooltip", None)
    if scripts.scripts_current is not None:
        scripts.scripts_current.before_component(self, **kwargs)
    script_callbacks.before_component_callback(self, **kwargs)
    res = _original_init(self, *args, **kwargs)
    script_callbacks.after_component_callback(self, **kwargs)
    if scripts.scripts_current is not None:
        scripts.scripts_current.after_component(self, **kwargs)
    return res


def _create_or_modify_pyi(component_class, class_name, events):
    if hasattr(component_class, "webui_do_not_create_gradio_pyi_thank_you"):
        return
    if component_class.__module__.startswith("modules."):
        return
    _original_create_or_modify_pyi(component_class, class_name, events)


def patch() -> None:
    global _original_init, _original_create_or_modify_pyi
    if GRADIO_MAJOR >= 4:
        if _original_create_or_modify_pyi is None:
            from gradio import component_meta

            _original_create_or_modify_pyi = component_meta.create_or_modify_pyi
            component_meta.create_or_modify_pyi = _create_or_modify_pyi
        return
    if _original_init is None:
        _original_init = gr.components.IOComponent.__init__
        gr.components.IOComponent.__init__ = IOComponent_init


def unpatch() -> None:
    global _original_init, _original_create_or_modify_pyi
    from modules import ui_tempdir

    ui_tempdir.uninstall()
    if _original_create_or_modify_pyi is not None:
        from gradio import component_meta

        component_meta.create_or_modify_pyi = _original_create_or_modify_pyi
        _original_create_or_modify_pyi = None
    if _original_init is not None:
        gr.components.IOComponent.__init__ = _original_init
        _original_init = None


_original_create_or_modify_pyi = None


patch()

from modules import ui_tempdir  # noqa: E402 -- as the WebUI: gradio_extensons installs the temp-file override

ui_tempdir.install_ui_tempdir_override()
