"""Model loading: every tiny form loads offline to the fixture's weights; wrong/bad/unsafe files are refused
with clear messages; the cache reuses loads."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from extension.errors import HubUnreachableError, ModelLoadError
from extension.loading import (
    ModelCache,
    ModelInfo,
    detect_kind,
    find_karlo_stats,
    load_karlo_stats,
    load_sdxl,
    load_unclip,
    read_state_dict,
    yaml_unclip_override,
)

FORMS = ("safetensors", "ckpt", "folder")
ROLE = {"unclip-h": "unclip", "unclip-l": "unclip", "sdxl-base": "base", "sdxl-refiner": "refiner"}


def _load(kind: str, source, tiny, **kw):
    if ROLE[kind] == "unclip":
        return load_unclip(source, config_root=tiny.config_root, karlo_stats=tiny.karlo_stats, device="cpu", **kw)
    return load_sdxl(source, role=ROLE[kind], config_root=tiny.config_root, device="cpu", **kw)


def _run(pipe, kind: str) -> np.ndarray:
    """2 denoising steps on a 64x64 input; returns the (1, 64, 64, 3) float image."""
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    gen = torch.Generator().manual_seed(1234)
    if ROLE[kind] == "unclip":
        out = pipe(image=img, prompt="a red fox", num_inference_steps=2, height=64, width=64, generator=gen,
                   output_type="np")  # fmt: skip
    elif kind == "sdxl-refiner":
        out = pipe(prompt="a red fox", image=img, strength=0.5, num_inference_steps=4, generator=gen, output_type="np")
    else:
        out = pipe(prompt="a red fox", num_inference_steps=2, height=64, width=64, generator=gen, output_type="np")
    return out.images


@pytest.fixture(scope="module")
def reference(tiny):
    """The fixture's diffusers folders loaded by plain diffusers (the ground truth), one per kind, built lazily."""
    import diffusers

    cache: dict[str, tuple[object, np.ndarray]] = {}

    def get(kind: str) -> tuple[object, np.ndarray]:
        """(pipeline, its image from _run)."""
        if kind not in cache:
            cls = getattr(diffusers, tiny[kind].pipeline_class)
            pipe = cls.from_pretrained(tiny[kind].folder, local_files_only=True, torch_dtype=torch.float32)
            cache[kind] = (pipe, _run(pipe, kind))
        return cache[kind]

    return get


def _weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.float() for k, v in module.state_dict().items() if not k.endswith("position_ids")}


