"""Shared bench helpers: models with random weights built from configs, and interleaved timing."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def random_unclip(kind: str = "unclip-h", config_root: Path | None = None) -> Any:
    """A ``StableUnCLIPImg2ImgPipeline`` with random weights from a config-only folder (default: the bundled,
    full-size configs), on the CPU in fp32."""
    import torch
    from diffusers import DDIMScheduler, DDPMScheduler, StableUnCLIPImg2ImgPipeline
    from transformers import CLIPImageProcessor

    from extension.loading.configs import build_tokenizer, component_from_config, config_dir

    folder = config_dir(kind, config_root)
    torch.manual_seed(0)
    unet = component_from_config(kind, "unet", config_root)
    for parameter in unet.parameters():  # zero-initialised output layers would make every step a no-op
        if not parameter.any():
            parameter.data.normal_(0, 0.02)
    return StableUnCLIPImg2ImgPipeline(
        feature_extractor=CLIPImageProcessor.from_pretrained(folder / "feature_extractor"),
        image_encoder=component_from_config(kind, "image_encoder", config_root),
        image_normalizer=component_from_config(kind, "image_normalizer", config_root),
        image_noising_scheduler=DDPMScheduler.from_pretrained(folder / "image_noising_scheduler"),
        tokenizer=build_tokenizer(folder / "tokenizer", config_root),
        text_encoder=component_from_config(kind, "text_encoder", config_root),
        unet=unet,
        scheduler=DDIMScheduler.from_pretrained(folder / "scheduler"),
        vae=component_from_config(kind, "vae", config_root),
    )


def interleaved(
    runs: dict[str, Callable[[], Any]],
    repeats: int,
    sync: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Time each callable ``repeats`` times, interleaved (A B A B …) so machine noise hits all alike.

    Returns ``{name: [seconds, …]}``; one untimed warm-up call each first. ``clock=time.process_time`` measures this
    process's CPU time, which other processes on a shared CPU machine disturb far less than wall time."""
    for run in runs.values():
        run()
    sync()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            sync()
            start = clock()
            run()
            sync()
            times[name].append(clock() - start)
    return times


def median(values: list[float]) -> float:
    """Median of a list of timings."""
    return statistics.median(values)


def clocks_for(device: str, threads: int) -> tuple[dict[str, Callable[[], float]], str]:
    """The clocks to time with, and the device's name: wall time; on the CPU also this process's CPU time with
    ``threads`` torch threads, which other processes on a shared machine barely disturb."""
    import torch

    if device.startswith("cuda"):
        return {"wall": time.perf_counter}, torch.cuda.get_device_name()
    torch.set_num_threads(threads)
    return {"wall": time.perf_counter, "cpu": time.process_time}, f"cpu ({torch.get_num_threads()} thread(s))"


def print_ratios(
    ours: Callable[[], Any],
    theirs: Callable[[], Any],
    clocks: dict[str, Callable[[], float]],
    repeats: int,
    sync: Callable[[], None],
    goal: float,
) -> None:
    """One row per clock: the median seconds of ours and of plain diffusers (interleaved), and their ratio."""
    import torch

    print(f"{'clock':8}{'reimagine s':>14}{'diffusers s':>14}{'ratio':>8}")
    for clock_name, clock in clocks.items():
        with torch.inference_mode():
            times = interleaved({"ours": ours, "diffusers": theirs}, repeats, sync, clock)
        ours_s, theirs_s = median(times["ours"]), median(times["diffusers"])
        print(f"{clock_name:8}{ours_s:14.4f}{theirs_s:14.4f}{ours_s / theirs_s:8.3f}")
    print(f"goal: ratio <= {goal}")
