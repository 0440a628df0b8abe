"""The standalone app: the Reimagine tab and a "Refine" tab as a plain gradio app on 127.0.0.1 (no WebUI needed).

``python -m extension serve [--port N] [--models-dir DIR]`` calls :func:`serve`. :func:`start` returns the running
app (gradio ``demo``, its FastAPI ``app`` and the :class:`StandaloneHost`), so callers and tests can add routes
(the REST API) or drive it; routes hooked in :data:`ON_APP_STARTED` are added to every app started here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
STYLE_FILES = (ROOT / "style.css", Path(__file__).resolve().parent / "ui" / "standalone.css")
SCRIPT_FILE = ROOT / "javascript" / "reimagine.js"
TITLE = "Reimagine"

ON_APP_STARTED: list[Callable[[Any, Any, Any], None]] = []
"""Callbacks ``cb(demo, app, host)`` run after launch, before serving requests (the REST API registers here)."""


@dataclass
class Running:
    """A started app."""

    demo: Any  # gr.Blocks
    app: Any  # FastAPI
    host: Any  # StandaloneHost
    url: str

    def close(self) -> None:
        """Stop the server."""
        self.demo.close()


def _css() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in STYLE_FILES if path.is_file())


def _script_loader() -> str:
    """JavaScript run once when the page loads: installs javascript/reimagine.js as a page script (the WebUI loads
    the same file itself)."""
    source = SCRIPT_FILE.read_text(encoding="utf-8") if SCRIPT_FILE.is_file() else ""
    return (
        "() => { if (!window.reimagineLoaded) { const s = document.createElement('script'); "
        f"s.textContent = {json.dumps(source)}; document.head.appendChild(s); window.reimagineLoaded = true; }} "
        "return []; }"
    )


def build_app(host: Any, engine: Any = None) -> tuple[Any, dict[str, Any]]:
    """The gradio Blocks of the app and its tabs' components (``{"reimagine": Tab, "refine": {...}}``)."""
    import gradio as gr

    from .ui import compat, refine_tab, tab

    # Built first, then rendered into tabs: the WebUI's way (a Blocks created inside another would render twice).
    reimagine = tab.build(host, engine)
    refine_blocks, refine = refine_tab.build(host, engine)
    with gr.Blocks(title=TITLE, css=_css(), analytics_enabled=False) as demo:
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab(TITLE, id="reimagine", elem_id="tab_reimagine"):
                reimagine.blocks.render()
            with gr.Tab("Refine", id="reimagine_refine", elem_id="tab_reimagine_refine"):
                refine_blocks.render()
        demo.load(fn=None, inputs=None, outputs=None, **compat.js(_script_loader()))
    return demo, {"reimagine": reimagine, "refine": refine}


def start(
    port: int = 7861,
    models_dir: Path | Sequence[Path] | None = None,
    *,
    models: Sequence[Path] = (),
    outdir: Path | None = None,
    config_root: Path | None = None,
    karlo_stats: Path | None = None,
    device: str | None = None,
    engine: Any = None,
    quiet: bool = False,
) -> Running:
    """Build and launch the app on 127.0.0.1:``port`` (0 = any free port) without blocking."""
    from .ui import compat
    from .ui.standalone import StandaloneHost

    host = StandaloneHost(
        models_dir, models=models, outdir=outdir, config_root=config_root, karlo_stats=karlo_stats, device=device
    )
    demo, _ = build_app(host, engine)
    if compat.GRADIO_4:
        demo.queue(default_concurrency_limit=4)
    else:
        demo.queue(concurrency_count=4)
    app, local_url, _ = demo.launch(
        server_name="127.0.0.1",
        server_port=port or _free_port(),
        prevent_thread_lock=True,
        allowed_paths=[str(p) for p in host.allowed_dirs()],
        show_api=False,
        quiet=quiet,
        inbrowser=False,
        share=False,
    )
    for callback in [*ON_APP_STARTED, _add_api_routes]:
        callback(demo, app, host)
    return Running(demo=demo, app=app, host=host, url=local_url)


def _add_api_routes(demo: Any, app: Any, host: Any) -> None:
    """The REST API on the app, when ``extension.api`` provides ``add_routes(app, backend)``."""
    try:
        from .api import add_routes
    except ImportError:
        return
    try:
        add_routes(app, host)
    except Exception:  # noqa: BLE001 - the UI keeps working without the API; the log says why
        log.exception("reimagine: could not add the REST API routes")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(port: int = 7861, models_dir: Path | Sequence[Path] | None = None, **kwargs: Any) -> int:
    """Run the app until Ctrl+C (``python -m extension serve``); returns the exit status."""
    running = start(port, models_dir, **kwargs)
    models = running.host.all_models()
    print(f"Reimagine: {len(models)} model(s) found in {', '.join(map(str, running.host.model_folders())) or '-'}")
    print(f"Reimagine: outputs go to {running.host.outdir}")
    print(f"Reimagine: open {running.url}")
    try:
        running.demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        running.close()
    return 0