def _assert_same_weights(ours: torch.nn.Module, ref: torch.nn.Module, what: str) -> None:
    a, b = _weights(ours), _weights(ref)
    assert a.keys() == b.keys(), f"{what}: keys differ: {sorted(a.keys() ^ b.keys())[:5]}"
    for k in a:
        assert torch.equal(a[k], b[k]), f"{what}: {k} differs"


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kind", ["unclip-h", "unclip-l", "sdxl-base", "sdxl-refiner"])
def test_every_form_loads_offline_to_the_fixture_weights(
    tiny, reference, kind, form, hub_online, network_attempts, monkeypatch
):
    """Loads with HF_HUB_OFFLINE *unset* and sockets blocked: no network attempt; same weights, same image."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    model = tiny[kind]
    source = model.folder if form == "folder" else getattr(model, form)
    pipe = _load(kind, source, tiny)
    assert type(pipe).__name__ == model.pipeline_class
    ref, ref_images = reference(kind)
    components = ["unet", "vae"]
    components += {"unclip": ["text_encoder", "image_encoder", "image_normalizer"],
                   "base": ["text_encoder", "text_encoder_2"], "refiner": ["text_encoder_2"]}[ROLE[kind]]  # fmt: skip
    for name in components:
        _assert_same_weights(getattr(pipe, name), getattr(ref, name), name)
    if kind == "sdxl-refiner":
        assert pipe.text_encoder is None and pipe.tokenizer is None
        assert pipe.config.requires_aesthetics_score is True
    images = _run(pipe, kind)
    assert images.shape == (1, 64, 64, 3)
    assert np.isfinite(images).all()
    np.testing.assert_allclose(images, ref_images, atol=1e-5)
    info = pipe.reimagine_info
    assert isinstance(info, ModelInfo)
    assert info.kind == kind
    assert info.name == (source.name if form == "folder" else source.stem)
    assert info.source == ("folder" if form == "folder" else "file")
    assert network_attempts == []


def test_unclip_normalizer_statistics(tiny) -> None:
    """-h: mean 0 / std 1; -l: the Karlo statistics from the stats file (not stored in the checkpoint)."""
    h = load_unclip(tiny.unclip_h.safetensors, config_root=tiny.config_root, device="cpu")
    assert torch.equal(h.image_normalizer.mean, torch.zeros_like(h.image_normalizer.mean))
    assert torch.equal(h.image_normalizer.std, torch.ones_like(h.image_normalizer.std))
    mean, std = torch.load(tiny.karlo_stats, weights_only=True)
    l_ = load_unclip(tiny.unclip_l.ckpt, config_root=tiny.config_root, karlo_stats=tiny.karlo_stats, device="cpu")
    assert torch.equal(l_.image_normalizer.mean.detach(), mean.reshape(1, -1))
    assert torch.equal(l_.image_normalizer.std.detach(), std.reshape(1, -1))


# --------------------------------------------------------------------------------------------------------------------
# detection and wrong roles
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["unclip-h", "unclip-l", "sdxl-base", "sdxl-refiner"])
def test_detect_kind_from_tensors_shapes_and_keys(tiny, kind) -> None:
    sd = tiny[kind].state_dict
    assert detect_kind(sd) == kind
    assert detect_kind({k: tuple(v.shape) for k, v in sd.items()}) == kind
    assert detect_kind(list(sd)) == kind  # keys only: the structure decides (-l keeps the embedder's text tower)


def _tiny_file(path: Path, keys: dict[str, tuple[int, ...]]) -> Path:
    save_file({k: torch.zeros(s) for k, s in keys.items()}, str(path))
    return path


SD1 = {"cond_stage_model.transformer.text_model.embeddings.position_embedding.weight": (77, 8),
       "model.diffusion_model.input_blocks.0.0.weight": (8, 4, 3, 3)}  # fmt: skip
SD2 = {
    "cond_stage_model.model.token_embedding.weight": (10, 8),
    "model.diffusion_model.input_blocks.0.0.weight": (8, 4, 3, 3),
}


@pytest.mark.parametrize(
    ("keys", "kind"),
    [
        (SD1, "sd1"),
        ({**SD1, "model.diffusion_model.input_blocks.0.0.weight": (8, 9, 3, 3)}, "sd1-inpaint"),
        (SD2, "sd2"),
        ({**SD2, "model.diffusion_model.input_blocks.0.0.weight": (8, 5, 3, 3)}, "sd2-depth"),
        ({**SD2, "model.diffusion_model.input_blocks.0.0.weight": (8, 9, 3, 3)}, "sd2-inpaint"),
        ({"foo.weight": (2,)}, "unknown"),
    ],
)
def test_detect_other_families(keys, kind) -> None:
    assert detect_kind(keys) == kind


@pytest.mark.parametrize(
    ("kind", "form", "loader", "message"),
    [
        ("sdxl-base", "safetensors", "refiner",
         "sdxl-base.safetensors is an SDXL base checkpoint; the refiner post-pass needs an SDXL refiner "
         "(e.g. sd_xl_refiner_1.0.safetensors)"),
        ("sdxl-refiner", "safetensors", "unclip",
         "sdxl-refiner.safetensors is an SDXL refiner checkpoint; Reimagine (unCLIP image variations) needs an SD 2.1 "
         "unCLIP checkpoint (e.g. sd21-unclip-h.ckpt or sd21-unclip-l.ckpt)"),
        ("unclip-h", "ckpt", "refiner", "unclip-h.ckpt is an SD 2.1 unCLIP-H checkpoint"),
        ("sdxl-refiner", "ckpt", "base",
         "sdxl-refiner.ckpt is an SDXL refiner checkpoint; the SDXL base role needs an SDXL base checkpoint"),
        ("sdxl-base", "folder", "refiner", "sdxl-base is an SDXL base checkpoint; the refiner post-pass needs"),
        ("unclip-l", "folder", "base", "unclip-l is an SD 2.1 unCLIP-L checkpoint"),
        ("sdxl-base", "folder", "unclip", "sdxl-base is an SDXL base checkpoint; Reimagine (unCLIP image variations)"),
    ],
)  # fmt: skip
def test_wrong_model_for_the_role(tiny, kind, form, loader, message) -> None:
    model = tiny[kind]
    source = model.folder if form == "folder" else getattr(model, form)
    with pytest.raises(ModelLoadError) as exc:
        if loader == "unclip":
            load_unclip(source, config_root=tiny.config_root, karlo_stats=tiny.karlo_stats, device="cpu")
        else:
            load_sdxl(source, role=loader, config_root=tiny.config_root, device="cpu")
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (SD1, "sd15.safetensors is an SD 1.x checkpoint; the refiner post-pass needs an SDXL refiner"),
        (SD2, "sd15.safetensors is an SD 2.x checkpoint; the refiner post-pass needs an SDXL refiner"),
        ({"foo.weight": (2,)}, "sd15.safetensors is not a Stable Diffusion checkpoint that we recognise"),
    ],
)
def test_other_families_are_refused_by_name(tmp_path, keys, message) -> None:
    path = _tiny_file(tmp_path / "sd15.safetensors", keys)
    with pytest.raises(ModelLoadError, match=message):
        load_sdxl(path, role="refiner", device="cpu")
    with pytest.raises(ModelLoadError, match=r"needs an SD 2.1 unCLIP checkpoint"):
        load_unclip(path, device="cpu")


def test_yaml_next_to_the_file_overrides_the_variant(tiny, tmp_path) -> None:
    ck = tmp_path / "merged-unclip.safetensors"
    os.symlink(tiny.unclip_h.safetensors, ck)
    assert yaml_unclip_override(ck) is None
    yml = ck.with_suffix(".yaml")
    yml.write_text(
        "model:\n  params:\n    embedder_config:\n      target: ldm.modules.encoders.modules.ClipImageEmbedder\n"
    )
    assert yaml_unclip_override(ck) == "unclip-l"
    with pytest.raises(
        ModelLoadError, match=r"merged-unclip.safetensors: its .yaml says unclip-l, but its image embedder"
    ):
        load_unclip(ck, config_root=tiny.config_root, karlo_stats=tiny.karlo_stats, device="cpu")
    yml.write_text("    embedder_config:\n      target: ldm.modules.encoders.modules.FrozenOpenCLIPImageEmbedder\n")
    assert yaml_unclip_override(ck) == "unclip-h"


# --------------------------------------------------------------------------------------------------------------------
# bad files
# --------------------------------------------------------------------------------------------------------------------


def _truncated(src: Path, dst: Path, keep: float | int) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    return dst


def test_truncated_and_corrupt_safetensors(tiny, tmp_path) -> None:
    src = tiny.sdxl_refiner.safetensors
    cases = {
        "half.safetensors": _truncated(src, tmp_path / "half.safetensors", 0.5),  # header intact, data cut
        "stub.safetensors": _truncated(src, tmp_path / "stub.safetensors", 5),  # header cut
    }
    (tmp_path / "garbage.safetensors").write_bytes(b"<html>404 not found</html>" * 10)
    cases["garbage.safetensors"] = tmp_path / "garbage.safetensors"
    for name, path in cases.items():
        expected = f"{name} is not a valid .safetensors file — it is truncated or corrupt"
        with pytest.raises(ModelLoadError, match=expected):
            load_sdxl(path, role="refiner", config_root=tiny.config_root, device="cpu")
        with pytest.raises(ModelLoadError, match=expected):
            read_state_dict(path)


def test_ckpt_that_is_not_a_checkpoint(tiny, tmp_path) -> None:
    text = tmp_path / "notes.ckpt"
    text.write_text("these are my prompts, not a model")
    with pytest.raises(ModelLoadError, match=r"notes.ckpt is not a checkpoint: it is neither a PyTorch file"):
        load_unclip(text, device="cpu")
    cut = _truncated(tiny.unclip_h.ckpt, tmp_path / "cut.ckpt", 0.5)
    with pytest.raises(ModelLoadError, match=r"cut.ckpt is truncated or corrupt"):
        load_unclip(cut, config_root=tiny.config_root, device="cpu")
    lst = tmp_path / "list.ckpt"
    torch.save([1, 2, 3], lst)
    with pytest.raises(ModelLoadError, match=r"list.ckpt is not a model checkpoint: it holds a list"):
        read_state_dict(lst)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"empty.safetensors is empty \(0 bytes\)"):
        read_state_dict(empty)


def test_missing_file_and_bad_folders(tiny, tmp_path, monkeypatch) -> None:
    with pytest.raises(ModelLoadError, match=r"Model file not found: .*nope.safetensors"):
        load_unclip(tmp_path / "nope.safetensors")
    with pytest.raises(ModelLoadError, match=r"Model file not found"):
        read_state_dict(tmp_path / "nope.ckpt")
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match=r"empty-folder is not a diffusers model folder"):
        load_sdxl(empty, role="refiner")
    broken = tmp_path / "broken"
    shutil.copytree(tiny.sdxl_refiner.folder, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"Cannot load the model folder .*broken"):
        load_sdxl(broken, role="refiner", device="cpu")
    (broken / "model_index.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"Cannot read configuration .*model_index.json"):
        load_sdxl(broken, role="refiner", device="cpu")

    def denied(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "listdir", denied)  # root can read anything: simulate an unreadable folder
    with pytest.raises(ModelLoadError, match=r"Cannot read model folder .*broken: Permission denied"):
        load_sdxl(broken, role="refiner")


def test_missing_component_is_named(tiny, tmp_path) -> None:
    sd = {k: v for k, v in tiny.sdxl_refiner.state_dict.items() if not k.startswith("first_stage_model.")}
    path = tmp_path / "no-vae.safetensors"
    save_file(sd, str(path))
    with pytest.raises(ModelLoadError, match=r"no-vae.safetensors has no VAE weights"):
        load_sdxl(path, role="refiner", config_root=tiny.config_root, device="cpu")


# --------------------------------------------------------------------------------------------------------------------
# malicious pickles
# --------------------------------------------------------------------------------------------------------------------


class _Payload:
    """Pickles as a call to exec() that would create a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("zipfile", [True, False])
