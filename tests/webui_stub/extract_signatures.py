"""Extract the signatures of the WebUI functions and classes the extension calls from real WebUI checkouts.

Run against unmodified checkouts (nothing is imported from them; the files are parsed with ``ast``)::

    python tests/webui_stub/extract_signatures.py --a1111 A1111_CHECKOUT --forge FORGE_CHECKOUT \
        > tests/webui_stub/real_signatures.json

A1111 at tag v1.10.1 (82a973c0) and Forge at dfdcbab6 (https://github.com/lllyasviel/stable-diffusion-webui-forge).
Forge Neo (branch ``neo`` of https://github.com/Haoming02/sd-webui-forge-classic): its section was read file by file
(no checkout was at hand; each file's commit is recorded under ``files``) and is kept as it is unless ``--neo
CHECKOUT`` is given, which extracts it like the others (``NEO_TARGETS``).
Each entry is a list of parameters ``[name, kind, has_default]`` (kind as ``inspect.Parameter.kind.name``); only
facts, no code. ``tests/webui/test_webui_conformance.py`` compares them with the stand-in's ``inspect.signature``.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
from pathlib import Path

TARGETS: dict[str, list[str]] = {
    # module (path under modules/): qualified names the extension (extension/webui, scripts/) calls or subclasses
    "scripts": [
        "Script.title",
        "Script.ui",
        "Script.show",
        "Script.setup",
        "Script.before_process",
        "Script.process",
        "Script.process_batch",
        "Script.postprocess_batch",
        "Script.postprocess_batch_list",
        "Script.post_sample",
        "Script.postprocess_image",
        "Script.postprocess",
        "Script.before_hr",
        "Script.elem_id",
        "PostSampleArgs.__init__",
        "PostprocessImageArgs.__init__",
        "ScriptRunner.initialize_scripts",
        "ScriptRunner.setup_ui_for_section",
        "ScriptRunner.setup_ui",
        "basedir",
    ],
    "script_callbacks": [
        "on_ui_tabs",
        "on_ui_settings",
        "on_after_component",
        "on_script_unloaded",
        "on_before_ui",
        "on_app_started",
    ],
    "images": ["save_image"],
    "infotext_utils": [
        "register_paste_params_button",
        "image_from_url_text",
        "add_paste_fields",
        "parse_generation_parameters",
        "ParamBinding.__init__",
    ],
    "ui_common": ["create_output_panel", "create_refresh_button"],
    "call_queue": ["wrap_gradio_gpu_call"],
    "progress": ["start_task", "finish_task", "add_task_to_queue"],
    "processing": ["decode_latent_batch", "create_infotext", "process_images"],
    "errors": ["report"],
    "sd_models": ["send_model_to_device", "send_model_to_cpu"],
    "shared_state": [
        "State.begin",
        "State.end",
        "State.nextjob",
        "State.interrupt",
        "State.skip",
        "State.stop_generating",
    ],
    "options": ["OptionInfo.__init__", "Options.add_option"],
    "ui_components": ["InputAccordion", "ToolButton.__init__"],
}
FORGE_ONLY: dict[str, list[str]] = {
    "ui_components": ["InputAccordionImpl.__init__"],
    "../backend/memory_management": ["get_torch_device", "soft_empty_cache", "unload_all_models"],
}


NEO_ONLY: dict[str, list[str]] = {
    "../backend/memory_management": [
        "get_torch_device",
        "soft_empty_cache",
        "unload_all_models",
        "free_memory",
        "get_free_memory",
    ],
    "sd_models": ["unload_model_weights", "checkpoint_tiles", "get_closet_checkpoint_match", "list_models"],
    "processing_scripts/refiner": [
        "ScriptRefiner.title",
        "ScriptRefiner.show",
        "ScriptRefiner.ui",
        "ScriptRefiner.setup",
        "ScriptRefiner.postprocess",
    ],
}
"""Neo: also its memory manager's, checkpoint registry's and built-in Refiner's signatures."""


