"""Stand-in of modules/paths_internal.py: the WebUI's folders (here all under the stand-in root)."""

from __future__ import annotations

import os

from modules import _stub

modules_path = os.path.dirname(os.path.realpath(__file__))
script_path = str(_stub.root)
"""The WebUI's install folder (real: the parent of modules/)."""
sd_configs_path = os.path.join(script_path, "configs")
sd_default_config = os.path.join(sd_configs_path, "v1-inference.yaml")
sd_model_file = os.path.join(script_path, "model.ckpt")
default_sd_model_file = sd_model_file
data_path = str(_stub.root)
"""``--data-dir`` (default: the WebUI root)."""
models_path = os.path.join(data_path, "models")
"""``--models-dir`` or ``<data_path>/models`` (paths_internal.py:32)."""
extensions_dir = os.path.join(data_path, "extensions")
extensions_builtin_dir = os.path.join(script_path, "extensions-builtin")
config_states_dir = os.path.join(script_path, "config_states")
default_output_dir = os.path.join(data_path, "outputs")
cwd = os.getcwd()
