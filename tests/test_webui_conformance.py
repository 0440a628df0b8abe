"""The stand-in WebUI's signatures match the real WebUIs' for every function and class the extension calls.

Oracle: ``tests/webui_stub/real_signatures.json``, extracted with ``tests/webui_stub/extract_signatures.py`` from
unmodified checkouts of AUTOMATIC1111 v1.10.1 and Forge dfdcbab6 (parameter names, kinds and whether each has a
default). Each flavour is checked in its own environment (the ``webui`` fixture follows the installed gradio).
"""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path

import pytest

from tests.webui_stub.fixture import StubWebUI

REAL = json.loads((Path(__file__).parent / "webui_stub" / "real_signatures.json").read_text(encoding="utf-8"))


def stand_in_signature(module_name: str, qualname: str) -> dict:
    """The stand-in's signature of ``module:qualname`` in the JSON's form."""
    obj = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return {"missing": True}
    kind = "class" if inspect.isclass(obj) else "function"
    target = obj.__init__ if inspect.isclass(obj) else obj
    params = [
        [p.name, p.kind.name, p.default is not inspect.Parameter.empty]
        for p in inspect.signature(target).parameters.values()
    ]
    if params and params[0][0] in ("self", "cls"):
        params = params[1:]
    return {"type": kind, "params": params}


def test_real_signatures_cover_both_webuis() -> None:
    assert REAL["a1111"]["commit"].startswith("82a973c0") and REAL["forge"]["commit"].startswith("dfdcbab6")
    assert not [key for flavour in REAL.values() for key, sig in flavour["signatures"].items() if sig.get("missing")]


def test_stand_in_matches_real_signatures(webui: StubWebUI) -> None:
    import modules.shared  # noqa: F401 -- the stand-in initialises in the WebUI's import order

    mismatches = []
    for key, real in REAL[webui.flavour]["signatures"].items():
        module_name, qualname = key.split(":")
        ours = stand_in_signature(module_name, qualname)
        if ours != real:
            mismatches.append(f"{key}: real {real} / stand-in {ours}")
    assert not mismatches, "\n".join(mismatches)


@pytest.mark.parametrize("flavour", ["a1111", "forge"])
def test_input_accordion_kind(flavour: str) -> None:
    """A1111's InputAccordion is a class, Forge's a factory function (the real files say so)."""
    assert REAL[flavour]["signatures"]["modules.ui_components:InputAccordion"]["type"] == (
        "class" if flavour == "a1111" else "function"
    )
