"""Stand-in of modules/paths.py.

The real module imports ``modules.safe`` (which replaces ``torch.load`` in A1111, docs/webui-contract.md §9); the stand-in does
not import torch here: call ``modules.safe.install()`` (or ``webui.patch_torch_load()``) to get that behaviour.
"""

from __future__ import annotations

from modules.paths_internal import (  # noqa: F401 -- re-exported like the real module
    cwd,
    data_path,
    extensions_builtin_dir,
    extensions_dir,
    models_path,
    script_path,
    sd_configs_path,
    sd_default_config,
    sd_model_file,
)

paths: dict[str, str] = {}