@pytest.mark.parametrize("where", ["top-level", "nested"])
def test_malicious_pickle_is_refused_without_running_it(tiny, tmp_path, where, zipfile) -> None:
    marker = tmp_path / "MARKER"
    payload = _Payload(marker)
    obj = payload if where == "top-level" else {"state_dict": {**tiny.sdxl_refiner.state_dict, "evil": payload}}
    path = tmp_path / "evil.ckpt"
    torch.save(obj, path, _use_new_zipfile_serialization=zipfile)
    assert not marker.exists()
    for load in (
        lambda: read_state_dict(path),
        lambda: load_sdxl(path, role="refiner", config_root=tiny.config_root, device="cpu"),
        lambda: load_karlo_stats(path, 24),
    ):
        with pytest.raises(ModelLoadError) as exc:
            load()
        msg = str(exc.value)
        assert "evil.ckpt is unsafe: it is not a plain checkpoint" in msg
        assert "refused without running anything" in msg
        assert "(it asks for exec)" in msg
    assert not marker.exists()


def test_webui_patched_torch_load_returning_none(tiny, monkeypatch) -> None:
    """A1111's modules/safe.py replaces torch.load with a filter that returns None: we never call torch.load."""
    calls = []

    def fake_safe_load(*args, **kwargs):
        calls.append(args)

    monkeypatch.setattr(torch, "load", fake_safe_load)
    pipe = load_sdxl(tiny.sdxl_refiner.ckpt, role="refiner", config_root=tiny.config_root, device="cpu")
    assert pipe.reimagine_info.kind == "sdxl-refiner"
    assert calls == []
    # and if even torch.serialization.load gives None, the user gets a message instead of a crash
    monkeypatch.setattr(torch.serialization, "load", fake_safe_load)
    with pytest.raises(
        ModelLoadError, match=r"sdxl-refiner.ckpt could not be read: the checkpoint loader returned nothing"
    ):
        read_state_dict(tiny.sdxl_refiner.ckpt)


