"""Stand-in of modules/script_loading.py: how a ``scripts/*.py`` file is executed (docs/webui-contract.md §2)."""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType

loaded_scripts: dict[str, ModuleType] = {}


def load_module(path: str) -> ModuleType:
    """``spec_from_file_location(os.path.basename(path), path)``: module name ``"reimagine.py"``, NOT put in
    ``sys.modules`` (only kept in ``loaded_scripts``)."""
    module_spec = importlib.util.spec_from_file_location(os.path.basename(path), path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    loaded_scripts[path] = module
    return module
