"""The bundled config-only folders (extension/configs) describe the real models and read under both transformers."""

from __future__ import annotations

import json

import pytest
import torch

from extension.device.precision import Precision, parse_dtype, pick
from extension.loading import BUNDLED_CONFIGS, build_tokenizer, detect_kind

# parameter counts of the real models (UNet / VAE / text encoder(s) / image encoder)
REAL_PARAMS = {
    "unclip-h": {"unet": 870_173_124, "vae": 83_653_863, "text_encoder": 340_387_840, "image_encoder": 632_076_800},
    "unclip-l": {"unet": 869_517_764, "vae": 83_653_863, "text_encoder": 340_387_840, "image_encoder": 303_966_208},
    "sdxl-base": {"unet": 2_567_463_684, "vae": 83_653_863, "text_encoder": 123_060_480, "text_encoder_2": 694_659_840},
    "sdxl-refiner": {"unet": 2_259_526_660, "vae": 83_653_863, "text_encoder_2": 694_659_840},
}


def _meta_model(kind: str, name: str) -> torch.nn.Module:
    from accelerate import init_empty_weights

    from extension.loading.configs import component_from_config

    with init_empty_weights():
        return component_from_config(kind, name)


@pytest.mark.parametrize("kind", sorted(REAL_PARAMS))
def test_bundled_configs_build_the_real_architectures(kind) -> None:
    for name, count in REAL_PARAMS[kind].items():
        model = _meta_model(kind, name)
        assert sum(p.numel() for p in model.parameters()) == count, f"{kind}/{name}"
    index = json.loads((BUNDLED_CONFIGS / kind / "model_index.json").read_text())
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or value[0] is None:
            continue
        assert (BUNDLED_CONFIGS / kind / name).is_dir(), f"{kind}: component folder {name} missing"


def test_key_facts_of_the_bundled_configs() -> None:
    def cfg(rel: str) -> dict:
        return json.loads((BUNDLED_CONFIGS / rel).read_text())

    for kind, emb in (("unclip-h", 1024), ("unclip-l", 768)):
        unet = cfg(f"{kind}/unet/config.json")
        assert unet["class_embed_type"] == "projection"
        assert unet["projection_class_embeddings_input_dim"] == 2 * emb
        assert unet["upcast_attention"] is True and unet["attention_head_dim"] == [5, 10, 20, 20]
        assert cfg(f"{kind}/image_normalizer/config.json")["embedding_dim"] == emb
        assert cfg(f"{kind}/image_encoder/config.json")["projection_dim"] == emb
        assert cfg(f"{kind}/image_noising_scheduler/scheduler_config.json")["beta_schedule"] == "squaredcos_cap_v2"
        assert cfg(f"{kind}/scheduler/scheduler_config.json")["prediction_type"] == "v_prediction"
        assert cfg(f"{kind}/vae/config.json")["scaling_factor"] == 0.18215
        assert cfg(f"{kind}/text_encoder/config.json")["num_hidden_layers"] == 23
    assert cfg("unclip-h/image_encoder/config.json")["hidden_act"] == "gelu"
    assert cfg("unclip-l/image_encoder/config.json")["hidden_act"] == "quick_gelu"
    for kind in ("sdxl-base", "sdxl-refiner"):
        vae = cfg(f"{kind}/vae/config.json")
        assert vae["scaling_factor"] == 0.13025 and vae["force_upcast"] is True
    refiner = cfg("sdxl-refiner/model_index.json")
    assert refiner["requires_aesthetics_score"] is True and refiner["text_encoder"] == [None, None]


@pytest.mark.parametrize(
    ("folder", "pad_id"),
    [("unclip-h/tokenizer", 0), ("unclip-l/tokenizer", 0), ("sdxl-base/tokenizer", 49407),
     ("sdxl-base/tokenizer_2", 0), ("sdxl-refiner/tokenizer_2", 0)],
)  # fmt: skip
def test_bundled_tokenizers_match_open_clip(folder, pad_id) -> None:
    from open_clip.tokenizer import SimpleTokenizer

    tok = build_tokenizer(BUNDLED_CONFIGS / folder)
    assert len(tok) == 49408 and tok.model_max_length == 77
    assert tok.pad_token_id == pad_id
    ref = SimpleTokenizer()
    # (no "!" here: under transformers 4.46 the "!" pad token is split out of "!!", unlike open_clip — same for the
    # official SD2 tokenizer files loaded with from_pretrained)
    for text in ("a photograph of an astronaut riding a horse", "Héllo, wörld? 42 <cat> fox-like"):
        assert tok(text).input_ids == [49406, *ref.encode(text), 49407]


def test_bundled_vocab_is_the_open_clip_recipe(tmp_path) -> None:
    """extension/configs/clip-tokenizer was produced by bench/make_clip_tokenizer.py, which runs this recipe (the one
    the fixtures use too)."""
    from tests.tiny_models import write_clip_vocab

    write_clip_vocab(tmp_path)
    for name in ("vocab.json", "merges.txt"):
        ours = (BUNDLED_CONFIGS / "clip-tokenizer" / name).read_text(encoding="utf-8")
        theirs = (tmp_path / name).read_text(encoding="utf-8")
        if name == "vocab.json":
            assert json.loads(ours) == json.loads(theirs)
        else:
            assert ours == theirs


@pytest.mark.parametrize(
    ("kind", "ln_final", "label"),
    [("unclip-h", 1024, 2048), ("unclip-l", 768, 1536)],
)
def test_real_unclip_widths_are_detected(kind, ln_final, label) -> None:
    base = {"model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3), "embedder.model.visual.conv1.weight": (1,)}
    assert detect_kind({**base, "embedder.model.ln_final.weight": (ln_final,)}) == kind
    assert detect_kind({**base, "model.diffusion_model.label_emb.0.0.weight": (1280, label)}) == kind


def test_precision_policy() -> None:
    assert pick("cpu") == Precision(torch.device("cpu"), torch.float32)
    assert pick("cpu", "bf16").dtype == torch.bfloat16
    assert pick("cpu", cpu_dtype=torch.bfloat16).dtype == torch.bfloat16
    assert pick("cuda").dtype == torch.float16 and pick("cuda").vae_force_upcast
    assert pick("cuda:1", "fp32").dtype == torch.float32
    assert pick("mps").dtype == torch.float16
    assert parse_dtype("auto") is None and parse_dtype(torch.float16) is torch.float16
    assert str(pick("cpu")) == "cpu float32"
    from extension.errors import ParamError

    with pytest.raises(ParamError, match=r"Unknown precision 'fp8'"):
        parse_dtype("fp8")
