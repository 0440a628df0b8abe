"""The WebUI stand-in as an HTTP server, for README's ``curl http://127.0.0.1:7860/...`` commands (tests/test_readme.py).

``python -m tests.readme_webui ROOT PORT`` builds the stand-in (tests/webui_stub) in ``ROOT`` with our extension
installed, the models already copied into ``ROOT/models/Stable-diffusion`` by the caller, and serves what the WebUI
started with ``--api`` serves: ``/sdapi/v1/txt2img`` and ``/sdapi/v1/script-info`` (the stand-in's ``modules.api``,
whose txt2img runs every always-on script, our refiner post-pass included) and the routes our extension adds in
``on_app_started`` (``/reimagine/v1/*``). It prints ``listening`` once the port answers, and stops on SIGINT/SIGTERM.
"""

from __future__ import annotations

import importlib
import sys
import threading
from pathlib import Path


def build_app(root: Path) -> object:
    """The FastAPI app of a stand-in WebUI in ``root`` started with ``--api`` and a txt2img tab whose UI was built."""
    import gradio as gr
    from fastapi import FastAPI

    from tests.webui_stub.fixture import StubWebUI

    webui = StubWebUI(root)
    webui.activate()
    from modules import infotext_utils, script_callbacks, scripts, sd_models, shared

    shared.cmd_opts.api = True
    webui.load_scripts()
    importlib.import_module("modules.ui_components")  # the WebUI patches gradio before any script UI is built
    runner = webui.script_runner()
    with gr.Blocks():
        importlib.import_module("modules.ui").create_script_sections(runner)
        script_callbacks.ui_tabs_callback()
    infotext_utils.add_paste_fields("txt2img", None, list(runner.infotext_fields))
    scripts.scripts_txt2img = runner
    shared.sd_model = sd_models.StubSdModel(is_sdxl=False)
    app = FastAPI()
    importlib.import_module("modules.api.api").Api(app, threading.Lock())
    script_callbacks.app_started_callback(object(), app)
    return app


def main(argv: list[str]) -> int:
    import uvicorn

    root, port = Path(argv[0]), int(argv[1])
    config = uvicorn.Config(build_app(root), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        thread.join(0.05)
    print("listening", flush=True)
    try:
        thread.join()
    except KeyboardInterrupt:
        server.should_exit = True
        thread.join(10)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
