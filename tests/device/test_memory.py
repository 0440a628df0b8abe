"""The memory plan (extension/device/memory.py): the plan table, the WebUI flag mapping, apply_plan on a tiny pipeline.

Oracles: the expected plans are written from the stated goals (unCLIP-H 768² fits 4 GB with --lowvram and 6 GB
with --medvram; the refiner at 1024² fits 6 GB with --medvram-sdxl and does not fit 8 GB resident) and from the
WebUI's documented flag semantics (A1111 ``modules/lowvram.py``: ``--medvram-sdxl`` applies only to SDXL models);
parameter counts are re-counted from the bundled configs with diffusers'/transformers' own classes; apply_plan is
checked by counting real calls of diffusers' methods and by comparing with the un-offloaded pipeline's output.
"""

from __future__ import annotations

import argparse
import logging

import pytest
import torch

from extension.device import memory
from extension.device.memory import Job, MemoryFlags, apply_plan, flags_from_args, plan

GB = 1024**3
F = MemoryFlags
NONE = F()

# (total GiB, flags, job) -> (mode, vae_slicing, vae_tiling, dtype, vae_dtype)
H768 = Job("unclip-h", 768, 768, 1)
R1024 = Job("refiner", 1024, 1024, 1)
F16, F32, BF16 = torch.float16, torch.float32, torch.bfloat16
TABLE = [
    # the goals: unCLIP-H 768² on 4 GB with --lowvram, on 6 GB with --medvram; lowvram streams weights, tiles the VAE
    (4, F(lowvram=True), H768, ("sequential_offload", False, True, F16, F16)),
    (6, F(medvram=True), H768, ("model_offload", False, False, F16, F16)),
    # --medvram-sdxl is for SDXL models only (A1111 lowvram.is_needed): unCLIP-H on 6 GB stays resident (3.6 GiB fp16)
    (6, F(medvram_sdxl=True), H768, ("resident", False, False, F16, F16)),
    (12, NONE, H768, ("resident", False, False, F16, F16)),
    (24, NONE, H768, ("resident", False, False, F16, F16)),
    # unCLIP-H weights alone (~3.6 GiB fp16) do not fit 4 GB next to the reserve: one component at a time
    (4, NONE, H768, ("model_offload", False, False, F16, F16)),
    # the refiner: UNet 4.2 GiB + text encoder 1.3 GiB + a whole fp32-upcast VAE decode at 1024² (~3 GiB) do not
    # fit 8 GB together; the weights and a tiled decode do. On 6 GB only one component at a time fits.
    (8, NONE, R1024, ("resident", False, True, F16, F32)),
    (6, NONE, R1024, ("model_offload", False, False, F16, F32)),
    (6, F(medvram_sdxl=True), R1024, ("model_offload", False, False, F16, F32)),
    (24, NONE, R1024, ("resident", False, False, F16, F32)),  # SDXL VAE: force_upcast -> budgeted in fp32
    (24, F(no_half=True), R1024, ("resident", False, False, F32, F32)),
    (4, F(lowvram=True), R1024, ("sequential_offload", False, True, F16, F32)),
    (12, F(lowvram=True), R1024, ("sequential_offload", False, True, F16, F32)),  # the flag wins over the size
    # large outputs: the refiner's fp32 2048² decode (~12 GiB) does not fit 12 GB next to its weights -> tiles;
    # unCLIP-H at 2048² on 6 GB: its UNet's activations alone (~4 GiB) leave no room for whole components
    (12, NONE, Job("refiner", 2048, 2048, 1), ("resident", False, True, F16, F32)),
    (24, NONE, Job("unclip-h", 2048, 2048, 1), ("resident", False, False, F16, F16)),
    (6, NONE, Job("unclip-h", 2048, 2048, 1), ("sequential_offload", False, True, F16, F16)),
    # a refiner batch of 4 at 1024² with --medvram-sdxl on 12 GB: the batch's fp32 decode (~12 GiB) does not fit,
    # one image's (~3 GiB) does -> slicing
    (12, F(medvram_sdxl=True), Job("refiner", 1024, 1024, 4), ("model_offload", True, False, F16, F32)),
    # Forge --always-gpu: resident even where it would not fit; the decode then must tile
    (4, F(always_gpu=True), R1024, ("resident", False, True, F16, F32)),
    # precision flags
    (24, F(no_half_vae=True), H768, ("resident", False, False, F16, F32)),
    (24, F(bf16=True), H768, ("resident", False, False, BF16, BF16)),
    (24, F(bf16=True), R1024, ("resident", False, False, BF16, BF16)),  # bf16 does not overflow: no upcast
    (24, F(use_cpu=True), H768, ("cpu", False, False, F32, F32)),
]