# --------------------------------------------------------------------------------------------------------------------
# hub ids, network, Karlo statistics
# --------------------------------------------------------------------------------------------------------------------


def test_hub_id_offline_gives_a_clear_error(network_attempts) -> None:
    with pytest.raises(
        ModelLoadError, match=r"stabilityai/stable-diffusion-2-1-unclip looks like a Hugging Face hub id"
    ):
        load_unclip("stabilityai/stable-diffusion-2-1-unclip", device="cpu")
    assert network_attempts == []


def test_hub_id_online_without_network_fails_fast(hub_online, network_attempts) -> None:
    """No network (the guard) and offline mode off: the offline-mode advice, not the hub client's error."""
    with pytest.raises(HubUnreachableError) as exc:
        load_sdxl("stabilityai/stable-diffusion-xl-refiner-1.0", role="refiner", device="cpu")
    assert network_attempts  # it did try (and the guard stopped it at once)
    message = str(exc.value)
    assert message.startswith("stabilityai/stable-diffusion-xl-refiner-1.0 looks like a Hugging Face hub id")
    assert "cannot be reached (no network)" in message and "choose a local .safetensors/.ckpt file" in message


def _webui_tree(tmp_path: Path, tiny, with_stats: bool) -> Path:
    models = tmp_path / "models"
    (models / "Stable-diffusion").mkdir(parents=True)
    ck = models / "Stable-diffusion" / "sd21-unclip-l.safetensors"
    shutil.copy(tiny.unclip_l.safetensors, ck)  # a copy: a symlink would lead to the fixture's own karlo/
    if with_stats:
        (models / "karlo").mkdir()
        shutil.copy(tiny.karlo_stats, models / "karlo" / "ViT-L-14_stats.th")
    return ck


