"""Forge Neo (Haoming02/sd-webui-forge-classic, branch neo) against the stand-in's neo flavour.

Oracles: Neo's own source, read from its branch (docs/webui-contract.md §12 gives file, commit and the facts):
``--ckpt-dirs`` (sd_models.py iterates ``cmd_opts.ckpt_dirs``), ComfyUI-style memory flags (backend/args.py), a
memory manager whose ``free_memory`` drops what it unloads from ``current_loaded_models`` and a built-in Refiner whose
``postprocess`` needs the UNet's entry in that list (processing_scripts/refiner.py), its infotext keys ``Refiner`` /
``Refiner switch at`` and paste rule ``"Refiner" in d``. Counted calls (``memory_management.calls``,
``sd_samplers_common.calls``) say what ran.
"""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from tests.webui_stub.fixture import StubWebUI

pytestmark = pytest.mark.parametrize("webui", ["neo"], indirect=True)

NEO_KEYS = {"Refiner", "Refiner switch at"}
"""The infotext keys of Neo's built-in Refiner (sd_samplers_common.py apply_refiner)."""


def built_txt2img(webui: StubWebUI) -> Any:
    """txt2img's script runner with every always-on script's UI built (ours and Neo's Refiner, its accordion shown:
    Settings -> Refiner -> "Display the Refiner Accordion")."""
    from modules import shared

    shared.opts.show_refiner = True
    webui.load_scripts()
    importlib.import_module("modules.ui_components")
    runner = webui.script_runner()
    with gr.Blocks():
        importlib.import_module("modules.ui").create_script_sections(runner)
    return runner


def processed_with(p: Any, runner: Any, args: list[Any]) -> Any:
    """``processing.process_images(p)`` with these scripts, inside a job as the WebUI runs it."""
    from modules import processing, shared

    p.scripts, p.script_args = runner, args
    shared.state.begin(job="test")
    try:
        return processing.process_images(p)
    finally:
        shared.state.end()


def scripts_by_title(runner: Any) -> dict[str, Any]:
    return {script.title(): script for script in runner.alwayson_scripts}


# --- glue: what Neo renamed or removed ----------------------------------------------------------------------------


def test_checkpoint_folders_include_every_ckpt_dirs(webui: StubWebUI, tmp_path: Path) -> None:
    """Neo replaced ``--ckpt-dir`` by the repeatable ``--ckpt-dirs`` (a list): both folders are searched."""
    from modules import shared

    first, second = tmp_path / "a", tmp_path / "b"
    shared.cmd_opts.ckpt_dirs = [str(first), str(second)]
    host = importlib.import_module("extension.webui.host").WebUIHost()
    folders = host.model_folders()
    assert first in folders and second in folders
    assert folders[0] == webui.checkpoints_dir


def test_memory_flags_come_from_neos_backend_args(webui: StubWebUI) -> None:
    """Neo's flags are ComfyUI's (backend/args.py): --novram streams, --cpu runs on the CPU, --force-fp32 is fp32."""
    import torch
    from backend.args import args

    host = importlib.import_module("extension.webui.host").WebUIHost()
    assert host.forge and host.memory_flags().active() == []
    args.novram = True
    assert host.memory_flags().lowvram
    args.novram, args.cpu, args.force_fp32 = False, True, True
    flags = host.memory_flags()
    assert flags.use_cpu and flags.no_half and not flags.lowvram
    assert host.dtype() == torch.float32