@pytest.mark.parametrize(("total", "flags", "job", "expected"), TABLE)
def test_plan_table(total, flags, job, expected):
    result = plan(total * GB, total * GB, flags, job)
    got = (result.mode, result.vae_slicing, result.vae_tiling, result.dtype, result.vae_dtype)
    assert got == expected, result.describe()
    if result.mode != "cpu" and not flags.always_gpu:
        assert result.estimate <= result.budget, result.describe()  # what the plan promises, it fits


def test_no_accelerator_runs_on_the_cpu():
    result = plan(None, None, NONE, H768)
    assert (result.mode, result.device, result.dtype) == ("cpu", "cpu", torch.float32)
    assert set(result.components.values()) == {"cpu"}


def test_free_memory_decides_not_the_card_size():
    # a 24 GB card with 3 GB free (the WebUI's model sits there): unCLIP-H cannot stay resident
    assert plan(24 * GB, 3 * GB, NONE, H768).mode == "model_offload"


def test_components_follow_the_mode():
    h = plan(6 * GB, 6 * GB, F(medvram=True), H768)
    assert h.components == dict.fromkeys(("unet", "text_encoder", "image_encoder", "vae"), "offload")
    r = plan(24 * GB, 24 * GB, NONE, R1024)
    assert r.components == dict.fromkeys(("unet", "text_encoder_2", "vae"), "device")


def test_bad_job_and_kind():
    with pytest.raises(ValueError, match="positive"):
        plan(8 * GB, 8 * GB, NONE, Job("unclip-h", 0, 768))
    with pytest.raises(ValueError, match="Unknown model kind"):
        plan(8 * GB, 8 * GB, NONE, Job("sd15"))


def test_parameter_counts_match_the_bundled_configs():
    """PARAMS against diffusers'/transformers' own classes built from extension/configs on the meta device."""
    from pathlib import Path

    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    root = Path(memory.__file__).parent.parent / "configs"
    folders = {"unclip-h": "unclip-h", "unclip-l": "unclip-l", "refiner": "sdxl-refiner", "base": "sdxl-base"}
    for kind, counts in memory.PARAMS.items():
        for name, count in counts.items():
            path = root / folders[kind] / name
            with init_empty_weights():
                if name == "unet":
                    model = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(path))
                elif name == "vae":
                    model = AutoencoderKL.from_config(AutoencoderKL.load_config(path))
                elif name == "image_encoder":
                    model = CLIPVisionModelWithProjection(CLIPVisionConfig.from_pretrained(path))
                elif name == "text_encoder_2":
                    model = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(path))
                else:
                    model = CLIPTextModel(CLIPTextConfig.from_pretrained(path))
            assert sum(p.numel() for p in model.parameters()) == count, (kind, name)


# --- the WebUI's flags -----------------------------------------------------------------------------------------------


def a1111_parser() -> argparse.ArgumentParser:
    """The memory/precision arguments of A1111 v1.10.1 ``modules/cmd_args.py`` (names, actions, defaults)."""
    p = argparse.ArgumentParser()
    for name in ("--medvram", "--medvram-sdxl", "--lowvram", "--no-half", "--no-half-vae", "--upcast-sampling"):
        p.add_argument(name, action="store_true")
    p.add_argument("--precision", type=str, choices=["full", "autocast"], default="autocast")
    p.add_argument("--use-cpu", nargs="+", default=[], type=str.lower)
    return p