def test_karlo_stats_missing_names_the_file_and_folder(tiny, tmp_path) -> None:
    ck = _webui_tree(tmp_path, tiny, with_stats=False)
    with pytest.raises(ModelLoadError) as exc:
        load_unclip(ck, config_root=tiny.config_root, device="cpu")
    msg = str(exc.value)
    assert "ViT-L-14_stats.th" in msg and "models/karlo" in msg
    assert str(tmp_path / "models" / "karlo" / "ViT-L-14_stats.th") in msg  # where it looked
    with pytest.raises(ModelLoadError, match=r"Karlo statistics file not found: .*elsewhere"):
        find_karlo_stats(tmp_path / "elsewhere.th")


def test_karlo_stats_found_in_the_webui_layout(tiny, tmp_path) -> None:
    ck = _webui_tree(tmp_path, tiny, with_stats=True)
    expected = tmp_path / "models" / "karlo" / "ViT-L-14_stats.th"
    assert find_karlo_stats(checkpoint=ck) == expected  # models/Stable-diffusion/<ckpt> -> models/karlo/
    assert find_karlo_stats(models_dir=tmp_path / "models") == expected
    assert find_karlo_stats(tmp_path / "models" / "karlo") == expected  # a folder holding it
    pipe = load_unclip(ck, config_root=tiny.config_root, device="cpu")
    assert pipe.reimagine_info.kind == "unclip-l"


