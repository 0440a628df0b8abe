"""Stand-in of modules/ui_tempdir.py: the WebUI's gradio patch that serves already-saved outputs from their saved path.

Both WebUIs give every image they save ``image.already_saved_as = fullfn`` (images.py). When gradio turns a PIL
output into a file, the patch returns that path plus ``?<mtime>`` and registers it as an allowed temp file instead of
writing a copy into gradio's cache (A1111 ui_tempdir.py:34-58 on gradio 3's ``IOComponent.pil_to_temp_file``;
F:ui_tempdir.py:45-66 on gradio 4's ``processing_utils.save_pil_to_cache``, and F:ui_tempdir.py:69-147 replaces
``processing_utils.async_move_files_to_cache`` so a registered file is served where it is). Consequence on Forge:
gallery values point into ``outputs/``, outside gradio's cache, so gradio 4.40's ``check_all_files_in_cache`` (run
for any handler taking ``gr.SelectData``) refuses them. ``install()`` / ``uninstall()`` are stand-in only (the
WebUI installs once from ``gradio_extensons``).

Neo (modules/ui_tempdir.py, commit 223d2171d805d446f3d786598bf68d59ff9ff710) has Forge's gradio-4 override and
nothing else: ``install_ui_tempdir_override`` assigns ``processing_utils.save_pil_to_cache`` and
``processing_utils.async_move_files_to_cache``. On gradio 4 that is Forge's behaviour; on gradio 3 (the neo test
environment) gradio never calls them, so saved outputs are copied into gradio's temp folder as usual.
"""

from __future__ import annotations

import os
import tempfile
from collections import namedtuple
from pathlib import Path

import gradio as gr
from PIL import PngImagePlugin

from modules import _stub, shared

Savedfile = namedtuple("Savedfile", ["name"])


def register_tmp_file(gradio_app, filename):
    if hasattr(gradio_app, "temp_file_sets"):
        if hasattr(gr.utils, "abspath"):  # gradio 4.19+
            filename = gr.utils.abspath(filename)
        else:
            filename = os.path.abspath(filename)
        gradio_app.temp_file_sets[0] = gradio_app.temp_file_sets[0] | {filename}
    if hasattr(gradio_app, "temp_dirs"):
        gradio_app.temp_dirs = gradio_app.temp_dirs | {os.path.abspath(os.path.dirname(filename))}


def check_tmp_file(gradio_app, filename):
    if hasattr(gradio_app, "temp_file_sets"):
        if hasattr(gr.utils, "abspath"):
            filename = gr.utils.abspath(filename)
        else:
            filename = os.path.abspath(filename)
        return any(filename in fileset for fileset in gradio_app.temp_file_sets)
    if hasattr(gradio_app, "temp_dirs"):
        return any(Path(temp_dir).resolve() in Path(filename).resolve().parents for temp_dir in gradio_app.temp_dirs)
    return False


def _save(pil_image, directory):
    already_saved_as = getattr(pil_image, "already_saved_as", None)
    if already_saved_as and os.path.isfile(already_saved_as):
        register_tmp_file(shared.demo, already_saved_as)
        filename_with_mtime = f"{already_saved_as}?{os.path.getmtime(already_saved_as)}"
        register_tmp_file(shared.demo, filename_with_mtime)
        return filename_with_mtime
    directory = shared.opts.temp_dir or directory
    os.makedirs(directory, exist_ok=True)
    metadata = PngImagePlugin.PngInfo()
    use_metadata = False
    for key, value in pil_image.info.items():
        if isinstance(key, str) and isinstance(value, str):
            metadata.add_text(key, value)
            use_metadata = True
    with tempfile.NamedTemporaryFile(delete=False, suffix=".png", dir=directory) as file_obj:
        pil_image.save(file_obj, pnginfo=(metadata if use_metadata else None))
    return file_obj.name


if _stub.is_forge():

    def save_pil_to_file(pil_image, cache_dir=None, format="png"):
        return _save(pil_image, cache_dir)

else:

    def save_pil_to_file(self, pil_image, dir=None, format="png"):
        return _save(pil_image, dir)


_originals: dict = {}
_MISSING = object()


def _async_move_files_to_cache(original):
    """F: gradio's function, except that a file registered by ``register_tmp_file`` keeps its path (``?mtime``
    stripped) and is served from there instead of being copied into the cache (written here, not copied)."""
    from gradio_client import utils as client_utils

    async def move(data, block, postprocess=False, check_in_upload_folder=False, keep_in_cache=False):
        async def one(d):
            path = str(d.get("path") or "").rsplit("?", 1)[0]
            if path and not getattr(block, "proxy_url", None) and check_tmp_file(shared.demo, path):
                return {**d, "path": path, "url": f"/file={path}"}
            return await original(
                d,
                block,
                postprocess=postprocess,
                check_in_upload_folder=check_in_upload_folder,
                keep_in_cache=keep_in_cache,
            )

        if hasattr(data, "model_dump"):
            data = data.model_dump()
        return await client_utils.async_traverse(data, one, client_utils.is_file_obj)

    return move


def install():
    """``install_ui_tempdir_override()``; undone by ``uninstall()``."""
    if _originals:
        return
    if _stub.is_neo() and int(gr.__version__.split(".")[0]) < 4:
        from gradio import processing_utils

        _originals["neo_attributes"] = {
            name: getattr(processing_utils, name, _MISSING)
            for name in ("save_pil_to_cache", "async_move_files_to_cache")
        }
        processing_utils.save_pil_to_cache = save_pil_to_file
        processing_utils.async_move_files_to_cache = _async_move_files_to_cache(None)
    elif _stub.is_forge():
        from gradio import processing_utils

        _originals["save_pil_to_cache"] = processing_utils.save_pil_to_cache
        _originals["async_move_files_to_cache"] = processing_utils.async_move_files_to_cache
        processing_utils.save_pil_to_cache = save_pil_to_file
        processing_utils.async_move_files_to_cache = _async_move_files_to_cache(_originals["async_move_files_to_cache"])
    else:
        _originals["pil_to_temp_file"] = gr.components.IOComponent.pil_to_temp_file
        gr.components.IOComponent.pil_to_temp_file = save_pil_to_file


install_ui_tempdir_override = install


def uninstall():
    if not _originals:
        return
    if "save_pil_to_cache" in _originals:
        from gradio import processing_utils

        processing_utils.save_pil_to_cache = _originals["save_pil_to_cache"]
        processing_utils.async_move_files_to_cache = _originals["async_move_files_to_cache"]
    if "neo_attributes" in _originals:
        from gradio import processing_utils

        for name, value in _originals["neo_attributes"].items():
            if value is _MISSING:
                delattr(processing_utils, name)
            else:
                setattr(processing_utils, name, value)
    if "pil_to_temp_file" in _originals:
        gr.components.IOComponent.pil_to_temp_file = _originals["pil_to_temp_file"]
    _originals.clear()
