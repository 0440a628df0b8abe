"""Stand-in of modules/shared.py: ``cmd_opts``, ``opts``, ``state``, ``sd_model``, ``device`` ...

``sd_model`` is created on first access (the real one is a lazy property, shared.py:163-184): A1111 -> a
``sd_models.StubSdModel``; F: a ``sd_models.FakeInitialModel`` until the first generation. Assign to replace it.
"""

from __future__ import annotations

import os

from modules import options, shared_cmd_options, shared_options, shared_state

cmd_opts = shared_cmd_options.cmd_opts
OptionInfo = options.OptionInfo
OptionHTML = options.OptionHTML
options_section = options.options_section

opts = options.Options(dict(shared_options.options_templates), shared_options.restricted_opts)
state = shared_state.State()

demo = None
parallel_processing_allowed = True
batch_cond_uncond = True
settings_components = None
tab_names: list[str] = []
sd_upscalers: list = []
face_restorers: list = []
prompt_styles = None
total_tqdm = None
mem_mon = None
hf_endpoint = os.getenv("HF_ENDPOINT", "https://huggingface.co")


def __getattr__(name: str):
    if name == "sd_model":
        from modules import _stub, sd_models

        value = sd_models.FakeInitialModel() if _stub.is_forge() else sd_models.StubSdModel()
        globals()[name] = value
        return value
    if name == "device":
        from modules import devices

        return devices.device
    raise AttributeError(f"module 'modules.shared' has no attribute {name!r}")
