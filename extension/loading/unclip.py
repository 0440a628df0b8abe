"""SD 2.1 unCLIP (-h / -l) -> diffusers ``StableUnCLIPImg2ImgPipeline``, from a single file, a folder or a hub id.

diffusers has no single-file loader for unCLIP (its legacy converter downloads the image encoder from the hub), so the
pipeline is assembled per component from one read of the checkpoint:

- UNet, VAE: ``from_single_file(<that component's part of the state dict>, config=<config folder>)``;
- text encoder (OpenCLIP-H): ``diffusers.loaders.single_file_utils.create_diffusers_clip_model_from_ldm``;
- image encoder: OUR mapping of ``embedder.model.visual.*`` (clip_vision.py), never the hub;
- image normalizer: mean 0 / std 1 for -h; the Karlo ViT-L-14 statistics for -l (not stored in the checkpoints);
- schedulers, feature extractor, tokenizer: from the config folder.

Each component's weights are moved out of the state dict before conversion and dropped after, so no second full copy
of the checkpoint is ever alive.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..device.precision import Precision, pick
from ..errors import ModelLoadError
from ._common import SingleFileParts, attach_info, build, free_memory, load_folder, load_hub, scheduler
from .checkpoint import Checkpoint, load_weights_only
from .clip_vision import build_image_encoder, convert_visual
from .configs import build_tokenizer, config_dir, read_json
from .detect import check_role, detect_kind, yaml_unclip_override
from .source import Source, resolve_source
from .text_tower import build_text_head, build_whole_text_tower, head_tensors, whole_tower_tensors

if TYPE_CHECKING:
    from diffusers import StableUnCLIPImg2ImgPipeline

KARLO_FILE = "ViT-L-14_stats.th"


def find_karlo_stats(
    karlo_stats: str | os.PathLike[str] | None = None,
    models_dir: str | os.PathLike[str] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
) -> Path:
    """Locate the Karlo ViT-L-14 statistics that unCLIP-L needs.

    Order: ``karlo_stats`` (file, or folder holding it) -> ``<models_dir>/karlo/ViT-L-14_stats.th`` ->
    ``<checkpoint folder>/ViT-L-14_stats.th`` -> ``<checkpoint folder>/../karlo/ViT-L-14_stats.th`` (the WebUI layout:
    models/Stable-diffusion/<ckpt> next to models/karlo/).
    """
    if karlo_stats:
        p = Path(karlo_stats).expanduser()
        if p.is_dir():
            p = p / KARLO_FILE
        if not p.is_file():
            raise ModelLoadError(
                f"Karlo statistics file not found: {p} (expected the WebUI's models/karlo/{KARLO_FILE})"
            )
        return p
    candidates: list[Path] = []
    if models_dir:
        candidates.append(Path(models_dir).expanduser() / "karlo" / KARLO_FILE)
    if checkpoint:
        for ck in dict.fromkeys((Path(os.path.abspath(checkpoint)), Path(checkpoint).resolve())):
            candidates += [ck.parent / KARLO_FILE, ck.parent.parent / "karlo" / KARLO_FILE]
    for c in candidates:
        if c.is_file():
            return c
    looked = "; ".join(str(c) for c in candidates) or "nowhere (no models folder given)"
    raise ModelLoadError(
        f"unCLIP-L needs the Karlo CLIP statistics file {KARLO_FILE}, which is not stored in the checkpoint. "
        f"Every AUTOMATIC1111 install ships it as models/karlo/{KARLO_FILE}: copy it into the karlo folder of your "
        f"models directory (models/karlo/{KARLO_FILE}) or give its path (setting 'Karlo stats path', CLI --karlo-stats). "
        f"Looked in: {looked}"
    )


def load_karlo_stats(path: str | os.PathLike[str], dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Read ``(mean, std)`` from a Karlo stats file (weights-only) as two ``[1, dim]`` float tensors."""
    obj = load_weights_only(path, what="statistics file")
    if isinstance(obj, dict):
        obj = (obj.get("mean"), obj.get("std"))
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2 and all(isinstance(t, torch.Tensor) for t in obj)):
        raise ModelLoadError(f"{Path(path).name} is not a Karlo statistics file (expected a (mean, std) pair): {path}")
    mean, std = (t.detach().float().reshape(1, -1) for t in obj)
    if mean.shape[1] != dim or std.shape[1] != dim:
        raise ModelLoadError(
            f"{Path(path).name} holds statistics of width {mean.shape[1]}, but this unCLIP-L model's image embedding "
            f"is {dim} wide ({path})"
        )
    return mean, std


