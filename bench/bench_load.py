"""Load time and peak RSS of our single-file loader on FULL-SIZE synthesised checkpoints .

For each family a checkpoint is written in the original layout with random weights, from the bundled configs
(``extension/configs``; converters from ``tests/tiny_models.py``): unclip-h and unclip-l as fp32 .safetensors (like the
official fp32 ``sd21-unclip-*.ckpt``), sdxl-refiner as fp16 .safetensors (like ``sd_xl_refiner_1.0.safetensors``).
Each load runs in a fresh subprocess on the CPU in the checkpoint's own dtype; the child reports its
``ru_maxrss`` (peak RSS, imports included). For the refiner, diffusers' own
``StableDiffusionXLImg2ImgPipeline.from_single_file(path, config=<bundled folder>, local_files_only=True)`` runs in the
same way in the same run. Files go to ``--workdir`` (default /tmp/reimagine-bench, never the repo) and are deleted.

Run: ``.nox/a1111/bin/python bench/bench_load.py [--kinds unclip-h,unclip-l,sdxl-refiner] [--repeat 1]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CONFIGS = REPO / "extension" / "configs"
_DT = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64"}


# ----------------------------------------------------------------------------------------------------------- synthesis
def _meta(kind: str, name: str, **overrides):  # noqa: ANN003, ANN202
    """A component of ``kind`` on the meta device, from the bundled config (``overrides`` patch the config)."""
    from accelerate import init_empty_weights

    from extension.loading.configs import component_from_config

    with init_empty_weights():
        return component_from_config(kind, name, **overrides)


def _text_meta(hidden: int, layers: int, heads: int, act: str, proj: int):  # noqa: ANN202
    from accelerate import init_empty_weights
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(vocab_size=49408, hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                         num_attention_heads=heads, hidden_act=act, projection_dim=proj, max_position_embeddings=77)  # fmt: skip
    with init_empty_weights():
        return CLIPTextModelWithProjection(cfg)


def _sd(module) -> dict:  # noqa: ANN001
    return {k: v for k, v in module.state_dict().items() if not k.endswith("position_ids")}


def original_layout(kind: str) -> dict:
    """{key: meta tensor} of a full-size original-layout checkpoint of ``kind`` (shapes only, no memory)."""
    import torch

    from tests import tiny_models as tm

    unet, vae = _meta(kind, "unet"), _meta(kind, "vae")
    out = {}
    out.update(tm.unet_to_original(_sd(unet), unet.config))
    out.update(tm.vae_to_original(_sd(vae), vae.config))
    scalar = torch.empty((), device="meta")
    if kind.startswith("unclip"):
        # SD 2.x OpenCLIP-H text tower: 24 resblocks (the diffusers text encoder is its 23-layer cut)
        out.update(tm.clip_text_to_open_clip(_text_meta(1024, 24, 16, "gelu", 1024), "cond_stage_model.model."))
        out["cond_stage_model.model.logit_scale"] = scalar
        out.update(tm.clip_vision_to_open_clip(_meta(kind, "image_encoder")))
        if kind == "unclip-h":  # FrozenOpenCLIPImageEmbedder: text transformer deleted, text vectors kept
            for k, shape in {"token_embedding.weight": (49408, 1024), "positional_embedding": (77, 1024),
                             "ln_final.weight": (1024,), "ln_final.bias": (1024,),
                             "text_projection": (1024, 1024)}.items():  # fmt: skip
                out["embedder.model." + k] = torch.empty(shape, device="meta")
        else:  # ClipImageEmbedder: the whole OpenAI CLIP ViT-L/14, text tower included
            out.update(tm.clip_text_to_open_clip(_text_meta(768, 12, 12, "quick_gelu", 768), "embedder.model."))
        out["embedder.model.logit_scale"] = scalar
        for k, v in {**tm.noise_augmentor_buffers(), **tm.ldm_schedule_buffers()}.items():
            out[k] = torch.empty(v.shape, device="meta")
        dtype = torch.float32
    else:
        prefix = "conditioner.embedders.0.model." if kind == "sdxl-refiner" else "conditioner.embedders.1.model."
        out.update(tm.clip_text_to_open_clip(_meta(kind, "text_encoder_2"), prefix))
        out[prefix + "logit_scale"] = scalar
        if kind == "sdxl-base":
            out.update(tm.hf_clip_text_to_sgm(_meta(kind, "text_encoder")))
        dtype = torch.float16
    return {k: torch.empty(v.shape, device="meta", dtype=dtype if v.is_floating_point() else v.dtype)
            for k, v in out.items()}  # fmt: skip


def write_random_safetensors(spec: dict, path: Path, seed: int = 0) -> int:
    """Stream a .safetensors file with random N(0, 0.02) weights for ``spec`` ({key: meta tensor}); returns bytes."""
    import torch

    keys = sorted(spec)
    header, offset = {}, 0
    for k in keys:
        t = spec[k]
        n = t.numel() * t.element_size()
        header[k] = {"dtype": _DT[str(t.dtype).replace("torch.", "")], "shape": list(t.shape),
                     "data_offsets": [offset, offset + n]}  # fmt: skip
        offset += n
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    gen = torch.Generator().manual_seed(seed)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for k in keys:
            t = spec[k]
            if t.is_floating_point():
                data = torch.empty(t.shape, dtype=torch.float32).normal_(0.0, 0.02, generator=gen).to(t.dtype)
            else:
                data = torch.zeros(t.shape, dtype=t.dtype)
            f.write(memoryview(data.numpy()).cast("B"))
    return offset


# -------------------------------------------------------------------------------------------------------------- child
def _hwm() -> int:
    """Peak RSS of this process in bytes: VmHWM (ru_maxrss is inherited through vfork+exec from the parent)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(mode: str, path: str, dtype: str, karlo: str | None) -> None:
    """Runs in a fresh interpreter: import, load once, print one JSON line with time and peak RSS."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import diffusers  # noqa: F401 - imports are not part of the load time
    import torch
    import transformers  # noqa: F401

    from extension.loading import build_tokenizer, load_sdxl, load_unclip

    rss_imports = _hwm()
    t0 = time.perf_counter()
    if mode == "ours-unclip":
        pipe = load_unclip(path, karlo_stats=karlo, device="cpu", dtype=dtype)
    elif mode == "ours-refiner":
        pipe = load_sdxl(path, role="refiner", device="cpu", dtype=dtype)
    elif mode == "diffusers-refiner":
        from diffusers import StableDiffusionXLImg2ImgPipeline

        pipe = StableDiffusionXLImg2ImgPipeline.from_single_file(
            path,
            config=str(CONFIGS / "sdxl-refiner"),
            local_files_only=True,
            torch_dtype=getattr(torch, {"fp16": "float16", "fp32": "float32"}[dtype]),
            tokenizer_2=build_tokenizer(CONFIGS / "sdxl-refiner" / "tokenizer_2"),  # bundled folder has no vocab copy
        )
    else:
        raise SystemExit(f"unknown mode {mode}")
    seconds = time.perf_counter() - t0
    peak_load = _hwm()
    modules = [m for m in pipe.components.values() if isinstance(m, torch.nn.Module)]
    params = sum(p.numel() * p.element_size() for m in modules for p in m.parameters())
    # Both loaders leave the weights memory-mapped from the file (safetensors / torch mmap): pages become resident
    # when first used. Touch every weight, as the first generation (or .to("cuda")) would, so the peak is honest.
    with torch.no_grad():
        for m in modules:
            for p in m.parameters():
                p.sum()
    peak = _hwm()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "peak_rss": peak, "peak_rss_load": peak_load, "ru_maxrss": maxrss,
                      "rss_after_imports": rss_imports, "model_bytes": params}))  # fmt: skip


def _run_child(mode: str, path: Path, dtype: str, karlo: Path | None) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, str(path), dtype, str(karlo or "")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------------------------- main
def main() -> None:
    """Synthesise, measure, print the table, delete the files."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kinds", default="unclip-h,unclip-l,sdxl-refiner")
    ap.add_argument("--workdir", default="/tmp/reimagine-bench")
    ap.add_argument("--repeat", type=int, default=3, help="loads per loader (alternating order); best time shown")
    ap.add_argument("--keep", action="store_true", help="keep the synthesised files")
    args = ap.parse_args()

    import torch

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind in args.kinds.split(","):
        path = work / f"{kind}-random.safetensors"
        t0 = time.perf_counter()
        nbytes = write_random_safetensors(original_layout(kind), path)
        print(
            f"[{kind}] wrote {path} ({nbytes / 2**30:.2f} GiB tensors) in {time.perf_counter() - t0:.0f} s", flush=True
        )
        karlo = None
        if kind == "unclip-l":
            karlo = work / "karlo" / "ViT-L-14_stats.th"
            karlo.parent.mkdir(exist_ok=True)
            torch.save((0.1 * torch.randn(768), 0.5 + torch.rand(768)), karlo)
        modes = ["ours-unclip"] if kind.startswith("unclip") else ["ours-refiner", "diffusers-refiner"]
        dtype = "fp32" if kind.startswith("unclip") else "fp16"
        try:
            for i in range(args.repeat):
                for mode in modes if i % 2 == 0 else modes[::-1]:
                    r = _run_child(mode, path, dtype, karlo)
                    r.update(kind=kind, mode=mode, ckpt_bytes=nbytes)
                    rows.append(r)
                    print(f"  {mode}: {r['seconds']:.1f} s, peak RSS {r['peak_rss'] / 2**30:.2f} GiB "
                          f"(after imports {r['rss_after_imports'] / 2**30:.2f})", flush=True)  # fmt: skip
        finally:
            if not args.keep:
                path.unlink(missing_ok=True)
                shutil.rmtree(work / "karlo", ignore_errors=True)
    _table(rows)