def forge_parser() -> argparse.ArgumentParser:
    """The memory/precision arguments of Forge ``backend/args.py``."""
    p = argparse.ArgumentParser()
    vram = p.add_mutually_exclusive_group()
    for name in ("gpu", "high-vram", "normal-vram", "low-vram", "no-vram", "cpu"):
        vram.add_argument(f"--always-{name}", action="store_true")
    fp = p.add_mutually_exclusive_group()
    fp.add_argument("--all-in-fp32", action="store_true")
    fp.add_argument("--all-in-fp16", action="store_true")
    unet = p.add_mutually_exclusive_group()
    unet.add_argument("--unet-in-bf16", action="store_true")
    unet.add_argument("--unet-in-fp16", action="store_true")
    vae = p.add_mutually_exclusive_group()
    vae.add_argument("--vae-in-fp16", action="store_true")
    vae.add_argument("--vae-in-fp32", action="store_true")
    vae.add_argument("--vae-in-bf16", action="store_true")
    p.add_argument("--always-offload-from-vram", action="store_true")
    p.add_argument("--pin-shared-memory", action="store_true")
    return p


A1111_CASES = [
    ([], NONE),
    (["--medvram"], F(medvram=True)),
    (["--medvram-sdxl"], F(medvram_sdxl=True)),
    (["--lowvram"], F(lowvram=True)),
    (["--no-half"], F(no_half=True)),
    (["--precision", "full"], F(no_half=True)),
    (["--no-half-vae", "--upcast-sampling"], F(no_half_vae=True, upcast_sampling=True)),
    (["--use-cpu", "all"], F(use_cpu=True)),
    (["--use-cpu", "SD"], F(use_cpu=True)),
    (["--use-cpu", "interrogate"], NONE),  # another module on the CPU, not ours
]


@pytest.mark.parametrize(("argv", "expected"), A1111_CASES)
def test_a1111_flags(argv, expected):
    assert flags_from_args(a1111_parser().parse_args(argv)) == expected


FORGE_CASES = [
    ([], NONE),
    (["--always-low-vram"], F(lowvram=True)),
    (["--always-no-vram"], F(lowvram=True)),
    (["--always-offload-from-vram"], F(medvram=True)),
    (["--always-gpu"], F(always_gpu=True)),
    (["--always-high-vram"], F(always_gpu=True)),
    (["--always-cpu"], F(use_cpu=True)),
    (["--pin-shared-memory"], F(pin_memory=True)),
    (["--all-in-fp32"], F(no_half=True)),
    (["--unet-in-bf16"], F(bf16=True)),
    (["--vae-in-fp32"], F(no_half_vae=True)),
]


@pytest.mark.parametrize(("argv", "expected"), FORGE_CASES)
def test_forge_flags(argv, expected):
    # Forge also parses A1111's flags (its modules/cmd_args.py): both namespaces together
    assert flags_from_args(a1111_parser().parse_args([]), forge_parser().parse_args(argv)) == expected


def neo_parser() -> argparse.ArgumentParser:
    """The memory/precision arguments of Forge Neo's ``backend/args.py`` (branch neo, commit 089030f1), ComfyUI's
    names; Neo's ``shared.cmd_opts`` has no --medvram/--precision/--no-half-vae (its parser is this one)."""
    p = argparse.ArgumentParser()
    vram = p.add_mutually_exclusive_group()
    for name in ("gpu-only", "highvram", "normalvram", "lowvram", "novram", "cpu"):
        vram.add_argument(f"--{name}", action="store_true")
    fp = p.add_mutually_exclusive_group()
    fp.add_argument("--force-fp32", action="store_true")
    fp.add_argument("--force-fp16", action="store_true")
    unet = p.add_mutually_exclusive_group()
    for name in ("fp32-unet", "bf16-unet", "fp16-unet"):
        unet.add_argument(f"--{name}", action="store_true")
    vae = p.add_mutually_exclusive_group()
    for name in ("fp32-vae", "bf16-vae", "fp16-vae"):
        vae.add_argument(f"--{name}", action="store_true")
    for name in ("cpu-vae", "disable-smart-memory", "pin-shared-memory"):
        p.add_argument(f"--{name}", action="store_true")
    p.add_argument("--reserve-vram", type=float, default=None)
    return p


