"""The stand-in WebUI's signatures match the real WebUIs' for every function and class the extension calls.

Oracle: ``tests/webui_stub/real_signatures.json``, extracted with ``tests/webui_stub/extract_signatures.py`` from
unmodified checkouts of AUTOMATIC1111 v1.10.1 and Forge dfdcbab6 (parameter names, kinds and whether each has a
default), and, for Forge Neo, read from its branch ``neo`` file by file (the commit of each file is recorded; no
whole checkout was at hand; ``{"missing": true}`` there is a name Neo removed, which the stand-in must lack too).
Each flavour is checked in its own environment (the ``webui`` fixture follows the installed packages), and Neo also
wherever its gradio runs (``each_webui``).
"""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path

import pytest

from tests.webui_stub.fixture import StubWebUI
from tests.webui_stub.fixture import each_webui as each_webui  # noqa: F401 -- pytest fixture

REAL = json.loads(
    (Path(__file__).resolve().parents[1] / "webui_stub" / "real_signatures.json").read_text(encoding="utf-8")
)


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


def test_real_signatures_cover_every_webui() -> None:
    assert REAL["a1111"]["commit"].startswith("82a973c0") and REAL["forge"]["commit"].startswith("dfdcbab6")
    for flavour in ("a1111", "forge"):
        assert not [key for key, sig in REAL[flavour]["signatures"].items() if sig.get("missing")]
    # Neo: every module our glue calls into is covered by a file read from its branch, or listed as not stored
    neo = REAL["neo"]
    covered = {key.split(":")[0] for key in neo["signatures"]}
    assert {
        "backend.memory_management",
        "modules.sd_models",
        "modules.shared_state",
        "modules.infotext_utils",
    } <= covered
    assert all(len(commit) == 40 for commit in neo["files"].values())
    # the model-moving calls A1111's path uses are gone in Neo (our glue must never reach them there)
    assert neo["signatures"]["modules.sd_models:send_model_to_cpu"] == {"missing": True}


def test_stand_in_matches_real_signatures(each_webui: StubWebUI) -> None:
    import modules.shared  # noqa: F401 -- the stand-in initialises in the WebUI's import order

    webui = each_webui
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