def test_karlo_stats_of_the_wrong_width(tiny, tmp_path) -> None:
    bad = tmp_path / "ViT-L-14_stats.th"
    torch.save((torch.zeros(1, 7), torch.ones(1, 7)), bad)
    with pytest.raises(
        ModelLoadError, match=r"holds statistics of width 7, but this unCLIP-L model's image embedding is 24"
    ):
        load_unclip(tiny.unclip_l.safetensors, config_root=tiny.config_root, karlo_stats=bad, device="cpu")
    mean, std = load_karlo_stats(tiny.karlo_stats, 24)
    assert mean.shape == std.shape == (1, 24)
    torch.save((torch.zeros(24), torch.ones(24)), bad)  # [768]-style vectors are accepted too
    assert load_karlo_stats(bad, 24)[0].shape == (1, 24)


# --------------------------------------------------------------------------------------------------------------------
# cache and model info
# --------------------------------------------------------------------------------------------------------------------


def test_cache_reuses_loads_and_unloads(tiny, tmp_path) -> None:
    cache = ModelCache()
    path = tmp_path / "refiner.safetensors"
    shutil.copy(tiny.sdxl_refiner.safetensors, path)
    kw = {"config_root": tiny.config_root, "device": "cpu"}
    a = cache.get("refiner", path, **kw)
    b = cache.get("sdxl-refiner", str(path), **kw)
    assert a is b and cache.loads == 1 and len(cache) == 1
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the file changed on disk: reload, drop stale
    c = cache.get("refiner", path, **kw)
    assert c is not a and cache.loads == 2 and len(cache) == 1
    assert cache.unload("refiner", path, **kw) is True
    assert len(cache) == 0 and cache.unload("refiner", path, **kw) is False
    with pytest.raises(ModelLoadError, match=r"sdxl-refiner.safetensors is an SDXL refiner checkpoint"):
        cache.get("unclip", tiny.sdxl_refiner.safetensors, **kw)
    assert len(cache) == 0


def test_cache_keys_lru_and_clear(tiny) -> None:
    calls: list[tuple] = []

    def fake(source, **kw):
        calls.append((str(source), tuple(sorted(kw))))
        return object()

    cache = ModelCache(max_items=2, loaders={"unclip": fake, "refiner": fake, "base": fake})
    h, l_ = tiny.unclip_h.safetensors, tiny.unclip_l.safetensors
    p1 = cache.get("unclip", h)
    assert cache.get("unclip", h) is p1
    assert cache.get("unclip", h, dtype="fp32") is p1  # cpu default is fp32: same key
    p2 = cache.get("unclip", h, dtype="bf16")  # other precision: other model
    assert p2 is not p1 and cache.loads == 2
    cache.get("refiner", tiny.sdxl_refiner.folder)  # third entry evicts the least recently used (p1)
    assert cache.loads == 3 and len(cache) == 2
    assert cache.get("unclip", h) is not p1 and cache.loads == 4
    cache.get("unclip", l_, karlo_stats=tiny.karlo_stats)
    assert cache.unload("unclip") is True and all(k[0] != "unclip" for k in cache.keys())  # noqa: SIM118
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError, match=r"unknown model role"):
        cache.get("vae", h)


def test_model_info_hash_is_lazy_and_cached(tiny, tmp_path, monkeypatch) -> None:
    import hashlib

    from extension.loading import info as info_mod

    monkeypatch.setenv("REIMAGINE_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    real = info_mod.sha256_file
    monkeypatch.setattr(info_mod, "sha256_file", lambda p: calls.append(p) or real(p))
    path = tiny.sdxl_refiner.safetensors
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    info = ModelInfo(name="sdxl-refiner", kind="sdxl-refiner", path=str(path))
    assert calls == []  # nothing hashed until asked
    assert info.hash == expected[:10] and info.sha256 == expected
    again = ModelInfo(name="x", kind="sdxl-refiner", path=str(path))
    assert again.hash == expected[:10]
    assert len(calls) == 1  # second object: read from hashes.json
    assert (tmp_path / "cache" / "hashes.json").is_file()
    assert ModelInfo(name="f", kind="sdxl-refiner", path="/x", source="folder").hash is None