NEO_CASES = [
    ([], NONE),
    (["--normalvram", "--reserve-vram", "1.5", "--cpu-vae"], NONE),
    (["--lowvram"], F(lowvram=True)),
    (["--novram"], F(lowvram=True)),
    (["--disable-smart-memory"], F(medvram=True)),
    (["--gpu-only"], F(always_gpu=True)),
    (["--highvram"], F(always_gpu=True)),
    (["--cpu"], F(use_cpu=True)),
    (["--pin-shared-memory"], F(pin_memory=True)),
    (["--force-fp32"], F(no_half=True)),
    (["--fp32-unet"], F(no_half=True)),
    (["--bf16-unet"], F(bf16=True)),
    (["--bf16-vae"], F(bf16=True)),
    (["--fp32-vae"], F(no_half_vae=True)),
]


@pytest.mark.parametrize(("argv", "expected"), NEO_CASES)
def test_neo_flags(argv, expected):
    # Neo: cmd_opts and backend.args.args come from the same parser; our host passes both
    namespace = neo_parser().parse_args(argv)
    assert flags_from_args(namespace, namespace) == expected


def test_flags_from_a_namespace_missing_fields():
    assert flags_from_args(argparse.Namespace()) == NONE
    assert flags_from_args(None, None, bf16=True) == F(bf16=True)


# --- apply_plan on a tiny pipeline ------------------------------------------------------------------------------


class Spy:
    """Counts real calls of a pipeline method (the method still runs)."""

    def __init__(self, monkeypatch, owner, name):
        self.calls = []
        original = getattr(owner, name)

        def spy(*args, **kwargs):
            self.calls.append((args, kwargs))
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, spy)


def _plan(mode, **kw):
    return memory.MemoryPlan(mode, "cpu" if mode == "cpu" else "cuda", torch.float32, torch.float32, **kw)


@pytest.fixture
def refiner_pipe(tiny):
    from extension.loading import load_sdxl

    return load_sdxl(tiny.sdxl_refiner.folder, role="refiner")


def _run(pipe):
    image = torch.full((1, 3, 64, 64), 0.5)
    return pipe(
        prompt="a cat",
        image=image,
        strength=0.5,
        num_inference_steps=4,
        generator=torch.Generator().manual_seed(1),
        output_type="pt",
    ).images


@torch.no_grad()
def _unet_and_vae(pipe):
    """One UNet call and one VAE decode on fixed inputs (no text encoder)."""
    g = torch.Generator().manual_seed(2)
    latents = torch.randn(1, 4, 8, 8, generator=g)
    cfg = pipe.unet.config
    hidden = torch.randn(1, 77, cfg.cross_attention_dim, generator=g)
    added = {
        "text_embeds": torch.randn(1, pipe.text_encoder_2.config.projection_dim, generator=g),
        "time_ids": torch.tensor([[64.0, 64.0, 0.0, 0.0, 6.0]]),
    }
    noise = pipe.unet(latents, 10, encoder_hidden_states=hidden, added_cond_kwargs=added).sample
    return noise, pipe.vae.decode(latents).sample


@pytest.mark.parametrize(
    ("mode", "method"),
    [("model_offload", "enable_model_cpu_offload"), ("sequential_offload", "enable_sequential_cpu_offload")],
)
def test_apply_plan_calls_diffusers_offload_and_keeps_the_result(refiner_pipe, monkeypatch, mode, method):
    pipe = refiner_pipe
    plain_pixels = _run(pipe) if mode == "model_offload" else None
    plain_parts = _unet_and_vae(pipe)
    cls = type(pipe)
    spies = {method: Spy(monkeypatch, cls, method)}
    for feature in ("tiling", "slicing"):  # the VAE's own: diffusers deprecated the pipelines' enable_vae_* (0.37)
        spies[feature] = Spy(monkeypatch, type(pipe.vae), f"enable_{feature}")
    apply_plan(pipe, _plan(mode, vae_tiling=True, vae_slicing=True), "cpu")
    assert len(spies[method].calls) == 1
    assert spies[method].calls[0][1]["device"] == torch.device("cpu")
    assert len(spies["tiling"].calls) == 1 and len(spies["slicing"].calls) == 1
    assert pipe.vae.use_tiling and pipe.vae.use_slicing
    assert hasattr(pipe.unet, "_hf_hook")  # accelerate's hook is really in place
    apply_plan(pipe, _plan(mode, vae_tiling=True, vae_slicing=True), "cpu")  # same plan again: nothing re-done
    assert len(spies[method].calls) == 1
    # 64² is below the VAE's tile size, so tiling does not change the decode: the same image as without a plan.
    # Sequential offload cannot *run* with the CPU as its execution device: accelerate's hook puts a weight back as a
    # plain tensor on the second call (TypeError in set_module_tensor_to_device, accelerate 0.21 and 0.31 with torch
    # 2.14); that mode's output is checked on CUDA by bench/gpu_check.py, here only that it is installed.
    if mode == "model_offload":
        torch.testing.assert_close(_run(pipe), plain_pixels)
        torch.testing.assert_close(_unet_and_vae(pipe), plain_parts)
    else:
        assert pipe.unet.conv_in.weight.device.type == "meta"  # the weights live in accelerate's hooks now


