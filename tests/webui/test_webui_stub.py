"""The WebUI stand-in behaves as docs/webui-contract.md says the WebUI does (so tests written against it mean something)."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from tests.webui_stub import fixture as webui_fixture
from tests.webui_stub.fixture import StubWebUI

webui = webui_fixture.webui  # fixtures (tests/conftest.py may re-export them too)
each_webui = webui_fixture.each_webui


def test_callbacks_signature_invokers_and_errors(webui: StubWebUI) -> None:
    from modules import errors, script_callbacks

    seen = []
    script_callbacks.on_ui_tabs(lambda: [("blocks", "Reimagine", "reimagine")], name="tab")
    script_callbacks.on_ui_tabs(lambda: None)
    script_callbacks.on_app_started(lambda demo, app: seen.append((demo, app)))
    script_callbacks.on_infotext_pasted(lambda text, params: params.update(Pasted=text))
    script_callbacks.on_script_unloaded(lambda: 1 / 0)
    with pytest.raises(TypeError):
        script_callbacks.on_ui_settings(lambda: None, "positional name")  # name is keyword-only

    assert script_callbacks.ui_tabs_callback() == [("blocks", "Reimagine", "reimagine")]
    script_callbacks.app_started_callback(None, "app")
    assert seen == [(None, "app")]
    params: dict = {}
    script_callbacks.infotext_pasted_callback("x", params)
    assert params == {"Pasted": "x"}
    script_callbacks.script_unloaded_callback()  # raises inside: reported, not propagated
    assert any("script_unloaded" in message for message in errors.reported)
    assert webui.callbacks("ui_tabs")[0].name == "base/test_webui_stub.py/ui_tabs/tab"
    script_callbacks.clear_callbacks()
    assert script_callbacks.ui_tabs_callback() == []


def test_state_and_progress(webui: StubWebUI) -> None:
    from modules import progress, shared

    state = shared.state
    state.begin(job="task(abc)")
    assert (state.job_count, state.job, state.interrupted) == (-1, "task(abc)", False)
    progress.add_task_to_queue("task(abc)")
    progress.start_task("task(abc)")
    assert progress.progressapi({"id_task": "task(abc)"}).progress == 0  # 0 while job_count <= 0
    state.job_count, state.sampling_steps, state.sampling_step = 4, 10, 5
    state.nextjob()
    state.sampling_step = 5
    assert progress.progressapi({"id_task": "task(abc)"}).progress == pytest.approx(1 / 4 + 0.5 / 4)
    state.interrupt()
    state.skip()
    state.stop_generating()
    assert state.interrupted and state.skipped and state.stopping_generation
    state.assign_current_image(Image.new("RGB", (8, 8)))
    assert state.id_live_preview == 1
    progress.finish_task("task(abc)")
    state.end()
    assert progress.progressapi({"id_task": "task(abc)"}).active is False
    assert [call[0] for call in state.calls] == [
        "begin",
        "nextjob",
        "interrupt",
        "skip",
        "stop_generating",
        "assign_current_image",
        "end",
    ]


def test_wrap_gradio_gpu_call(webui: StubWebUI) -> None:
    from modules import call_queue, shared

    def job(id_task, value):
        assert shared.state.job == id_task
        shared.state.interrupted = True
        return ["gallery", "{}", f"<p>{value}</p>"]

    wrapped = call_queue.wrap_gradio_gpu_call(job, extra_outputs=[None, "", ""])
    gallery, info, html = wrapped("task(1)", "ok")
    assert (gallery, info) == ("gallery", "{}")
    assert html.startswith("<p>ok</p><div class='performance'>") and "Time taken" in html
    assert shared.state.interrupted is False and shared.state.job_count == 0  # reset afterwards
    assert ("begin", "task(1)") in shared.state.calls

    def failing(id_task):
        raise ValueError("bad <input>")

    res = call_queue.wrap_gradio_gpu_call(failing, extra_outputs=[None, "", ""])("task(2)")
    assert res[:3] == (None, "", "")
    assert res[3].startswith("<div class='error'>ValueError: bad &lt;input&gt;</div>")


def test_options(webui: StubWebUI) -> None:
    from modules import shared

    changed = []
    info = (
        shared.OptionInfo(
            "subtle", "Default noise preset", section=("reimagine", "Reimagine"), onchange=lambda: changed.append(1)
        )
        .info("hint")
        .needs_reload_ui()
    )
    shared.opts.add_option("reimagine_preset", info)
    assert shared.opts.reimagine_preset == "subtle"
    assert "(hint)" in info.comment_after and "Reload UI" in info.comment_after
    assert shared.opts.set("reimagine_preset", "strong") and changed == [1]
    assert shared.opts.data["reimagine_preset"] == "strong"
    shared.opts.onchange("reimagine_preset", lambda: changed.append(2))
    assert changed == [1, 2]
    assert (shared.opts.samples_save, shared.opts.samples_format, shared.opts.enable_pnginfo) == (True, "png", True)
    assert shared.opts.outdir_samples == ""
    assert shared.cmd_opts.api_auth is None
    if webui.is_neo:  # Neo: --ckpt-dirs (append) replaced --ckpt-dir (sd_models.py iterates cmd_opts.ckpt_dirs)
        assert shared.cmd_opts.ckpt_dirs == [] and not hasattr(shared.cmd_opts, "ckpt_dir")
    else:
        assert shared.cmd_opts.ckpt_dir is None


def test_save_image_writes_parameters_chunk(webui: StubWebUI, tmp_path: Path) -> None:
    from modules import images, script_callbacks, shared

    script_callbacks.on_before_image_saved(lambda params: params.pnginfo.update(extra="yes"))
    image = Image.new("RGB", (16, 16), "red")
    fullfn, txt = images.save_image(
        image, str(tmp_path), "", seed=42, prompt="a cat", info="a cat\nSteps: 2, Seed: 42, Size: 16x16"
    )
    assert txt is None
    assert Path(fullfn).parent.parent == tmp_path  # save_to_dirs: [date] subfolder
    assert Path(fullfn).name == "00000-42.png"
    with Image.open(fullfn) as saved:
        assert saved.info["parameters"] == "a cat\nSteps: 2, Seed: 42, Size: 16x16"
        assert saved.info["extra"] == "yes"
    assert image.already_saved_as == fullfn
    shared.opts.save_to_dirs = False
    second, _ = images.save_image(image, str(tmp_path / "flat"), "", seed=43, prompt="a cat", info="x")
    assert Path(second).name == "00000-43-a cat.png"
    third, _ = images.save_image(image, str(tmp_path / "flat"), "", seed=44, prompt="a cat", info="x")
    assert Path(third).name == "00001-44-a cat.png"
    assert images.read_info_from_image(Image.open(second))[0] == "x"


def test_infotext_round_trip(webui: StubWebUI) -> None:
    from modules import infotext_utils, processing

    p = processing.StableDiffusionProcessingTxt2Img(
        prompt="a cat, sitting",
        negative_prompt="blurry",
        seed=7,
        steps=3,
        cfg_scale=5.0,
        width=64,
        height=64,
        sampler_name="Euler a",
        scheduler="Automatic",
        batch_size=2,
    )
    p.extra_generation_params["Refiner post-pass"] = "sdxl_refiner, strength 0.3"
    p.extra_generation_params["Per image"] = ["a", "b"]
    p.extra_generation_params["Computed"] = lambda p, index, **kw: f"#{index}"
    p.setup_prompts()
    p.all_seeds, p.all_subseeds = [7, 8], [1, 2]
    text = processing.create_infotext(p, p.all_prompts, p.all_seeds, p.all_subseeds, index=1)
    assert text.startswith("a cat, sitting\nNegative prompt: blurry\nSteps: 3, Sampler: Euler a")
    assert 'Refiner post-pass: "sdxl_refiner, strength 0.3"' in text
    params = infotext_utils.parse_generation_parameters(text)
    assert params["Prompt"] == "a cat, sitting" and params["Negative prompt"] == "blurry"
    assert params["Seed"] == "8" and params["Size-1"] == "64" and params["Size-2"] == "64"
    assert params["Refiner post-pass"] == "sdxl_refiner, strength 0.3"
    assert params["Per image"] == "b" and params["Computed"] == "#1"
    assert params["Schedule type"] == "Automatic" and params["Version"] == processing.program_version()
    from modules import generation_parameters_copypaste

    assert generation_parameters_copypaste is infotext_utils


class _Recorder:
    """Builds an AlwaysVisible Script class that records hooks and replaces the images."""

    @staticmethod
    def script_class(scripts, calls):
        class Recorder(scripts.Script):
            def title(self):
                return "Recorder"

            def show(self, is_img2img):
                return scripts.AlwaysVisible

            def setup(self, p, enabled):
                calls.append("setup")

            def process(self, p, enabled):
                calls.append("process")
                if enabled:
                    p.extra_generation_params["Recorder"] = "on"

            def process_batch(self, p, enabled, **kwargs):
                calls.append(f"process_batch {kwargs['batch_number']}")

            def post_sample(self, p, ps, enabled):
                calls.append(f"post_sample {tuple(ps.samples.shape) if hasattr(ps.samples, 'shape') else 'decoded'}")

            def postprocess_batch_list(self, p, pp, enabled, **kwargs):
                calls.append("postprocess_batch_list")

            def postprocess_image(self, p, pp, enabled):
                calls.append("postprocess_image")
                if enabled:
                    pp.image = Image.new("RGB", pp.image.size, "blue")

            def postprocess(self, p, processed, enabled):
                calls.append("postprocess")

        return Recorder


def test_process_images_runs_hooks_in_webui_order(each_webui: StubWebUI, tmp_path: Path) -> None:
    from modules import processing, scripts, sd_models, shared

    shared.sd_model = sd_models.StubSdModel()  # F: would be a FakeInitialModel until the first generation

    calls: list[str] = []
    scripts.scripts_data.append(
        scripts.ScriptClassData(_Recorder.script_class(scripts, calls), "recorder.py", "", None)
    )
    runner = each_webui.script_runner()
    (script,) = runner.alwayson_scripts
    script.args_from, script.args_to = 1, 2

    p = processing.StableDiffusionProcessingTxt2Img(
        prompt="x",
        seed=3,
        steps=2,
        width=64,
        height=32,
        batch_size=2,
        n_iter=1,
        outpath_samples=str(tmp_path / "samples"),
        outpath_grids=str(tmp_path / "grids"),
    )
    p.scripts = runner
    p.script_args = [0, True]
    shared.state.begin(job="test")
    processed = processing.process_images(p)
    shared.state.end()

    assert calls == [
        "setup",
        "process",
        "process_batch 0",
        "post_sample (2, 4, 4, 8)",
        "postprocess_batch_list",
        "postprocess_image",
        "postprocess_image",
        "postprocess",
    ]
    assert len(processed.images) == 3 and processed.index_of_first_image == 1  # grid first
    assert all(image.getpixel((0, 0)) == (0, 0, 255) for image in processed.images[1:])
    assert "Recorder: on" in processed.infotexts[1]
    assert len(list((tmp_path / "grids").rglob("*.png"))) == 1
    saved = sorted((tmp_path / "samples").rglob("*.png"))
    assert len(saved) == 2 and Image.open(saved[0]).getpixel((0, 0)) == (0, 0, 255)  # the replaced image is saved
    assert p.sd_model.decode_calls == 2  # decode_latent_batch: one VAE decode per image (processing.py:631)

    calls.clear()
    hires = processing.StableDiffusionProcessingTxt2Img(
        prompt="x", steps=1, width=64, height=64, enable_hr=True, hr_scale=2, do_not_save_samples=True
    )
    hires.scripts = runner
    hires.script_args = [0, False]
    processing.process_images(hires)
    assert "post_sample decoded" in calls  # with Hires fix, post_sample gets decoded images
    assert hires.extra_generation_params["Hires upscale"] == 2


def test_postprocess_image_args_differ_by_flavour(each_webui: StubWebUI) -> None:
    from modules import scripts

    image = Image.new("RGB", (4, 4))
    if each_webui.is_forge:
        assert scripts.PostprocessImageArgs(image, 3).index == 3
        with pytest.raises(TypeError):
            scripts.PostprocessImageArgs(image)
    else:
        assert scripts.PostprocessImageArgs(image).image is image
        with pytest.raises(TypeError):
            scripts.PostprocessImageArgs(image, 3)


def test_model_memory_calls(each_webui: StubWebUI) -> None:
    import torch
    from modules import devices, sd_models, shared

    each_webui.add_checkpoint("base.safetensors")
    assert sd_models.checkpoint_tiles() == ["base.safetensors"]
    assert sd_models.get_closet_checkpoint_match("base").name_for_extra == "base"
    model = sd_models.StubSdModel(sd_models.checkpoints_list["base.safetensors"])
    shared.sd_model = model
    if each_webui.is_neo:
        # Neo's sd_models.py (030519a0) has no send_model_to_cpu/device/trash, reload_model_weights
        for gone in ("send_model_to_cpu", "send_model_to_device", "send_model_to_trash", "reload_model_weights"):
            assert not hasattr(sd_models, gone), gone
        sd_models.unload_model_weights()
        from backend import memory_management

        assert [c[0] for c in memory_management.calls][:2] == ["unload_all_models", "free_memory"]
        return
    sd_models.send_model_to_cpu(model)
    sd_models.send_model_to_device(model)
    sd_models.unload_model_weights()
    expected = ["send_model_to_cpu", "send_model_to_device", "unload_model_weights"]
    if not each_webui.is_forge:
        expected.append("send_model_to_cpu")  # A1111: unload_model_weights = send_model_to_cpu
    assert [call[0] for call in sd_models.calls if call[0] != "list_models"] == expected
    if each_webui.is_forge:
        from backend import memory_management

        assert model.moves == []  # F: no-ops
        assert ("unload_all_models",) in memory_management.calls
        assert isinstance(sd_models.FakeInitialModel(), sd_models.FakeInitialModel)
    else:
        assert model.moves == [torch.device("cpu"), devices.device, torch.device("cpu")]
        with pytest.raises(ImportError):
            import backend  # noqa: F401  -- only Forge has it


@pytest.mark.parametrize("webui", ["a1111"], indirect=True)
def test_safe_torch_load(webui: StubWebUI, tmp_path: Path) -> None:
    import torch
    from modules import errors

    assert webui.patch_torch_load()
    legacy = tmp_path / "legacy.ckpt"  # the layout A1111's allow-list knows
    buffer = io.BytesIO()
    torch.save({"state_dict": {"w": torch.ones(2)}}, buffer)
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(legacy, "w") as target:
        for item in source.namelist():
            if item.split("/", 1)[1] in ("data.pkl", "version", "byteorder") or "/data/" in item:
                target.writestr(item, source.read(item))
    assert torch.load(legacy, weights_only=False)["state_dict"]["w"].sum() == 2

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(b"".join(pickle.dumps(x) for x in (Evil(), 1, 2, 3, 4)))
    assert torch.load(evil) is None  # rejected: reported, None returned, nothing executed
    assert any("may be malicious" in message for message in errors.reported)
    modern = tmp_path / "modern.ckpt"  # torch >= 2.x archives have entries A1111 1.10.1 does not allow
    torch.save({"w": torch.ones(2)}, modern)
    with zipfile.ZipFile(modern) as archive:  # torch >= 2.4 writes records A1111's check does not know
        newer_records = any(name.endswith((".format_version", ".storage_alignment")) for name in archive.namelist())
    loaded = torch.load(modern, weights_only=True)
    assert (loaded is None) if newer_records else (loaded["w"].sum() == 2)
    webui.deactivate()
    assert torch.load.__module__.startswith("torch")  # restored
    assert torch.load(modern, weights_only=True)["w"].sum() == 2


@pytest.mark.parametrize("webui", ["forge"], indirect=True)
def test_forge_does_not_patch_torch_load(webui: StubWebUI) -> None:
    import torch

    assert webui.patch_torch_load() is False
    assert torch.load.__module__.startswith("torch")


def test_gradio_components_build(each_webui: StubWebUI) -> None:
    import gradio as gr
    from modules import infotext_utils, ui_common, ui_components

    with gr.Blocks():
        with ui_components.InputAccordion(False, label="Refiner post-pass", elem_id="reimagine_refiner") as acc:
            with acc.extra():
                ui_components.FormHTML(value="x")
            with ui_components.FormRow():
                dropdown = gr.Dropdown(choices=["a"], value="a", label="Model")
                button = ui_common.create_refresh_button(
                    dropdown, lambda: None, lambda: {"choices": ["a", "b"]}, "reimagine_refresh"
                )
        panel = ui_common.create_output_panel("reimagine", "outputs")
    assert acc.accordion_id == "reimagine_refiner" and acc.value is False
    assert panel.gallery.elem_id == "reimagine_gallery"
    assert panel.generation_info is not None and panel.infotext is not None and panel.html_log is not None
    assert {b.tabname for b in infotext_utils.registered_param_bindings} == {"img2img", "inpaint", "extras"}
    button.refresh()
    assert dropdown.choices in (["a", "b"], [("a", "a"), ("b", "b")])
