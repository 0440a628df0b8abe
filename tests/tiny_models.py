"""Tiny random-weight models for offline tests (test-only code, never imported by the extension).

Builds, from configs with seeded random weights, tiny versions of SD 2.1 unCLIP "-h" and "-l", SDXL base and SDXL
refiner, each in two forms: a diffusers folder (``save_pretrained``) and a single file in the ORIGINAL layout
(``.safetensors`` and ``.ckpt``) with the real key names. Only the sizes shrink; the structure, key names, dtypes and
the facts our loaders and diffusers' detection rely on stay as in the real files:

* unCLIP (fp32 like ``sd21-unclip-{h,l}.ckpt``): ``model.diffusion_model.*`` (UNet incl. ``label_emb.0.0/0.2``,
  input = 2 x image-embedding dim), ``first_stage_model.*`` (VAE, 4 levels, latent = 1/8), ``cond_stage_model.model.*``
  (OpenCLIP text tower with ONE MORE resblock than the diffusers ``text_encoder``: the diffusers model is the
  penultimate-layer cut, exactly as SD 2.x's 24 vs 23 layers; plus ``text_projection`` and ``logit_scale``),
  ``embedder.model.visual.*`` (open_clip/OpenAI ``VisionTransformer`` layout), ``noise_augmentor.*`` (the 8
  ``register_schedule`` buffers of the squaredcos_cap_v2 schedule, 1000 steps) and the LatentDiffusion schedule buffers
  (``betas``, ``alphas_cumprod``, ``posterior_*`` ...) that ldm checkpoints carry at top level.
* ``embedder.model`` outside ``visual``: the real -h embedder (FrozenOpenCLIPImageEmbedder) deletes its text
  ``transformer`` but keeps ``token_embedding``, ``positional_embedding``, ``text_projection``, ``ln_final``,
  ``logit_scale``; the real -l embedder (OpenAI CLIP ViT-L/14) keeps its whole text tower. Real detection reads
  ``embedder.model.ln_final.weight``: width 1024 -> -h, 768 -> -l. The tiny files keep that rule working with the REAL
  text widths. -h: only the cheap vectors, ``ln_final.{weight,bias}`` [1024], ``positional_embedding`` [77, 1024],
  ``text_projection`` [1024, E] and ``logit_scale`` (its 49408-row ``token_embedding`` is omitted: nothing loads it).
  -l: a whole, consistent OpenAI text tower at the real width 768 with 12 heads and ONE block
  (``token_embedding`` [49408, 768] stored fp16 to keep the file small, ``transformer.resblocks.0.*``, ``ln_final``,
  ``text_projection`` [768, E]): Edit by text loads it (extension/loading/text_tower.py).
* Tiny image-embedding dims differ between the variants (-h: E=32, -l: E=24) so that a wrong config/stats pairing
  fails loudly. -l's tower uses quick_gelu (OpenAI), -h's gelu (OpenCLIP).
* SDXL (fp16 like ``sd_xl_*_1.0.safetensors``; the random weights are fp16-exact so files and folders hold identical
  values): base ``conditioner.embedders.0.transformer.text_model.*`` (HF CLIP-L stand-in, hidden 32) and
  ``conditioner.embedders.1.model.*`` (OpenCLIP bigG stand-in, hidden 64, 10 resblocks so diffusers' detection key
  ``...resblocks.9.mlp.c_proj.bias`` exists); refiner ``conditioner.embedders.0.model.*`` (bigG only). diffusers'
  ``infer_diffusers_model_type`` classifies the files as ``xl_base`` / ``xl_refiner``.

The single-file key names come from the key tables of tests/tiny/keys.py (``_RESBLOCK``, ``_OPEN_CLIP_TEXT``,
``hf_clip_text_table`` ...), read off the CLIP tower modules, never from the installed transformers' ``state_dict()``
names (transformers 5's ``CLIPTextModel`` has no ``text_model.`` level any more), so the files are the same on
transformers 4.30 to 5.x. The diffusers folders are whatever the installed libraries' ``save_pretrained`` writes.

The tokenizer is the real CLIP BPE shipped inside open_clip, converted to ``vocab.json``/``merges.txt``
(:func:`write_clip_vocab`). Config-only folders (``config_root``) mirror ``extension/configs``: per-model
``tokenizer*/`` folders hold only ``tokenizer_config.json``/``special_tokens_map.json`` and the one shared
``clip-tokenizer/`` holds ``vocab.json``/``merges.txt`` (see :func:`load_clip_tokenizer`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from tests.tiny.common import (
    EMBEDDER_TEXT_WIDTH,
    IMAGE_EMBED_DIM,
    KINDS,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    WEIGHT_SUFFIXES,
    Tensors,
)
from tests.tiny.components import original_state_dict, sdxl_components, unclip_components
from tests.tiny.keys import (
    clip_text_to_open_clip,
    clip_tower,
    clip_vision_to_open_clip,
    hf_clip_text_table,
    hf_clip_text_to_sgm,
    ldm_schedule_buffers,
    noise_augmentor_buffers,
    randomize_,
    unet_to_original,
    vae_to_original,
)
from tests.tiny.tokenizer import (
    N_MERGES,
    SPECIAL,
    VOCAB_SIZE,
    load_clip_tokenizer,
    open_clip_bpe_path,
    write_clip_tokenizer,
    write_clip_vocab,
)

__all__ = [
    "EMBEDDER_TEXT_WIDTH",
    "IMAGE_EMBED_DIM",
    "KINDS",
    "N_MERGES",
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "PIPELINE_CLASS",
    "SPECIAL",
    "VOCAB_SIZE",
    "WEIGHT_SUFFIXES",
    "Tensors",
    "TinyModel",
    "TinyModels",
    "build_tiny_models",
    "cache_key",
    "clip_text_to_open_clip",
    "clip_tower",
    "clip_vision_to_open_clip",
    "hf_clip_text_table",
    "hf_clip_text_to_sgm",
    "ldm_schedule_buffers",
    "load_clip_tokenizer",
    "noise_augmentor_buffers",
    "open_clip_bpe_path",
    "original_state_dict",
    "randomize_",
    "unet_to_original",
    "vae_to_original",
    "write_clip_tokenizer",
    "write_clip_vocab",
]

CACHE_VERSION = "1"
BUILDER_FILES = (Path(__file__), *sorted((Path(__file__).parent / "tiny").glob("*.py")))  # what cache_key() hashes


# --------------------------------------------------------------------------------------------------------------------
# The fixture set
# --------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TinyModel:
    """One tiny model in every form. ``state_dict`` is loaded lazily from the ``.safetensors`` file when reused."""

    kind: str
    folder: Path  # diffusers folder with weights (save_pretrained)
    config: Path  # the matching config-only folder (config_root / kind)
    safetensors: Path
    ckpt: Path
    pipeline_class: str
    _state_dict: Tensors | None = dataclasses.field(default=None, repr=False)

    @property
    def state_dict(self) -> Tensors:
        """The original-layout dict written to the single files (CPU tensors; fp16 for SDXL, fp32 for unCLIP)."""
        if self._state_dict is None:
            from safetensors.torch import load_file

            self._state_dict = load_file(str(self.safetensors))
        return self._state_dict


@dataclasses.dataclass
class TinyModels:
    """The session fixture ``tiny``."""

    root: Path
    config_root: Path  # unclip-h, unclip-l, sdxl-base, sdxl-refiner, clip-tokenizer (config-only, tiny sizes)
    karlo_stats: Path  # ViT-L-14_stats.th stand-in for unclip-l: torch.save((mean [1, 24], std [1, 24]))
    unclip_h: TinyModel
    unclip_l: TinyModel
    sdxl_base: TinyModel
    sdxl_refiner: TinyModel

    def __getitem__(self, kind: str) -> TinyModel:
        return getattr(self, kind.replace("-", "_"))

    @property
    def models(self) -> list[TinyModel]:
        return [self[k] for k in KINDS]


PIPELINE_CLASS = {
    "unclip-h": "StableUnCLIPImg2ImgPipeline",
    "unclip-l": "StableUnCLIPImg2ImgPipeline",
    "sdxl-base": "StableDiffusionXLPipeline",
    "sdxl-refiner": "StableDiffusionXLImg2ImgPipeline",
}
SDXL_TOKENIZER_PAD = "<|endoftext|>"  # SDXL `tokenizer` (CLIP-L); every other tokenizer pads with "!"


def cache_key() -> str:
    """Version string of a build: bumps when this file, a module of tests/tiny/ or the diffusers/transformers/torch
    versions change."""
    import diffusers
    import transformers

    sha = hashlib.sha256()
    for path in BUILDER_FILES:
        sha.update(path.name.encode() + b"\0" + path.read_bytes())
    digest = sha.hexdigest()[:10]
    return f"v{CACHE_VERSION}-{digest}-d{diffusers.__version__}-tf{transformers.__version__}-pt{torch.__version__}"


def _pad_for(kind: str, sub: str) -> str:
    return SDXL_TOKENIZER_PAD if (kind == "sdxl-base" and sub == "tokenizer") else "!"


def _save_file(sd: Tensors, path: Path) -> None:
    from safetensors.torch import save_file

    save_file(sd, str(path), metadata={"format": "pt"})


def _tokenizer_subfolders(kind: str) -> list[str]:
    if kind == "sdxl-base":
        return ["tokenizer", "tokenizer_2"]
    return ["tokenizer_2"] if kind == "sdxl-refiner" else ["tokenizer"]


def _save_tokenizer(directory: str, *, pad: str, **_: Any) -> None:
    write_clip_tokenizer(directory, pad, vocab=True)


def _build_one(kind: str, out: Path) -> Tensors:
    """Build one model: diffusers folder, config-only folder, single files. Returns the original-layout dict."""
    import diffusers

    from_tok = {}
    subs = _tokenizer_subfolders(kind)
    for sub in subs:
        pad = _pad_for(kind, sub)
        tok = load_clip_tokenizer(write_clip_tokenizer(out / "tok" / pad.strip("<|>"), pad, vocab=True))
        # save_pretrained writes OUR transformers-4 files, whatever the installed transformers would write
        tok.save_pretrained = functools.partial(_save_tokenizer, pad=pad)
        from_tok[sub] = tok
    extra = None
    if kind.startswith("unclip"):
        components, extra, mean, std = unclip_components(kind)
        if kind == "unclip-l":
            (out / "karlo").mkdir(exist_ok=True)
            torch.save((mean.clone(), std.clone()), out / "karlo" / "ViT-L-14_stats.th")
    else:
        components = sdxl_components(kind)
    components.update(from_tok)
    cls = getattr(diffusers, PIPELINE_CLASS[kind])
    if kind == "sdxl-base":
        pipe = cls(**components, force_zeros_for_empty_prompt=True, add_watermarker=False)
    elif kind == "sdxl-refiner":
        pipe = cls(
            **components, requires_aesthetics_score=True, force_zeros_for_empty_prompt=False, add_watermarker=False
        )
    else:
        pipe = cls(**components)
    folder = out / "diffusers" / kind
    pipe.save_pretrained(folder, safe_serialization=True)
    # config-only folder: the same tree without weight files; tokenizer folders without vocab (shared clip-tokenizer/)
    config = out / "configs" / kind
    shutil.copytree(folder, config, ignore=shutil.ignore_patterns(*[f"*{s}" for s in WEIGHT_SUFFIXES]))
    for sub in subs:
        for name in ("vocab.json", "merges.txt"):
            (config / sub / name).unlink()
    sd = original_state_dict(kind, pipe, extra)
    single = out / "single"
    single.mkdir(exist_ok=True)
    _save_file(sd, single / f"{kind}.safetensors")
    torch.save({"state_dict": sd, "global_step": 0}, single / f"{kind}.ckpt", _use_new_zipfile_serialization=True)
    return sd


def _models_at(root: Path, state_dicts: Mapping[str, Tensors] | None = None) -> TinyModels:
    def model(kind: str) -> TinyModel:
        return TinyModel(
            kind=kind,
            folder=root / "diffusers" / kind,
            config=root / "configs" / kind,
            safetensors=root / "single" / f"{kind}.safetensors",
            ckpt=root / "single" / f"{kind}.ckpt",
            pipeline_class=PIPELINE_CLASS[kind],
            _state_dict=(state_dicts or {}).get(kind),
        )

    return TinyModels(
        root=root,
        config_root=root / "configs",
        karlo_stats=root / "karlo" / "ViT-L-14_stats.th",
        **{k.replace("-", "_"): model(k) for k in KINDS},
    )


def build_tiny_models(base: Path | str) -> TinyModels:
    """Build (or reuse) every tiny model under ``base / "tiny-<cache_key>"``.

    A finished build has ``BUILD.json``; builds go to a temporary sibling first and are renamed into place, so an
    interrupted or concurrent build is never reused half-done.
    """
    base = Path(base)
    root = base / f"tiny-{cache_key()}"
    if (root / "BUILD.json").is_file():
        return _models_at(root)
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-build-", dir=base))
    t0 = time.perf_counter()
    try:
        write_clip_vocab(tmp / "configs" / "clip-tokenizer")  # the shared folder holds only the vocab
        with torch.random.fork_rng(devices=[]):  # module constructors draw from the global RNG: leave it unchanged
            state_dicts = {kind: _build_one(kind, tmp) for kind in KINDS}
        shutil.rmtree(tmp / "tok")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    info = {"key": cache_key(), "build_seconds": round(time.perf_counter() - t0, 2)}
    (tmp / "BUILD.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    try:
        os.rename(tmp, root)
    except OSError:  # a concurrent build won the race: use it
        shutil.rmtree(tmp, ignore_errors=True)
        if not (root / "BUILD.json").is_file():
            raise
        return _models_at(root)
    return _models_at(root, state_dicts)