def test_apply_plan_resident_and_back_from_model_offload(refiner_pipe, monkeypatch):
    pipe = refiner_pipe
    remove = Spy(monkeypatch, type(pipe), "remove_all_hooks")
    apply_plan(pipe, _plan("model_offload"), "cpu")
    apply_plan(pipe, _plan("resident"), "cpu")
    assert len(remove.calls) >= 2  # enable_model_cpu_offload removes old hooks too; then ours
    assert not hasattr(pipe.unet, "_hf_hook") or pipe.unet._hf_hook is None
    assert not pipe.vae.use_tiling and not pipe.vae.use_slicing


def test_sequential_offload_cannot_be_undone_in_place(refiner_pipe):
    apply_plan(refiner_pipe, _plan("sequential_offload"), "cpu")
    with pytest.raises(ValueError, match="reload"):
        apply_plan(refiner_pipe, _plan("resident"), "cpu")


def test_decide_logs_the_plan_at_debug(caplog):
    with caplog.at_level(logging.DEBUG, logger="extension.device.memory"):
        result = memory.decide("cpu", NONE, H768)
    assert result.mode == "cpu"
    assert any("memory plan for unclip-h 768x768 x1: cpu on cpu" in r.getMessage() for r in caplog.records)


# --- precision: no black image from the unCLIP engine's decode -------------------------------------------------


def test_unclip_decode_retries_an_fp16_overflow_in_fp32(tiny, cpu_fp16):
    """A half-precision VAE whose decoder overflows (NaN, simulated with a forward hook on the tiny VAE) must still
    give the image an fp32 decode gives — the WebUI's answer to a NaN VAE (A1111 ``modules/devices.py``)."""
    from extension.engine.unclip import decode
    from extension.loading import load_unclip

    pipe = load_unclip(tiny.unclip_h.folder)
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    pipe.vae.to(torch.float16).to(torch.float32)  # the fp16 weights, decoded in fp32: no overflow
    expected = decode(pipe, latents)[0]
    pipe.vae.to(torch.float16)
    seen: list[torch.dtype] = []

    def overflow(_module, _args, output):
        seen.append(output.dtype)
        return torch.full_like(output, float("nan")) if output.dtype == torch.float16 else output

    pipe.vae.decoder.register_forward_hook(overflow)
    image = decode(pipe, latents)[0]
    assert seen == [torch.float16, torch.float32]
    assert pipe.vae.dtype == torch.float16  # put back afterwards
    assert image.tobytes() == expected.tobytes()