def load_unclip(
    source: str | os.PathLike[str],
    *,
    config_root: str | os.PathLike[str] | None = None,
    karlo_stats: str | os.PathLike[str] | None = None,
    models_dir: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> StableUnCLIPImg2ImgPipeline:
    """Load SD 2.1 unCLIP (-h or -l) as a ``StableUnCLIPImg2ImgPipeline`` with ``pipe.reimagine_info`` set.

    ``source``: a .safetensors/.ckpt in the original layout, a diffusers folder, or a hub id (online, or cached).
    ``config_root``: folder with ``unclip-h``/``unclip-l``/``clip-tokenizer`` configs (default: bundled).
    ``karlo_stats``/``models_dir``: where to find ``ViT-L-14_stats.th`` for -l single files (see find_karlo_stats).
    Raises ModelLoadError with a user-facing message on missing/bad/unsafe files and wrong model types.
    """
    from diffusers import StableUnCLIPImg2ImgPipeline

    src = resolve_source(source)
    prec = pick(device, dtype)
    root = Path(config_root) if config_root is not None else None
    if src.type == "folder":
        return load_folder(StableUnCLIPImg2ImgPipeline, src, "unclip", prec, root)
    if src.type == "hub":
        return load_hub(StableUnCLIPImg2ImgPipeline, src, "unclip", prec)
    return _from_file(src.path, prec, root, karlo_stats, models_dir, src)


def _from_file(
    path: Path,
    prec: Precision,
    root: Path | None,
    karlo_stats: str | os.PathLike[str] | None,
    models_dir: str | os.PathLike[str] | None,
    src: Source,
) -> StableUnCLIPImg2ImgPipeline:
    from diffusers import StableUnCLIPImg2ImgPipeline
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
    from transformers import CLIPImageProcessor, CLIPTextModel

    name = path.name
    ck = Checkpoint.open(path)
    kind = detect_kind(ck.shapes, config_root=root)
    override = yaml_unclip_override(path)
    if override and kind in ("unclip-h", "unclip-l"):
        kind = override
    check_role(kind, "unclip", name)
    cfg = config_dir(kind, root)
    emb_dim = int(read_json(cfg / "image_normalizer" / "config.json")["embedding_dim"])
    _check_embedder_width(ck.shapes, cfg, kind, name, override is not None)
    stats = None
    if kind == "unclip-l":  # fail before reading gigabytes
        stats = load_karlo_stats(find_karlo_stats(karlo_stats, models_dir, path), emb_dim)

    sd = ck.take_state_dict()
    del ck
    try:
        single = SingleFileParts(sd, cfg, name, prec)
        unet, vae = single.unet(), single.vae()
        # Edit by text's tower (text_tower.py), taken before the text encoder's conversion takes its keys: -h extends
        # the text encoder (same CLIP as the image embedder), -l has OpenAI CLIP's own text tower in the embedder
        tower = head_tensors(sd) if kind == "unclip-h" else whole_tower_tensors(sd)
        text_encoder = single.text_encoder(CLIPTextModel, "text encoder", "cond_stage_model.", "text_encoder")
        image_encoder = build(
            "image encoder",
            name,
            lambda: build_image_encoder(
                convert_visual(sd), cfg / "image_encoder", dtype=prec.dtype, device=prec.device
            ),
        )
        if kind == "unclip-h":
            text_tower = build_text_head(tower, text_encoder, dtype=prec.dtype, device=prec.device)
        else:
            text_tower = build_whole_text_tower(tower)
        del tower
    finally:
        sd.clear()  # the rest (noise_augmentor buffers, EMA) is not needed
        free_memory(prec.device)

    normalizer = StableUnCLIPImageNormalizer.from_config(read_json(cfg / "image_normalizer" / "config.json"))
    if stats is not None:
        with torch.no_grad():
            normalizer.mean.copy_(stats[0])
            normalizer.std.copy_(stats[1])
    normalizer = normalizer.to(prec.device, prec.dtype)  # its own to(torch_device, torch_dtype) signature

    pipe = StableUnCLIPImg2ImgPipeline(
        feature_extractor=CLIPImageProcessor.from_pretrained(str(cfg / "feature_extractor")),
        image_encoder=image_encoder,
        image_normalizer=normalizer,
        image_noising_scheduler=scheduler(cfg / "image_noising_scheduler"),
        tokenizer=build_tokenizer(cfg / "tokenizer", root),
        text_encoder=text_encoder,
        unet=unet,
        scheduler=scheduler(cfg / "scheduler"),
        vae=vae,
    )
    pipe.reimagine_text_tower = text_tower
    return attach_info(pipe, src, kind)


def _check_embedder_width(shapes: dict, cfg: Path, kind: str, name: str, from_yaml: bool) -> None:
    """The checkpoint's image tower must have the width of ``kind``'s image encoder config."""
    conv = shapes.get("embedder.model.visual.conv1.weight")
    if not conv:
        return
    hidden = int(read_json(cfg / "image_encoder" / "config.json")["hidden_size"])
    if conv[0] != hidden:
        why = f"its .yaml says {kind}" if from_yaml else f"it was detected as {kind}"
        raise ModelLoadError(
            f"{name}: {why}, but its image embedder is {conv[0]} wide where {kind} has {hidden}; "
            "remove or fix the .yaml next to the file"
        )
