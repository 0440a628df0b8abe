"""The standalone app: the Reimagine tab and a "Refine" tab as a plain gradio app on 127.0.0.1 (no WebUI needed).

``python -m extension serve [--port N] [--models-dir DIR]`` calls :func:`serve`. :func:`start` returns the running
app (gradio ``demo``, its FastAPI ``app`` and the :class:`StandaloneHost`), so callers and tests can add routes
(the REST API) or drive it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent
TITLE = "Reimagine"


def asset(relative: str) -> Path:
    """A WebUI-side file of the repository root (``style.css``, ``javascript/reimagine.js``): its copy in an installed
    package (``assets/``, made by setup.py), else the checkout's own."""
    installed = PACKAGE / "assets" / Path(relative).name
    return installed if installed.is_file() else PACKAGE.parent / relative


STYLE_FILES = (asset("style.css"), PACKAGE / "ui" / "standalone.css")
SCRIPT_FILE = asset("javascript/reimagine.js")


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


def page_css() -> str:
    """The app's CSS: the WebUI tab's style.css plus the standalone additions."""
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
    with gr.Blocks(**compat.blocks_kwargs(title=TITLE, css=page_css())) as demo:
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
    engine: Any = None,
    quiet: bool = False,
    listen: str | None = None,
    allowed_hosts: Sequence[str] = (),
    **host_options: Any,
) -> Running:
    """Build and launch the app on 127.0.0.1:``port`` (0 = any free port; ``listen`` = another address to bind)
    without blocking. Only requests whose ``Host`` (and ``Origin``, when sent) is a loopback name, ``listen`` or one of
    ``allowed_hosts`` are answered (:mod:`extension.security`). ``models_dir`` and ``host_options`` (``models``,
    ``outdir``, ``config_root``, ``karlo_stats``, ``device``, …) are the :class:`~extension.ui.standalone.StandaloneHost`'s."""
    from fastapi import APIRouter
    from starlette.middleware import Middleware

    from . import security
    from .api import add_routes
    from .runtime.backend import ApiBackend
    from .ui import compat
    from .ui.standalone import StandaloneHost

    security.private_temp_dir()  # before gradio names its folders: not the shared <tmp>/gradio
    host = StandaloneHost(models_dir, **host_options)
    demo, _ = build_app(host, engine)
    demo.queue(**compat.queue_limit(4))
    hosts = security.allowed_host_names(listen, allowed_hosts)
    # The REST API and the host guard go into the FastAPI app as gradio creates it (launch's documented
    # ``app_kwargs``): in place before the server accepts its first connection, not added after launch() returned.
    api = APIRouter()
    add_routes(api, ApiBackend(host))
    roots = [*host.allowed_dirs(), *security.gradio_file_roots(None)]
    guard = Middleware(security.LocalOnly, hosts=frozenset(hosts), file_roots=roots)
    app, local_url, _ = demo.launch(
        **compat.launch_kwargs(
            css=page_css(),
            server_name=listen or "127.0.0.1",
            server_port=port or _free_port(),
            prevent_thread_lock=True,
            allowed_paths=[str(p) for p in host.allowed_dirs()],
            quiet=quiet,
            inbrowser=False,
            share=False,
            app_kwargs={"routes": list(api.routes), "middleware": [guard]},
        )
    )
    security.install(app, hosts, host.allowed_dirs())  # then outermost, and gradio's CORS middleware dropped
    return Running(demo=demo, app=app, host=host, url=local_url)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(port: int = 7861, models_dir: Path | Sequence[Path] | None = None, **kwargs: Any) -> int:
    """Run the app until Ctrl+C (``python -m extension serve``); returns the exit status."""
    running = start(port, models_dir, **kwargs)
    models = running.host.models()
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