def test_loaded_pipelines_use_sdpa_attention(tiny):
    """Speed where it is free: every attention layer runs PyTorch SDPA (diffusers' ``AttnProcessor2_0``)."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    from extension.loading import load_sdxl, load_unclip

    for pipe in (load_unclip(tiny.unclip_h.folder), load_sdxl(tiny.sdxl_refiner.folder, role="refiner")):
        processors = list(pipe.unet.attn_processors.values()) + list(pipe.vae.attn_processors.values())
        assert processors and all(isinstance(p, AttnProcessor2_0) for p in processors)


# --- the WebUI host follows the flags ---------------------------------------------------------------------------


def test_webui_host_reads_the_flags_and_prints_the_plan(webui, capsys):
    """``--medvram --no-half-vae`` in the WebUI's ``shared.cmd_opts`` reach the plan; the plan is printed to the
    WebUI's console (its logging stays at WARNING by default), once per new plan, not again for the same one."""
    import importlib
    from pathlib import Path

    webui.load_scripts()
    from modules import shared

    shared.cmd_opts.medvram = True
    shared.cmd_opts.no_half_vae = True
    core = importlib.import_module("sd_webui_reimagine.webui.host")
    host = core.shared_host()
    flags = host.memory_flags()
    assert (flags.medvram, flags.no_half_vae, flags.lowvram) == (True, True, False)
    choice = importlib.import_module("sd_webui_reimagine.loading.discovery").ModelChoice(
        "m", "unclip-h", "m.safetensors", Path("/models/m.safetensors")
    )
    capsys.readouterr()
    result = host.memory_plan(choice, "unclip")
    host.memory_plan(choice, "unclip")
    big = host.memory_plan(choice, "unclip", {"width": 1024, "height": 1024, "batch_size": 4})
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("sd-webui-reimagine: memory")]
    assert lines == [
        f"sd-webui-reimagine: memory plan m 768x768 x1: {result.describe()} [flags: --medvram, --no-half-vae]",
        f"sd-webui-reimagine: memory plan m 1024x1024 x4: {big.describe()} [flags: --medvram, --no-half-vae]",
    ]
    # the stand-in's device is the CPU: no GPU to plan for
    assert result.mode == "cpu"


# --- precision and speed-ups follow the plan ----------------------------------------------------------------------


def test_apply_plan_gives_the_vae_the_plans_dtype(refiner_pipe):
    """``--no-half-vae`` (and the SDXL VAE, which overflows in fp16): an fp16 pipeline's VAE becomes fp32."""
    pipe = refiner_pipe.to(torch.float16)
    fp16_plan = memory.MemoryPlan("resident", "cuda", torch.float16, torch.float32)
    apply_plan(pipe, fp16_plan, "cpu")
    assert pipe.vae.dtype == torch.float32 and pipe.unet.dtype == torch.float16
    assert all(p.dtype == torch.float32 for p in pipe.vae.parameters())


@pytest.mark.parametrize(
    ("mode", "device", "compile_unet", "expected"),
    [
        ("resident", "cuda", False, (True, False)),
        ("resident", "cuda", True, (True, True)),
        ("model_offload", "cuda", True, (True, False)),  # hooks and a compiled graph do not mix
        ("sequential_offload", "cuda", True, (False, False)),  # the weights live in accelerate's hooks
        ("cpu", "cpu", True, (False, False)),
    ],
)
def test_speedups_table(mode, device, compile_unet, expected):
    assert memory.speedups(_plan(mode), device, compile_unet) == expected


def test_compile_setting_compiles_a_resident_unet_once(refiner_pipe, monkeypatch):
    """A count of real ``torch.compile`` calls (replaced by an identity here: the CPU test has no CUDA)."""
    calls = []
    monkeypatch.setattr(torch, "compile", lambda module, **kw: calls.append(module) or module)
    monkeypatch.setattr(memory, "speedups", lambda plan, device, compile_unet: (False, compile_unet))
    apply_plan(refiner_pipe, _plan("resident"), "cpu", compile_unet=True)
    apply_plan(refiner_pipe, _plan("resident"), "cpu", compile_unet=True)
    assert len(calls) == 1
    apply_plan(refiner_pipe, _plan("resident", vae_tiling=True), "cpu", compile_unet=False)
    assert len(calls) == 1


def test_webui_precision_and_compile_settings(webui):
    """The settings "Reimagine and refiner weights on the GPU" (bf16) and "Compile the UNet" reach the host;
    ``--no-half`` still wins."""
    import importlib

    webui.load_scripts()
    from modules import shared

    core = importlib.import_module("sd_webui_reimagine.webui.host")
    host = core.shared_host()
    assert host.memory_flags().bf16 is False and host.compile_unet() is False
    shared.opts.data[core.OPT_PRECISION] = "bf16"
    shared.opts.data[core.OPT_COMPILE] = True
    assert host.memory_flags().bf16 is True and host.compile_unet() is True
    assert host.dtype() is None  # the stand-in's device is the CPU: bf16 only on CUDA
    shared.cmd_opts.no_half = True
    assert host.dtype() == torch.float32