def _table(rows: list[dict]) -> None:
    best: dict[tuple[str, str], dict] = {}
    for r in rows:  # best time, worst peak RSS
        key = (r["kind"], r["mode"])
        prev = best.get(key, r)
        best[key] = {**r, "seconds": min(r["seconds"], prev["seconds"]),
                     "peak_rss": max(r["peak_rss"], prev["peak_rss"]),
                     "peak_rss_load": max(r["peak_rss_load"], prev["peak_rss_load"]),
                     "times": [*prev.get("times", []), r["seconds"]] if key in best else [r["seconds"]]}  # fmt: skip
    gib = 2**30
    print()
    print("| checkpoint | loader | tensors GiB | load s best (all runs) | peak RSS GiB, all weights resident "
          "| peak / tensors | (peak - RSS after imports) / tensors | peak RSS GiB right after load (lazy mmap) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for (kind, mode), r in best.items():
        t = r["ckpt_bytes"]
        runs = ", ".join(f"{x:.1f}" for x in r["times"])
        print(f"| {kind} | {mode} | {t / gib:.2f} | {r['seconds']:.1f} ({runs}) | {r['peak_rss'] / gib:.2f} | "
              f"{r['peak_rss'] / t:.3f} | {(r['peak_rss'] - r['rss_after_imports']) / t:.3f} | "
              f"{r['peak_rss_load'] / gib:.2f} |")  # fmt: skip
    ours, theirs = best.get(("sdxl-refiner", "ours-refiner")), best.get(("sdxl-refiner", "diffusers-refiner"))
    if ours and theirs:
        med = statistics.median(ours["times"]) / statistics.median(theirs["times"])
        print(f"\nrefiner load time ours / diffusers from_single_file: best {ours['seconds'] / theirs['seconds']:.2f}, "
              f"median {med:.2f}; peak RSS ours / diffusers: {ours['peak_rss'] / theirs['peak_rss']:.2f}")  # fmt: skip
    assert not any(math.isnan(r["seconds"]) for r in rows)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] or None)
    else:
        main()