def test_making_room_keeps_the_unet_neos_refiner_must_restore(
    webui: StubWebUI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neo's Refiner with "Reload state_dict Only" swapped the UNet's weights in place; its ``postprocess`` puts the
    main weights back by finding the UNet in ``current_loaded_models``. Making room for our post-pass meanwhile must
    leave that entry there (everything else may go), or Neo fails and keeps the refiner's weights in the main model."""
    from backend import memory_management
    from backend.patcher.unet import UnetPatcher
    from modules import sd_samplers_common, shared

    shared.opts.refiner_fast_sd = True
    unet, text_encoder = UnetPatcher("unet", 10), object()
    memory_management.load_models_gpu([text_encoder, unet])
    sd_samplers_common.ORIGINAL_CHECKPOINT = "main.safetensors"  # what apply_refiner leaves behind
    host_module = importlib.import_module("extension.webui.host")
    monkeypatch.setattr(host_module.WebUIHost, "free_device_memory", lambda self: 0)  # a full GPU
    host = host_module.WebUIHost()

    assert host.make_room(1 << 30) is host_module.FORGE_UNLOADED
    assert [entry.model for entry in memory_management.current_loaded_models] == [unet]
    assert ("unload_all_models",) not in memory_management.calls
    runner = built_txt2img(webui)
    shared.sd_model = importlib.import_module("modules.sd_models").StubSdModel()
    scripts_by_title(runner)["Refiner"].postprocess(None, None)  # Neo's restore: no UnboundLocalError
    assert sd_samplers_common.ORIGINAL_CHECKPOINT is None
    assert shared.sd_model.unet_weights == "main.safetensors"

    # without a pending restore, making room is Forge's: everything may be unloaded
    memory_management.load_models_gpu([unet])
    host.make_room(1 << 30)
    assert ("unload_all_models",) in memory_management.calls and memory_management.current_loaded_models == []


# --- the two refiners side by side ----------------------------------------------------------------------------------


def test_labels_elem_ids_and_infotext_keys_are_distinct(webui: StubWebUI) -> None:
    runner = built_txt2img(webui)
    scripts = scripts_by_title(runner)
    ours, neos = scripts["Refiner post-pass"], scripts["Refiner"]
    assert ours.section == neos.section == "accordions"

    def components(script: Any) -> list[Any]:
        return runner.inputs[script.args_from : script.args_to]

    def ids(script: Any) -> set[str]:  # an InputAccordion's id is the accordion's; its checkbox is "<id>-checkbox"
        return {i for c in components(script) for i in (c.elem_id, getattr(c, "accordion_id", None)) if i}

    our_ids, neo_ids = ids(ours), ids(neos)
    assert {"txt2img_enable", "txt2img_checkpoint", "txt2img_switch_at"} <= neo_ids
    assert not our_ids & neo_ids
    assert components(ours)[0].label == "Refiner post-pass (SDXL)" != components(neos)[0].label == "Refiner"
    our_keys = {str(field[1]) for field in ours.infotext_fields}
    assert not our_keys & NEO_KEYS  # never the key that switches Neo's Refiner on when pasted
    assert all(key.startswith("Refiner post-pass") for key in our_keys)


def test_pasting_one_refiners_infotext_does_not_enable_the_other(webui: StubWebUI) -> None:
    from modules import infotext_utils

    runner = built_txt2img(webui)
    scripts = scripts_by_title(runner)

    def enabled(script: Any, text: str) -> Any:
        params = infotext_utils.parse_generation_parameters(text)
        _component, target = script.infotext_fields[0]
        return target(params) if callable(target) else params.get(target)

    base = "a cat\nNegative prompt: blurry\nSteps: 3, Sampler: Euler, CFG scale: 6, Seed: 3, Size: 64x64"
    ours_only = base + ", Refiner post-pass: tiny-refiner, Refiner post-pass strength: 0.3"
    neo_only = base + ", Refiner: tiny-refiner [0123456789], Refiner switch at: 0.875"
    assert enabled(scripts["Refiner post-pass"], ours_only) is True
    assert enabled(scripts["Refiner"], ours_only) is False
    assert enabled(scripts["Refiner"], neo_only) is True
    assert enabled(scripts["Refiner post-pass"], neo_only) is False
    assert enabled(scripts["Refiner"], ours_only + ", Refiner: x, Refiner switch at: 0.8") is True


def test_both_refiners_on_each_runs_once(webui: StubWebUI, tiny: Any, tmp_path: Path, monkeypatch) -> None:
    """Both accordions on: Neo's Refiner switches checkpoints once during sampling (its keys), then our post-pass
    refines each finished image once (our keys); neither turns the other off, neither runs twice."""
    from modules import processing, sd_models, sd_samplers_common, shared

    monkeypatch.setenv("REIMAGINE_CONFIG_ROOT", str(tiny.config_root))
    shutil.copy(tiny.sdxl_refiner.safetensors, webui.checkpoints_dir / "tiny-refiner.safetensors")
    for name in ("base.safetensors", "neo-refiner.safetensors"):
        webui.add_checkpoint(name, name.encode() * 64)
    runner = built_txt2img(webui)
    scripts = scripts_by_title(runner)
    ours, neos = scripts["Refiner post-pass"], scripts["Refiner"]
    args = runner.default_script_args()
    args[neos.args_from : neos.args_from + 3] = [True, "neo-refiner.safetensors", 0.5]
    args[ours.args_from] = True
    args[ours.args_from + 1] = "tiny-refiner"
    engine = importlib.import_module("sd_webui_reimagine.engine.refiner")
    refine_calls: list[int] = []
    real_refine = engine.refine
    monkeypatch.setattr(engine, "refine", lambda *a, **k: refine_calls.append(1) or real_refine(*a, **k))
    shared.sd_model = sd_models.StubSdModel(sd_models.checkpoints_list["base.safetensors"])
    p = processing.StableDiffusionProcessingTxt2Img(
        prompt="a cat",
        negative_prompt="blurry",
        seed=3,
        steps=4,
        cfg_scale=6.0,
        sampler_name="Euler",
        width=64,
        height=64,
        batch_size=2,
        outpath_samples=str(tmp_path / "samples"),
        outpath_grids=str(tmp_path / "grids"),
        do_not_save_samples=True,
    )
    processed = processed_with(p, runner, args)

    assert [call[0] for call in sd_samplers_common.calls] == ["apply_refiner"]  # once, mid-sampling
    assert len(refine_calls) == 2  # our post-pass: once per image, pixel mode
    for text in processed.infotexts:
        params = importlib.import_module("modules.infotext_utils").parse_generation_parameters(text)
        assert params["Refiner"] == "neo-refiner" and params["Refiner switch at"] == "0.5"
        assert params["Refiner post-pass"] == "tiny-refiner"
        assert "Refiner post-pass error" not in params
    assert shared.sd_model.sd_checkpoint_info.name == "neo-refiner.safetensors"  # until the next batch reloads


def test_a_video_base_is_not_refined_frame_by_frame(webui: StubWebUI, tmp_path: Path, monkeypatch) -> None:
    """Neo's Wan models make video: the batch is the frames of one video, assembled before postprocess_image
    (processing.py process_images_inner). The post-pass says why it does not run instead of refining frames."""
    from modules import infotext_utils, processing, sd_models, shared

    runner = built_txt2img(webui)
    ours = scripts_by_title(runner)["Refiner post-pass"]
    args = runner.default_script_args()
    args[ours.args_from : ours.args_from + 2] = [True, "some-refiner"]
    engine = importlib.import_module("sd_webui_reimagine.engine.refiner")
    monkeypatch.setattr(engine, "refine", lambda *a, **k: pytest.fail("a video frame was refined"))
    shared.sd_model = sd_models.StubSdModel()
    shared.sd_model.is_wan = True
    p = processing.StableDiffusionProcessingTxt2Img(
        prompt="a cat",
        seed=1,
        steps=2,
        width=64,
        height=64,
        batch_size=2,
        do_not_save_samples=True,
        outpath_samples=str(tmp_path),
        outpath_grids=str(tmp_path),
    )
    processed = processed_with(p, runner, args)
    params = infotext_utils.parse_generation_parameters(processed.infotexts[0])
    assert "makes video" in params["Refiner post-pass error"]