def test_the_job_size_reaches_the_memory_plan(webui, tiny, tmp_path):
    """A 512x640 batch of 3 is planned as such, not at the model's native size."""
    import importlib

    webui.load_scripts()
    core = importlib.import_module("sd_webui_reimagine.webui.host")
    host = core.shared_host()
    seen = []
    original = host.memory_plan

    def spy(choice, role, params=None):
        seen.append(dict(params or {}))
        return original(choice, role, params)

    host.memory_plan = spy
    choice = importlib.import_module("sd_webui_reimagine.loading.discovery").ModelChoice(
        "tiny", "unclip-h", "tiny", tiny.unclip_h.folder
    )
    host.config_root = tiny.config_root
    with host.pipeline(choice, "unclip", {"width": 512, "height": 640, "batch_size": 3}):
        pass
    assert seen == [{"width": 512, "height": 640, "batch_size": 3}]


@pytest.mark.parametrize("webui", ["a1111"], indirect=True)
def test_no_model_loads_while_the_webui_loads_its_first_checkpoint(webui, tiny):
    """A1111 holds ``sd_models.model_data.lock`` while it loads its startup checkpoint (with ``load_state_dict``
    patched process-wide); our pipeline is loaded only after the WebUI's thread let go of it. (Forge Neo's
    ``SdModelData`` has no lock: docs/webui-contract.md §12.)"""
    import importlib
    import threading

    webui.load_scripts()
    from modules import sd_models

    core = importlib.import_module("sd_webui_reimagine.webui.host")
    host = core.shared_host()
    host.config_root = tiny.config_root
    choice = importlib.import_module("sd_webui_reimagine.loading.discovery").ModelChoice(
        "tiny", "unclip-h", "tiny", tiny.unclip_h.folder
    )
    order: list[str] = []
    original_get = host.cache.get

    def get(*args, **kwargs):
        order.append("our load")
        return original_get(*args, **kwargs)

    host.cache.get = get
    holding, release = threading.Event(), threading.Event()

    def webui_startup_load():
        with sd_models.model_data.lock:
            holding.set()
            release.wait(timeout=60)
            order.append("webui load done")

    loader = threading.Thread(target=webui_startup_load)
    loader.start()
    holding.wait(timeout=60)
    ours = threading.Thread(target=lambda: host.pipeline(choice, "unclip").__enter__())
    ours.start()
    ours.join(timeout=1)  # not a timing assert: whatever the wait, our load must come second
    release.set()
    ours.join(timeout=120)
    loader.join(timeout=60)
    assert order == ["webui load done", "our load"]


@pytest.mark.parametrize("mode", ["resident", "cpu"])
def test_apply_plan_tiles_with_the_vaes_own_methods_without_deprecation(refiner_pipe, mode):
    """diffusers deprecates the pipelines' ``enable_vae_tiling``/``enable_vae_slicing`` (FutureWarning from 0.37,
    gone by 0.42): the plan must reach the VAE through ``vae.enable_tiling()``/``enable_slicing()`` without a warning.
    Oracle: diffusers' own ``deprecate`` warning, and the VAE's own ``use_tiling``/``use_slicing`` flags."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apply_plan(refiner_pipe, _plan(mode, vae_tiling=True, vae_slicing=True), "cpu")
    deprecations = [
        str(w.message)
        for w in caught
        if issubclass(w.category, (FutureWarning, DeprecationWarning)) and "vae" in str(w.message)
    ]
    assert deprecations == []
    assert refiner_pipe.vae.use_tiling and refiner_pipe.vae.use_slicing
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apply_plan(refiner_pipe, _plan("model_offload"), "cpu")  # off again
    assert [w for w in caught if issubclass(w.category, FutureWarning) and "vae" in str(w.message)] == []
    assert not refiner_pipe.vae.use_tiling and not refiner_pipe.vae.use_slicing
