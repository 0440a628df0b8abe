"""The host of the standalone app (``python -m extension serve``): no WebUI, plain gradio.

Jobs are serialised by one lock; Interrupt / Skip set flags the running job checks every step; progress goes to
gradio's progress bar and a live preview (every step, cheap decode) to the gallery while the job runs; every output is written as a PNG (infotext in ``parameters``) to the outputs folder, and the
gallery shows those files, so a download carries the infotext.
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import io
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from ..images import gallery_entry
from ..outputs import save_png
from ..runtime.control import Control
from ..runtime.host import MEMORY_MODES
from ..runtime.jobs import error_html
from . import compat
from .surface import OutputPanel, TabHost

log = logging.getLogger(__name__)

EXTENSION_ROOT = Path(__file__).resolve().parents[2]


def default_model_folders() -> list[Path]:
    """Where the app looks without ``--models-dir``: ``./models`` and, when this extension sits in a WebUI's
    ``extensions/`` folder, that WebUI's ``models`` folder."""
    candidates = [Path.cwd() / "models", EXTENSION_ROOT.parent.parent / "models"]
    found: list[Path] = []
    for folder in candidates:
        if folder.is_dir() and folder.resolve() not in [f.resolve() for f in found]:
            found.append(folder)
    return found


class StandaloneHost(TabHost):
    """Host for the standalone app."""

    show_progress = "full"

    def __init__(
        self,
        models_dir: Path | Sequence[Path] | None = None,
        *,
        models: Sequence[Path] = (),
        outdir: Path | None = None,
        config_root: Path | None = None,
        karlo_stats: Path | None = None,
        device: str | None = None,
        memory_mode: str = MEMORY_MODES[0],
        cache: Any = None,
    ) -> None:
        super().__init__(config_root=config_root, cache=cache)
        if models_dir is None:
            self._folders = default_model_folders()
        elif isinstance(models_dir, (str, os.PathLike)):
            self._folders = [Path(models_dir)]
        else:
            self._folders = [Path(folder) for folder in models_dir]
        self._extra = [Path(model) for model in models]
        self.outdir = Path(outdir) if outdir else Path.cwd() / "outputs" / "reimagine-images"
        self._karlo = karlo_stats
        self._device = device
        self._memory_mode = memory_mode
        self._lock = threading.Lock()
        self._control = Control()

    # -- settings --------------------------------------------------------------------------------------------------
    def model_folders(self) -> list[Path]:
        """The models folder(s) given, searched recursively."""
        return list(self._folders)

    def extra_models(self) -> list[Path]:
        """Models given one by one."""
        return list(self._extra)

    def memory_mode(self) -> str:
        """Keep resident (default) or offload after each run."""
        return self._memory_mode

    def karlo_stats(self) -> str | None:
        """``--karlo-stats`` (else ``<models>/karlo/ViT-L-14_stats.th``)."""
        return str(self._karlo) if self._karlo else None

    def models_dir(self) -> Path | None:
        """The first models folder (``models/karlo`` is looked up there)."""
        return self._folders[0] if self._folders else None

    def device(self) -> Any:
        """``--device`` or automatic."""
        return self._device

    # -- running ---------------------------------------------------------------------------------------------------
    def control(self) -> Control:
        """The app's one job control."""
        return self._control

    @contextlib.contextmanager
    def job_slot(self, description: str) -> Iterator[Control]:
        """One job at a time; stop flags cleared at its start."""
        with self._lock:
            self._control.reset()
            self._control.begin(0, 0, description)
            try:
                yield self._control
            finally:
                self._control.listeners.clear()

    def run(self, fn: Callable[..., tuple], n_inputs: int) -> Callable[..., Any]:
        """Serialise, report progress to gradio, show the live preview in the gallery while the job runs, show
        unexpected errors as a message, add the time taken.

        The handler is a generator: the job runs in a worker thread that holds the job slot, while gradio's thread
        (with its request context) polls the :class:`Control` and yields ``([preview], …)`` whenever a new live
        preview arrived, then the job's outputs. A generator that gradio drops (the page went away) interrupts the
        job without waiting for it, so the slot is freed by the worker whatever happens to the generator."""
        host = self

        def handler(*args: Any, progress: Any = None) -> Iterator[tuple]:
            if progress is None and len(args) > n_inputs:  # gradio passes the tracker positionally
                progress = args[n_inputs]
            started = time.perf_counter()
            job = _Job(host, fn, args[:n_inputs])
            job.start()
            shown = -1
            try:
                while job.is_alive():
                    job.join(PREVIEW_POLL_S)
                    if not job.running.is_set():
                        continue  # still waiting for the slot: another job runs
                    control = host.control()
                    if progress is not None:
                        progress(control.fraction, desc=control.text or None)
                    if shown == -1:
                        shown = job.previews_before
                    if job.is_alive() and control.previews != shown and control.latest_preview is not None:
                        shown = control.previews
                        yield [control.latest_preview], compat.update(), compat.update(), compat.update()
            finally:
                if job.is_alive():
                    job.cancel()
            gallery, info, infotext, log_html = job.outputs
            elapsed = time.perf_counter() - started
            log_html += f"<div class='performance'><p class='time'>Time taken: <wbr><span class='measurement'>{elapsed:.1f} sec.</span></p></div>"
            yield gallery, info, infotext, log_html

        parameters = [inspect.Parameter(f"arg{i}", inspect.Parameter.POSITIONAL_OR_KEYWORD) for i in range(n_inputs)]
        parameters.append(inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress()))
        handler.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        return handler

    # -- outputs ---------------------------------------------------------------------------------------------------
    def output_panel(self, tabname: str = "reimagine") -> OutputPanel:
        """Gallery, generation info, infotext, log, and a download button for the shown images."""
        with gr.Column(elem_id=f"{tabname}_results"):
            with gr.Column(variant="panel", elem_id=f"{tabname}_results_panel"):
                with gr.Group(elem_id=f"{tabname}_gallery_container"):
                    gallery = compat.gallery(
                        label="Output",
                        show_label=False,
                        elem_id=f"{tabname}_gallery",
                        columns=4,
                        preview=True,
                        height=512,
                        object_fit="contain",
                    )
                with gr.Row(elem_id=f"image_buttons_{tabname}", elem_classes=["image-buttons"]):
                    download = gr.Button("Download images", elem_id=f"{tabname}_download", size="sm")
                files = gr.File(
                    None, file_count="multiple", interactive=False, show_label=False, visible=False,
                    elem_id=f"download_files_{tabname}",
                )  # fmt: skip
                with gr.Group():
                    infotext = gr.HTML(elem_id=f"html_info_{tabname}", elem_classes=["infotext"])
                    html_log = gr.HTML(elem_id=f"html_log_{tabname}", elem_classes=["html-log"])
                    generation_info = gr.Textbox(visible=False, elem_id=f"generation_info_{tabname}")

        def download_all(value: Any) -> Any:
            paths = [path for path in (self._local_path(gallery_entry(item)) for item in value or []) if path]
            return compat.update(value=[str(p) for p in paths] or None, visible=bool(paths))

        download.click(fn=download_all, inputs=[gallery], outputs=[files], show_progress=False)
        return OutputPanel(gallery, generation_info, infotext, html_log, {"download": download, "files": files})

    def save(self, images: list[Any], infotexts: list[str], info: Any) -> list[Any]:
        """Write each image as ``NNNNN-<seed>.png`` (next free number) with its infotext; returns the paths."""
        self.outdir.mkdir(parents=True, exist_ok=True)
        number = _next_number(self.outdir)
        seeds = info.all_seeds[-len(images) :] if len(info.all_seeds) >= len(images) else [None] * len(images)
        paths = []
        for offset, (image, text, seed) in enumerate(zip(images, infotexts, seeds)):
            image.info["parameters"] = text
            name = f"{number + offset:05d}-{seed}.png" if seed is not None else f"{number + offset:05d}.png"
            paths.append(str(save_png(image, self.outdir / name, text)))
        return paths

    def tool_button(self, symbol: str, elem_id: str, tooltip: str) -> Any:
        """A small emoji button with the WebUI's ToolButton look (class ``tool``)."""
        return gr.Button(symbol, elem_id=elem_id, elem_classes=["tool"])

    def gallery_image(self, value: Any, index: int) -> Any:
        """Image ``index`` of the gallery (only files this app wrote or gradio cached are opened)."""
        from PIL import Image

        items = list(value or [])
        if not items:
            return None
        entry = gallery_entry(items[index if 0 <= index < len(items) else 0])
        if hasattr(entry, "convert"):
            return entry
        if isinstance(entry, str) and entry.startswith("data:image/"):
            return Image.open(io.BytesIO(base64.b64decode(entry.split(",", 1)[1])))
        path = self._local_path(entry)
        if path is None:
            return None
        with Image.open(path) as image:
            image.load()
            return image

    def allowed_dirs(self) -> list[Path]:
        """Folders the app serves files from and reads gallery files back from."""
        temp = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")
        return [self.outdir.resolve(), temp.resolve()]

    def _local_path(self, entry: Any) -> Path | None:
        if not isinstance(entry, str) or not entry:
            return None
        text = re.sub(r"^.*?/?file=", "", entry).split("?", 1)[0]
        path = Path(text).resolve()
        if not path.is_file():
            return None
        if not any(path.is_relative_to(folder) for folder in self.allowed_dirs()):
            log.warning("reimagine: refusing to open %s (outside the outputs and gradio's temp folder)", path)
            return None
        return path


