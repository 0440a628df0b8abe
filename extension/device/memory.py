"""Device memory: which component sits where during a job, decided here and nowhere else (next to ``precision``).

:func:`plan` is a pure function of the device's memory, the user's / WebUI's flags (:class:`MemoryFlags`, read from
the WebUI's argument namespaces by :func:`flags_from_args`) and the job (:class:`Job`). It picks one of

- ``resident``: every component on the device for the whole job (fastest);
- ``model_offload``: each component moves to the device only while it runs — diffusers'
  ``DiffusionPipeline.enable_model_cpu_offload`` (accelerate's ``cpu_offload_with_hook``); the CLIP image encoder is
  then on the device only for the encode. A1111's ``--medvram`` does the same to its own model (``modules/lowvram.py``);
- ``sequential_offload``: weights stream to the device submodule by submodule — diffusers'
  ``enable_sequential_cpu_offload`` (accelerate's ``cpu_offload``); A1111's ``--lowvram``;
- ``cpu``: everything on the CPU (``--use-cpu all``/``sd``, Forge ``--always-cpu``),

plus VAE slicing (one image of the batch at a time) and tiling (the VAE's ``enable_tiling``) for large outputs or tight
memory. :func:`apply_plan` applies a plan with diffusers' own methods. diffusers documents these methods at
https://huggingface.co/docs/diffusers/optimization/memory ; they need accelerate >= 0.17 (A1111 pins 0.21.0).

Sizes are ESTIMATES: parameter counts of the bundled configs (``extension/configs``; checked against the configs by
``tests/device/test_memory.py``) times bytes per element, plus activation terms documented at :func:`activation_bytes`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

log = logging.getLogger(__name__)

GiB = 1024**3
MiB = 1024**2

# Parameter counts of the bundled configs (extension/configs/<kind>/<component>/config.json), counted by
# instantiating diffusers' / transformers' classes on the meta device (tests/device/test_memory.py re-counts them).
PARAMS: dict[str, dict[str, int]] = {
    "unclip-h": {"unet": 870_173_124, "text_encoder": 340_387_840, "image_encoder": 632_076_800, "vae": 83_653_863},
    "unclip-l": {"unet": 869_517_764, "text_encoder": 340_387_840, "image_encoder": 303_966_208, "vae": 83_653_863},
    "refiner": {"unet": 2_259_526_660, "text_encoder_2": 694_659_840, "vae": 83_653_863},
    "base": {
        "unet": 2_567_463_684,
        "text_encoder": 123_060_480,
        "text_encoder_2": 694_659_840,
        "vae": 83_653_863,
    },
}
KIND_ALIASES = {"unclip": "unclip-h", "sdxl-refiner": "refiner", "sdxl-base": "base", "sdxl": "base"}

# Activation constants (estimates, fp16, PyTorch SDPA attention):
# - UNet: ~32 KiB per latent pixel per sample in the CFG batch (cond + uncond), i.e. ~0.56 GiB for SD 2.x at 768^2
#   and ~1.0 GiB for SDXL at 1024^2 (an order-of-magnitude figure for fp16 with SDPA; to be replaced by
#   bench/gpu_check.py's measurements).
# - VAE decode: the decoder's last up blocks hold ~3 tensors of 256 channels at full resolution at once
#   (diffusers' Decoder, block_out_channels [128, 256, 512, 512]), so ~800 elements per output pixel per image.
UNET_ACT_PER_LATENT_PIXEL = 32 * 1024
VAE_ELEMS_PER_PIXEL = 800
VAE_TILE = 512  # the tile edge we budget a tiled decode with (diffusers tiles at the VAE config's sample_size or less)
RESERVE = 512 * MiB  # CUDA context, allocator fragmentation, the WebUI's own tensors
MODES = ("resident", "model_offload", "sequential_offload", "cpu")


@dataclass(frozen=True)
class MemoryFlags:
    """What the user / WebUI asked for (see :func:`flags_from_args` for the mapping from the WebUI's flags)."""

    medvram: bool = False  # model-level offload for every model (A1111 --medvram, Forge --always-offload-from-vram)
    medvram_sdxl: bool = False  # the same for SDXL models only: our refiner (A1111 --medvram-sdxl)
    lowvram: bool = False  # sequential offload (A1111 --lowvram, Forge --always-low-vram / --always-no-vram)
    always_gpu: bool = False  # keep everything resident (Forge --always-gpu / --always-high-vram)
    use_cpu: bool = False  # run on the CPU (A1111 --use-cpu all|sd, Forge --always-cpu)
    no_half: bool = False  # fp32 weights (A1111 --no-half / --precision full, Forge --all-in-fp32)
    no_half_vae: bool = False  # fp32 VAE (A1111 --no-half-vae, Forge --vae-in-fp32)
    bf16: bool = False  # bf16 instead of fp16 (Forge --unet-in-bf16 / --vae-in-bf16, or the user's setting)
    upcast_sampling: bool = False  # A1111 --upcast-sampling: fp16 weights, fp32 attention (our UNets upcast anyway)
    pin_memory: bool = False  # Forge --pin-shared-memory: informational (accelerate's hooks do not pin)
    spelled: tuple[tuple[str, str], ...] = field(default=(), compare=False)  # (field, the flag that set it)

    def active(self) -> list[str]:
        """Names of the fields that are set (:meth:`flag` spells each as the WebUI does, for the log line)."""
        return [name for name, value in vars(self).items() if value and name != "spelled"]

    def flag(self, name: str) -> str:
        """The command-line flag that set field ``name``, as this WebUI spells it (Forge: ``--always-cpu``)."""
        return dict(self.spelled).get(name, "--" + name.replace("_", "-"))


@dataclass(frozen=True)
class Job:
    """What is about to run: model kind ("unclip-h", "unclip-l", "refiner", "base"), output size, batch size."""

    kind: str
    width: int = 768
    height: int = 768
    batch: int = 1
    cfg: bool = True  # classifier-free guidance doubles the UNet batch


@dataclass(frozen=True)
class MemoryPlan:
    """Where each component sits and how the VAE decodes; ``estimate`` = bytes the device needs at peak."""

    mode: str
    device: str
    dtype: torch.dtype
    vae_dtype: torch.dtype
    components: dict[str, str] = field(default_factory=dict)
    vae_slicing: bool = False
    vae_tiling: bool = False
    estimate: int = 0
    budget: int | None = None
    reason: str = ""

    def describe(self) -> str:
        """One line for the log."""
        parts = [
            f"{self.mode} on {self.device}",
            f"{str(self.dtype).replace('torch.', '')} (vae {str(self.vae_dtype).replace('torch.', '')})",
        ]
        vae = [name for name, on in (("slicing", self.vae_slicing), ("tiling", self.vae_tiling)) if on]
        parts.append("vae " + "+".join(vae) if vae else "vae whole")
        budget = "n/a" if self.budget is None else f"{self.budget / GiB:.1f}"
        parts.append(f"needs ~{self.estimate / GiB:.1f} GiB of {budget} GiB")
        return ", ".join(parts) + f" ({self.reason})"


def normalize_kind(kind: str) -> str:
    """Model kind or role → a key of :data:`PARAMS` (``ValueError`` for an unknown one)."""
    key = KIND_ALIASES.get(kind, kind)
    if key not in PARAMS:
        raise ValueError(f"Unknown model kind {kind!r}; expected one of {sorted(PARAMS) + sorted(KIND_ALIASES)}")
    return key


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def component_bytes(kind: str, dtype: torch.dtype, vae_dtype: torch.dtype | None = None) -> dict[str, int]:
    """Weight bytes of each component of ``kind`` (parameter counts × element size)."""
    vae_dtype = vae_dtype or dtype
    return {
        name: count * _itemsize(vae_dtype if name == "vae" else dtype)
        for name, count in PARAMS[normalize_kind(kind)].items()
    }


def activation_bytes(job: Job, dtype: torch.dtype, vae_dtype: torch.dtype, *, slicing: bool, tiling: bool) -> dict:
    """Peak activation bytes of the UNet step and of the VAE decode (estimates, see the constants above)."""
    scale = _itemsize(dtype) / 2
    latent_pixels = (job.width // 8) * (job.height // 8)
    unet = int(UNET_ACT_PER_LATENT_PIXEL * latent_pixels * job.batch * (2 if job.cfg else 1) * scale)
    side_w, side_h = (min(job.width, VAE_TILE), min(job.height, VAE_TILE)) if tiling else (job.width, job.height)
    images = 1 if slicing else job.batch
    vae = VAE_ELEMS_PER_PIXEL * side_w * side_h * images * _itemsize(vae_dtype)
    return {"unet": unet, "vae": vae}


def _dtypes(flags: MemoryFlags, device: str, kind: str) -> tuple[torch.dtype, torch.dtype]:
    """Weights and VAE dtype: fp32 on the CPU or under --no-half; bf16 when asked; fp16 otherwise. The SDXL VAE
    (refiner/base) in fp16 is upcast by diffusers (config ``force_upcast``), so it is budgeted as fp32."""
    if device == "cpu" or flags.no_half:
        return torch.float32, torch.float32
    dtype = torch.bfloat16 if flags.bf16 else torch.float16
    vae = dtype
    if flags.no_half_vae or (dtype == torch.float16 and normalize_kind(kind) in ("refiner", "base")):
        vae = torch.float32
    return dtype, vae


def plan(total: int | None, free: int | None, flags: MemoryFlags, job: Job) -> MemoryPlan:
    """The memory plan for ``job`` on a device with ``total``/``free`` bytes (None, None = no accelerator).

    1. CPU (no device, or ``use_cpu``): everything on the CPU in fp32.
    2. A flag decides the mode: ``lowvram`` → sequential offload; ``medvram`` (or ``medvram_sdxl`` for SDXL kinds) →
       model offload; ``always_gpu`` → resident.
    3. Otherwise the cheapest mode that fits ``free`` minus a reserve: resident (all weights + the larger
       activation), model offload (each component alone with its own activations), else sequential offload. The
       VAE counts with its smallest (sliced, tiled) decode here: step 4 tiles when needed.
    4. VAE: slicing when the batch has more than one image and the whole batch's decode does not fit what is left;
       tiling when one image's decode still does not fit, or always under sequential offload.
    """
    if job.width <= 0 or job.height <= 0 or job.batch <= 0:
        raise ValueError(f"Job size must be positive, got {job.width}x{job.height} batch {job.batch}")
    kind = normalize_kind(job.kind)
    # 1. no accelerator
    if free is None or total is None or flags.use_cpu:
        parts = component_bytes(kind, torch.float32)
        return MemoryPlan(
            "cpu",
            "cpu",
            torch.float32,
            torch.float32,
            {name: "cpu" for name in parts},
            reason=flags.flag("use_cpu") if flags.use_cpu else "no accelerator",
        )
    dtype, vae_dtype = _dtypes(flags, "cuda", kind)
    parts = component_bytes(kind, dtype, vae_dtype)
    budget = max(0, min(free, total) - RESERVE)
    whole = activation_bytes(job, dtype, vae_dtype, slicing=False, tiling=False)
    least = activation_bytes(job, dtype, vae_dtype, slicing=True, tiling=True)  # the decode can always tile
    weights = sum(parts.values())
    largest = max(parts.values())
    # 2./3. the mode
    sdxl = kind in ("refiner", "base")
    if flags.lowvram:
        mode, reason = "sequential_offload", flags.flag("lowvram")
    elif flags.medvram or (flags.medvram_sdxl and sdxl):
        mode, reason = "model_offload", flags.flag("medvram" if flags.medvram else "medvram_sdxl")
    elif flags.always_gpu:
        mode, reason = "resident", flags.flag("always_gpu")
    elif weights + max(whole["unet"], least["vae"]) <= budget:
        mode, reason = "resident", "fits"
    elif max(parts["unet"] + whole["unet"], parts["vae"] + least["vae"], largest) <= budget:
        mode, reason = "model_offload", "weights do not fit together"
    else:
        mode, reason = "sequential_offload", "the largest component does not fit"
    # 4. the VAE decode gets what its mode leaves free
    held = {"resident": weights, "model_offload": parts["vae"], "sequential_offload": 0}[mode]
    room = budget - held
    slicing = job.batch > 1 and whole["vae"] > room
    one = activation_bytes(job, dtype, vae_dtype, slicing=slicing, tiling=False)["vae"]
    tiling = mode == "sequential_offload" or one > room
    act = activation_bytes(job, dtype, vae_dtype, slicing=slicing, tiling=tiling)
    if mode == "resident":
        estimate = weights + max(act["unet"], act["vae"])
    elif mode == "model_offload":
        estimate = max(parts["unet"] + act["unet"], parts["vae"] + act["vae"], *parts.values())
    else:  # sequential: one submodule's weights at a time; the activations remain
        estimate = max(act["unet"], act["vae"]) + largest // 20
    where = {"resident": "device", "model_offload": "offload", "sequential_offload": "sequential"}[mode]
    return MemoryPlan(
        mode,
        "cuda",
        dtype,
        vae_dtype,
        {name: where for name in parts},
        vae_slicing=slicing,
        vae_tiling=tiling,
        estimate=estimate,
        budget=budget,
        reason=reason,
    )


def _get(namespace: Any, name: str, default: Any = False) -> Any:
    return getattr(namespace, name, default) if namespace is not None else default


def flags_from_args(cmd_opts: Any, forge_args: Any = None, *, bf16: bool = False) -> MemoryFlags:
    """Map the WebUI's parsed arguments to :class:`MemoryFlags`.

    ``cmd_opts``: A1111's ``modules.shared.cmd_opts`` (``modules/cmd_args.py``: ``medvram``, ``medvram_sdxl``,
    ``lowvram``, ``no_half``, ``no_half_vae``, ``upcast_sampling``, ``precision`` in {"full", "autocast"},
    ``use_cpu`` a list of module names, "all" or "sd" meaning ours). ``forge_args``: the ``backend.args.args`` of
    Forge 2 (``backend/args.py``: ``always_gpu``, ``always_high_vram``, ``always_low_vram``, ``always_no_vram``,
    ``always_cpu``, ``always_offload_from_vram``, ``pin_shared_memory``, ``all_in_fp32``, ``unet_in_bf16``,
    ``vae_in_fp32``, ``vae_in_bf16``) or of Forge Neo, whose flags are ComfyUI's (docs/webui-contract.md §12:
    ``gpu_only``/``highvram`` keep models in VRAM, ``lowvram``/``novram`` split or stream them,
    ``disable_smart_memory`` offloads to RAM after use, ``cpu`` runs everything on the CPU, ``force_fp32`` /
    ``fp32_unet`` / ``fp32_vae`` / ``bf16_unet`` / ``bf16_vae`` choose dtypes, ``pin_shared_memory``). Missing
    attributes count as unset.
    """
    use_cpu = _get(cmd_opts, "use_cpu", []) or []
    if isinstance(use_cpu, str):
        use_cpu = [use_cpu]
    use_cpu = {str(name).lower() for name in use_cpu}

    def cmd(name: str) -> bool:
        return bool(_get(cmd_opts, name))

    def forge(name: str) -> bool:
        return bool(_get(forge_args, name))

    options = {  # field: the flags that set it, as (spelling, set?); the first set one names it in the log line
        "medvram": [
            ("--medvram", cmd("medvram")),
            ("--always-offload-from-vram", forge("always_offload_from_vram")),
            ("--disable-smart-memory", forge("disable_smart_memory")),  # Neo
        ],
        "medvram_sdxl": [("--medvram-sdxl", cmd("medvram_sdxl"))],
        "lowvram": [
            ("--lowvram", cmd("lowvram")),
            ("--always-low-vram", forge("always_low_vram")),
            ("--always-no-vram", forge("always_no_vram")),
            ("--lowvram", forge("lowvram")),  # Neo (ComfyUI's names)
            ("--novram", forge("novram")),
        ],
        "always_gpu": [
            ("--always-gpu", forge("always_gpu")),
            ("--always-high-vram", forge("always_high_vram")),
            ("--gpu-only", forge("gpu_only")),
            ("--highvram", forge("highvram")),
        ],
        "use_cpu": [
            ("--use-cpu", bool({"all", "sd"} & use_cpu)),
            ("--always-cpu", forge("always_cpu")),
            ("--cpu", forge("cpu")),
        ],
        "no_half": [
            ("--no-half", cmd("no_half")),
            ("--precision full", _get(cmd_opts, "precision", "autocast") == "full"),
            ("--all-in-fp32", forge("all_in_fp32")),
            ("--force-fp32", forge("force_fp32")),
            ("--fp32-unet", forge("fp32_unet")),
        ],
        "no_half_vae": [
            ("--no-half-vae", cmd("no_half_vae")),
            ("--vae-in-fp32", forge("vae_in_fp32")),
            ("--fp32-vae", forge("fp32_vae")),
        ],
        "bf16": [
            ("bf16 setting", bf16),
            ("--unet-in-bf16", forge("unet_in_bf16")),
            ("--vae-in-bf16", forge("vae_in_bf16")),
            ("--bf16-unet", forge("bf16_unet")),
            ("--bf16-vae", forge("bf16_vae")),
        ],
        "upcast_sampling": [("--upcast-sampling", cmd("upcast_sampling"))],
        "pin_memory": [("--pin-shared-memory", forge("pin_shared_memory"))],
    }
    chosen = {name: next((flag for flag, on in found if on), None) for name, found in options.items()}
    return MemoryFlags(
        spelled=tuple((name, flag) for name, flag in chosen.items() if flag),
        **{name: flag is not None for name, flag in chosen.items()},
    )


def device_memory(device: Any) -> tuple[int | None, int | None]:
    """(total, free) bytes of a CUDA ``device`` (``torch.cuda.mem_get_info``); (None, None) for anything else."""
    dev = torch.device(device) if device is not None else None
    if dev is None or dev.type != "cuda" or not torch.cuda.is_available():
        return None, None
    free, total = torch.cuda.mem_get_info(dev)
    return int(total), int(free)


def decide(device: Any, flags: MemoryFlags, job: Job, free: int | None = None) -> MemoryPlan:
    """:func:`plan` for a real device (``free`` overrides the driver's figure, e.g. Forge's own estimate)."""
    total, driver_free = device_memory(device)
    result = plan(total, driver_free if free is None else free, flags, job)
    log.debug(
        "memory plan for %s %dx%d x%d: %s %s",
        job.kind,
        job.width,
        job.height,
        job.batch,
        result.describe(),
        result.components,
    )
    return result


def apply_plan(pipe: Any, memory_plan: MemoryPlan, device: Any, *, compile_unet: bool = False) -> Any:
    """Apply ``memory_plan`` to a diffusers pipeline with diffusers' own methods; returns ``pipe``.

    A pipeline that already carries this plan is left alone. One under model offload is freed of its hooks
    (``remove_all_hooks``) before another plan; sequential offload cannot be undone in place (its weights live in
    accelerate's hooks), so switching away from it raises ``ValueError`` — reload the pipeline instead. The VAE
    takes the plan's dtype (fp32 under ``--no-half-vae`` and for the SDXL VAE, which overflows in fp16), then the
    free speed-ups follow (:func:`speedups`).
    """
    previous: MemoryPlan | None = getattr(pipe, "_reimagine_memory_plan", None)
    if previous is not None and _same_placement(previous, memory_plan):
        _apply_speedups(pipe, memory_plan, device, compile_unet)
        return pipe
    if previous is not None and previous.mode == "sequential_offload":
        raise ValueError("A pipeline under sequential offload cannot change plan; reload it")
    if previous is not None and previous.mode == "model_offload":
        pipe.remove_all_hooks()
    vae = getattr(pipe, "vae", None)
    if memory_plan.mode != "cpu" and vae is not None and vae.dtype != memory_plan.vae_dtype:
        vae.to(dtype=memory_plan.vae_dtype)  # before offloading: accelerate's hooks then hold these weights
    if memory_plan.mode == "model_offload":
        pipe.enable_model_cpu_offload(device=torch.device(device))
    elif memory_plan.mode == "sequential_offload":
        pipe.enable_sequential_cpu_offload(device=torch.device(device))
    else:  # resident, or "cpu" (then ``device`` is the CPU or a non-CUDA device such as MPS: no budget to plan)
        pipe.to(device)
    _set(pipe, "vae_slicing", memory_plan.vae_slicing)
    _set(pipe, "vae_tiling", memory_plan.vae_tiling)
    pipe._reimagine_memory_plan = memory_plan
    _apply_speedups(pipe, memory_plan, device, compile_unet)
    return pipe


def speedups(memory_plan: MemoryPlan, device: Any, compile_unet: bool) -> tuple[bool, bool]:
    """(``channels_last``, ``torch.compile``) for the UNet under ``memory_plan``: both on CUDA only (diffusers'
    "Speed up inference" guide: channels_last helps convolutions on tensor cores; compiling pays off for a UNet that
    stays put). channels_last also under model offload (the layout moves with the weights); never under sequential
    offload, whose weights live in accelerate's hooks. torch.compile only when asked (a setting, off by default) and
    only for a resident UNet (offload hooks and a compiled graph do not mix)."""
    cuda = torch.device(device).type == "cuda"
    channels_last = cuda and memory_plan.mode in ("resident", "model_offload")
    return channels_last, cuda and compile_unet and memory_plan.mode == "resident"


def _apply_speedups(pipe: Any, memory_plan: MemoryPlan, device: Any, compile_unet: bool) -> None:
    channels_last, compiled = speedups(memory_plan, device, compile_unet)
    unet = getattr(pipe, "unet", None)
    if unet is None:
        return
    if channels_last and not getattr(pipe, "_reimagine_channels_last", False):
        unet.to(memory_format=torch.channels_last)
        pipe._reimagine_channels_last = True
    if compiled and not getattr(pipe, "_reimagine_compiled", False):
        pipe.unet = torch.compile(unet)  # the first run compiles (slow); later runs are faster
        pipe._reimagine_compiled = True


def _same_placement(a: MemoryPlan, b: MemoryPlan) -> bool:
    return (a.mode, a.device, a.vae_dtype, a.vae_slicing, a.vae_tiling) == (
        b.mode,
        b.device,
        b.vae_dtype,
        b.vae_slicing,
        b.vae_tiling,
    )


def _set(pipe: Any, feature: str, on: bool) -> None:
    """The VAE's own ``enable_<tiling|slicing>()`` / ``disable_…()`` (``feature`` = ``"vae_tiling"``/``"vae_slicing"``):
    diffusers 0.31 has them on ``AutoencoderKL`` too, deprecated the pipelines' ``enable_vae_*`` (FutureWarning from
    0.37) and dropped them by 0.42. The pipeline's method only for a VAE without its own."""
    verb = "enable_" if on else "disable_"
    vae = getattr(pipe, "vae", None)
    own = getattr(vae, verb + feature.removeprefix("vae_"), None) if vae is not None else None
    if callable(own):
        own()
    elif hasattr(pipe, verb + feature):
        getattr(pipe, verb + feature)()


def job_for(kind: str, params: Mapping[str, Any] | None = None) -> Job:
    """A :class:`Job` from request parameters (``width``, ``height``, ``batch_size``; defaults 768²/1024², 1)."""
    params = params or {}
    side = 1024 if normalize_kind(kind) in ("refiner", "base") else 768
    return Job(
        kind,
        int(params.get("width") or side),
        int(params.get("height") or side),
        int(params.get("batch_size") or params.get("batch") or 1),
    )
