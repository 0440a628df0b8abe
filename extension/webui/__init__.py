"""The WebUI adapter: the only part of the core that imports the WebUI's ``modules``.

Imported only from ``scripts/reimagine.py`` (inside a WebUI, as ``sd_webui_reimagine.webui``). Cheap to import: no
torch/diffusers/gradio at import time. ``scripts/reimagine.py`` registers the callbacks defined here, at its top
level, on every load:

- :func:`on_ui_tabs` → the Reimagine tab; :func:`on_ui_settings` → the "Reimagine" settings section;
- :func:`on_after_component` → "Send to Reimagine" next to the send-to buttons of txt2img, img2img, extras, PNG Info;
- :func:`on_before_ui` → forget the components of a previous UI build;
- :func:`on_app_started` → the REST API ``/reimagine/v1/*`` (with ``--api`` or ``--nowebui``);
- :func:`on_script_unloaded` → release our pipelines (Reload UI, shutdown).

The host (:class:`.host.WebUIHost`) maps the tab onto the WebUI: queue and progress bar, ``shared.state``, the
output panel, ``images.save_image``, settings, model folders and memory handling (A1111 and Forge).
"""

from __future__ import annotations

from typing import Any


def on_script_unloaded() -> None:
    """``script_callbacks.on_script_unloaded`` (Reload UI, shutdown): release our pipelines from RAM and VRAM; errors
    never propagate (the WebUI must go on reloading). The next run loads its model again."""
    from .host import release_shared_host

    try:
        release_shared_host()
    except Exception as error:  # noqa: BLE001
        print(f"[sd-webui-reimagine] error while unloading: {error}")


def on_ui_tabs() -> list[tuple[Any, str, str]]:
    """``script_callbacks.on_ui_tabs``: ``[(blocks, "Reimagine", "reimagine")]``."""
    from .tab import on_ui_tabs as build

    return build()


def on_ui_settings() -> None:
    """``script_callbacks.on_ui_settings``: the "Reimagine" settings section."""
    from .tab import on_ui_settings as register

    register()


def on_after_component(component: Any, **kwargs: Any) -> None:
    """``script_callbacks.on_after_component``: the "Send to Reimagine" buttons."""
    from .tab import on_after_component as after

    after(component, **kwargs)


def on_before_ui() -> None:
    """``script_callbacks.on_before_ui``: a new UI is about to be built."""
    from .tab import reset

    reset()


def on_app_started(demo: Any, app: Any) -> None:
    """``script_callbacks.on_app_started``: the REST API ``/reimagine/v1/*``, served when the WebUI serves its own
    API (``--api``, or ``--nowebui`` where ``demo`` is None), behind the same HTTP Basic check as the WebUI's routes
    when ``--api-auth`` is set (the WebUI applies it only to routes it adds itself)."""
    from modules import shared

    from ..api import add_routes
    from ..runtime.backend import ApiBackend
    from .host import shared_host

    flags = shared.cmd_opts
    if not (getattr(flags, "api", False) or getattr(flags, "nowebui", False)):
        return
    add_routes(app, ApiBackend(shared_host()), api_auth=getattr(flags, "api_auth", None))