def _params(args: ast.arguments, *, drop_self: bool) -> list[list]:
    """``[name, kind, has_default]`` for every parameter, in order."""
    positional = [*args.posonlyargs, *args.args]
    first_default = len(positional) - len(args.defaults)
    out: list[list] = []
    for i, arg in enumerate(positional):
        kind = "POSITIONAL_ONLY" if i < len(args.posonlyargs) else "POSITIONAL_OR_KEYWORD"
        out.append([arg.arg, kind, i >= first_default])
    if args.vararg:
        out.append([args.vararg.arg, "VAR_POSITIONAL", False])
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        out.append([arg.arg, "KEYWORD_ONLY", default is not None])
    if args.kwarg:
        out.append([args.kwarg.arg, "VAR_KEYWORD", False])
    if drop_self and out and out[0][0] in ("self", "cls"):
        out = out[1:]
    return out


def _find(tree: ast.Module, qualname: str) -> dict:
    """The signature of ``qualname`` (``f``, ``Class.method``; a bare class name gives its ``__init__``)."""
    scope: list[ast.stmt] = tree.body
    parts = qualname.split(".")
    for depth, part in enumerate(parts):
        node = next(
            (
                n
                for n in scope
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == part
            ),
            None,
        )
        if node is None:  # also look inside top-level if/else blocks (flavour switches)
            for n in scope:
                if isinstance(n, ast.If):
                    for inner in [*n.body, *n.orelse]:
                        if getattr(inner, "name", None) == part:
                            node = inner
        if node is None:
            return {"missing": True}
        if depth == len(parts) - 1:
            if isinstance(node, ast.ClassDef):
                init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
                params = _params(init.args, drop_self=True) if init else None
                return {"type": "class", "params": params}
            return {"type": "function", "params": _params(node.args, drop_self=depth > 0)}
        scope = node.body
    return {"missing": True}


def extract(root: Path, targets: dict[str, list[str]]) -> dict[str, dict]:
    result: dict[str, dict] = {}
    for module, names in targets.items():
        path = (root / "modules" / f"{module}.py").resolve()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        key = module.replace("../", "").replace("/", ".")
        key = key if key.startswith("backend") else f"modules.{key}"
        for name in names:
            result[f"{key}:{name}"] = _find(tree, name)
    return result


A1111_COMMIT = "82a973c04367123ae98bd9abdf80d9eda9b910e2"  # tag v1.10.1
FORGE_COMMIT = "dfdcbab685e57677014f05a3309b48cc87383167"


def _commit(root: Path, expected: str) -> str:
    """The checkout's commit; an exported tree (no .git) is taken to be ``expected``."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    except OSError:
        return expected
    commit = head.stdout.strip()
    if head.returncode == 0 and commit != expected:
        raise SystemExit(f"{root} is at {commit}, expected {expected}")
    return expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a1111", type=Path, required=True, help="checkout of A1111 v1.10.1")
    parser.add_argument("--forge", type=Path, required=True, help="checkout of Forge dfdcbab6")
    parser.add_argument("--neo", type=Path, help="checkout of Forge Neo (branch neo); else its section is kept")
    args = parser.parse_args()
    data = {
        "a1111": {"commit": _commit(args.a1111, A1111_COMMIT), "signatures": extract(args.a1111, TARGETS)},
        "forge": {
            "commit": _commit(args.forge, FORGE_COMMIT),
            "signatures": extract(
                args.forge, {**TARGETS, **{k: TARGETS.get(k, []) + v for k, v in FORGE_ONLY.items()}}
            ),
        },
    }
    if args.neo:
        head = subprocess.run(["git", "-C", str(args.neo), "rev-parse", "HEAD"], capture_output=True, text=True)
        targets = {**TARGETS, **{k: TARGETS.get(k, []) + v for k, v in NEO_ONLY.items()}}
        data["neo"] = {"commit": head.stdout.strip() or "unknown", "signatures": extract(args.neo, targets)}
    else:
        current = json.loads((Path(__file__).parent / "real_signatures.json").read_text(encoding="utf-8"))
        data["neo"] = current["neo"]
    print(json.dumps(data, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