PREVIEW_POLL_S = 0.2
"""Seconds between two looks at the running job's progress and live preview."""


class _Job(threading.Thread):
    """One handler call in its own thread, inside the host's job slot; ``outputs`` are the four panel values (an
    unexpected error becomes the log's message)."""

    def __init__(self, host: StandaloneHost, fn: Callable[..., tuple], args: Sequence[Any]) -> None:
        super().__init__(name="reimagine-job", daemon=True)
        self.host, self.fn, self.args = host, fn, tuple(args)
        self.outputs: tuple = ([], "", "", "")
        self.running = threading.Event()  # set once the slot is held
        self.previews_before = 0  # the control's preview count when this job started
        self.cancelled = False

    def cancel(self) -> None:
        """Nobody waits for the outputs any more: interrupt the job, or skip it if it has not started."""
        self.cancelled = True
        if self.running.is_set():
            self.host.control().interrupt()

    def run(self) -> None:
        with self.host.job_slot("Reimagine") as control:
            self.previews_before = control.previews
            self.running.set()
            if self.cancelled:  # after ``running``: cancel() either sees it set or this sees the flag
                return
            try:
                self.outputs = self.fn(*self.args)
            except Exception as error:  # noqa: BLE001 - shown to the user, logged with its traceback
                log.exception("reimagine: job failed")
                self.outputs = ([], "", "", error_html(f"{type(error).__name__}: {error}"))


def _next_number(folder: Path) -> int:
    """The WebUI's numbering: one more than the largest ``NNNNN-`` prefix in ``folder``."""
    largest = -1
    for name in os.listdir(folder):
        match = re.match(r"(\d+)", name)
        if match:
            largest = max(largest, int(match.group(1)))
    return largest + 1
