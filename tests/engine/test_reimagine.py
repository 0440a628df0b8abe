"""The unCLIP variations engine, on the tiny -h model: what a user would notice."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from extension import infotext
from extension.engine.unclip import (
    InterpolationRequest,
    VariationRequest,
    augment_embedding,
    augmentation_noise,
    encode_image,
    generate,
    interpolate,
    iter_batches,
    output_size,
)
from extension.errors import ParamError


def _image(seed: int, size: tuple[int, int] = (64, 64)) -> Image.Image:
    pixels = np.random.RandomState(seed).randint(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


def _distance(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(_pixels(a) - _pixels(b)).mean())


@pytest.fixture(scope="module")
def pipe(tiny):
    from extension.loading import load_unclip

    return load_unclip(tiny.unclip_h.folder)


@pytest.fixture(scope="module")
def image_a() -> Image.Image:
    return _image(1)


@pytest.fixture(scope="module")
def image_b() -> Image.Image:
    return _image(2)


def _vary(pipe, images, progress=None, **kwargs):
    kwargs.setdefault("steps", 3)
    kwargs.setdefault("seed", 1234)
    return generate(pipe, VariationRequest(images=list(images), **kwargs), progress=progress)


def test_outputs_have_requested_count_size_and_seeds(pipe, image_a):
    result = _vary(pipe, [image_a], n_iter=2, batch_size=2, width=64, height=128, seed=10)
    assert [image.size for image in result.images] == [(64, 128)] * 4
    assert result.seeds == [10, 11, 12, 13]
    assert not result.interrupted
    assert all(np.isfinite(_pixels(image)).all() for image in result.images)


def test_default_size_keeps_input_aspect_at_native_area():
    fake_pipe = SimpleNamespace(unet=SimpleNamespace(config=SimpleNamespace(sample_size=96)), vae_scale_factor=8)
    wide = VariationRequest(images=[Image.new("RGB", (1024, 512))])
    assert output_size(wide, fake_pipe) == (1088, 512)
    square = VariationRequest(images=[Image.new("RGB", (300, 300))])
    assert output_size(square, fake_pipe) == (768, 768)
    explicit = VariationRequest(images=[Image.new("RGB", (300, 300))], width=512, height=640)
    assert output_size(explicit, fake_pipe) == (512, 640)


def test_same_seed_reproduces_and_other_seed_differs(pipe, image_a):
    first = _vary(pipe, [image_a], seed=77).images[0]
    again = _vary(pipe, [image_a], seed=77).images[0]
    other = _vary(pipe, [image_a], seed=78).images[0]
    assert _distance(first, again) == 0
    assert _distance(first, other) > 1


def test_random_seed_is_reported_and_reproduces(pipe, image_a):
    result = _vary(pipe, [image_a], seed=-1)
    assert result.seeds[0] >= 0
    assert f"Seed: {result.seeds[0]}" in result.infotexts[0]
    assert _distance(result.images[0], _vary(pipe, [image_a], seed=result.seeds[0]).images[0]) == 0


def test_batch_member_matches_single_run_with_its_seed(pipe, image_a):
    batch = _vary(pipe, [image_a], batch_size=3, seed=500)
    single = _vary(pipe, [image_a], seed=502)
    assert _distance(batch.images[2], single.images[0]) < 1.0  # same seed, same image (batched matmul rounding)


def test_input_image_reaches_unet_class_labels(pipe, image_a, image_b):
    captured: list[torch.Tensor] = []

    def capture(_module, args, kwargs):
        captured.append(kwargs["class_labels"].detach().clone())

    handle = pipe.unet.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        out_a = _vary(pipe, [image_a], steps=2, noise_level=0).images[0]
    finally:
        handle.remove()
    labels = captured[0]
    dim = pipe.image_encoder.config.projection_dim
    assert labels.shape == (2, 2 * dim)  # [uncond, cond] × [embedding, noise-level embedding]
    assert torch.count_nonzero(labels[0]) == 0  # the unconditional branch gets the all-zero vector
    embed = encode_image(pipe, image_a, "squash")
    seeded_noise = augmentation_noise([1234], embed.shape[-1])
    expected = augment_embedding(pipe, embed, 0, seeded_noise)
    torch.testing.assert_close(labels[1:], expected, rtol=1e-4, atol=1e-5)

    out_b = _vary(pipe, [image_b], steps=2, noise_level=0).images[0]
    assert _distance(out_a, out_b) > 1  # a different input changes the output under the same seed


def test_prompt_steers_output(pipe, image_a):
    plain = _vary(pipe, [image_a]).images[0]
    steered = _vary(pipe, [image_a], prompt="an oil painting of a lighthouse").images[0]
    assert _distance(plain, steered) > 1


def test_noise_level_changes_output(pipe, image_a):
    low = _vary(pipe, [image_a], noise_level=0).images[0]
    high = _vary(pipe, [image_a], noise_level=999).images[0]
    assert _distance(low, high) > 1
    assert "Noise level: 999" in _vary(pipe, [image_a], noise_level=999).infotexts[0]


def test_mix_weights_matter(pipe, image_a, image_b):
    only_a = _vary(pipe, [image_a]).images[0]
    weighted_a = _vary(pipe, [image_a, image_b], weights=[1.0, 0.0]).images[0]
    half = _vary(pipe, [image_a, image_b], weights=[0.5, 0.5])
    mostly_b = _vary(pipe, [image_a, image_b], weights=[0.2, 0.8]).images[0]
    assert _distance(only_a, weighted_a) < 0.5  # weight 0 removes image B entirely
    assert _distance(half.images[0], only_a) > 1
    assert _distance(half.images[0], mostly_b) > 1
    assert 'Mix weights: "0.5, 0.5"' in half.infotexts[0]


def test_slerp_mix_of_two_images(pipe, image_a, image_b):
    slerped = _vary(pipe, [image_a, image_b], mix="slerp").images[0]
    averaged = _vary(pipe, [image_a, image_b], mix="average").images[0]
    assert _distance(slerped, averaged) > 0


def test_clip_encodes_each_input_once_per_request(pipe, image_a, image_b):
    calls = []
    handle = pipe.image_encoder.register_forward_hook(lambda *args: calls.append(1))
    try:
        _vary(pipe, [image_a, image_b], n_iter=2, batch_size=2, steps=1)
    finally:
        handle.remove()
    assert len(calls) == 2


def test_fit_modes_change_the_embedding_of_a_wide_image(pipe):
    wide = _image(5, (128, 48))
    embeds = {fit: encode_image(pipe, wide, fit) for fit in ("squash", "crop", "pad")}
    assert not torch.allclose(embeds["squash"], embeds["crop"])
    assert not torch.allclose(embeds["squash"], embeds["pad"])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"noise_level": 1000}, "noise_level must be an integer from 0 to 999"),
        ({"steps": 0}, "steps must be an integer from 1 to 150"),
        ({"sampler_name": "Foo"}, "sampler_name must be one of"),
        ({"sampler_name": "DDIM", "scheduler": "Karras"}, "does not support schedule type 'Karras'"),
        ({"weights": [1.0, 2.0]}, "got 2 weight(s) for 1 image(s)"),
        ({"weights": [-1.0]}, "weights must be non-negative"),
        ({"width": 512}, "give both width and height"),
        ({"width": 100, "height": 64}, "width must be 0 (auto) or a multiple of 8"),
        ({"cfg_scale": float("nan")}, "cfg_scale must be a number"),
        ({"mix": "slerp"}, "slerp needs exactly 2 images"),
        ({"images": []}, "at least one input image"),
    ],
)
def test_bad_values_are_rejected_with_a_message(pipe, image_a, changes, message):
    values = {"images": [image_a], **changes}
    with pytest.raises(ParamError) as error:
        generate(pipe, VariationRequest(**values))
    assert message in str(error.value)


def test_progress_reports_every_step_and_stop_returns_finished_batches(pipe, image_a):
    reports: list[tuple[int, int]] = []
    result = _vary(pipe, [image_a], n_iter=3, steps=4, progress=lambda s, t: reports.append((s, t)))
    assert [step for step, _ in reports] == list(range(1, 13))
    assert {total for _, total in reports} == {12}
    assert len(result.images) == 3

    seen = []

    def stop_in_second_batch() -> bool:
        return len(seen) >= 6

    stopped = generate(
        pipe,
        VariationRequest(images=[image_a], n_iter=3, steps=4, seed=1234),
        progress=lambda s, t: seen.append(s),
        should_stop=stop_in_second_batch,
    )
    assert stopped.interrupted
    assert len(stopped.images) == 1 and stopped.seeds == [1234]
    assert _distance(stopped.images[0], result.images[0]) == 0


def test_infotext_parses_in_webui_format(pipe, image_a):
    result = _vary(pipe, [image_a], prompt="a red boat", negative_prompt="blurry", noise_level=321, seed=9)
    parsed = infotext.parse(result.infotexts[0])
    assert parsed["Prompt"] == "a red boat"
    assert parsed["Negative prompt"] == "blurry"
    assert parsed["Noise level"] == "321"
    assert parsed["Seed"] == "9"
    assert parsed["Steps"] == "3"
    assert parsed["Sampler"] == "DPM++ 2M"
    assert parsed["Size"] == "64x64"
    assert parsed["CLIP fit"] == "squash"


@pytest.mark.parametrize("sampler", ["Euler a", "Euler", "DPM++ 2M", "DPM++ 2M SDE", "DPM++ SDE", "DDIM", "UniPC"])
def test_every_sampler_gives_a_finite_image(pipe, image_a, sampler):
    result = _vary(pipe, [image_a], sampler_name=sampler, steps=2)
    assert np.isfinite(_pixels(result.images[0])).all()
    assert f"Sampler: {sampler}" in result.infotexts[0]


def test_interpolation_strip_is_ordered_with_fixed_noise(pipe, image_a, image_b):
    settings = VariationRequest(images=[], steps=3, seed=42, noise_level=0)
    strip = interpolate(pipe, InterpolationRequest(image_a, image_b, frames=4, variation=settings))
    assert len(strip.images) == 4
    assert strip.seeds == [42] * 4
    start = _vary(pipe, [image_a], seed=42, noise_level=0).images[0]
    end = _vary(pipe, [image_b], seed=42, noise_level=0).images[0]
    assert _distance(strip.images[0], start) < 0.5  # frame 0 is image A's variation under the same noise
    assert _distance(strip.images[-1], end) < 0.5  # the last frame is image B's
    assert _distance(strip.images[1], start) > 0 and _distance(strip.images[1], end) > 0
    assert [infotext.parse(text)["Interpolation"] for text in strip.infotexts] == ["1/4", "2/4", "3/4", "4/4"]


def test_interpolation_rejects_bad_frame_count(pipe, image_a, image_b):
    with pytest.raises(ParamError, match="frames must be"):
        interpolate(pipe, InterpolationRequest(image_a, image_b, frames=1))


def test_iter_batches_encodes_once_and_a_skipped_batch_lets_the_next_run(pipe, image_a):
    calls = []
    handle = pipe.image_encoder.register_forward_hook(lambda *args: calls.append(1))
    steps_seen: list[int] = []
    skips: list[int] = []

    def skip_second_batch() -> bool:
        """Skip once, after the first step of batch 2 (3 steps per batch), as the WebUI's Skip flag is cleared."""
        if len(steps_seen) == 4 and not skips:
            skips.append(1)
            return True
        return False

    try:
        batches = list(
            iter_batches(
                pipe,
                VariationRequest(images=[image_a], n_iter=3, steps=3, seed=20),
                progress=lambda step, steps: steps_seen.append(step),
                should_stop=skip_second_batch,
            )
        )
    finally:
        handle.remove()
    assert len(calls) == 1
    assert [b.interrupted for b in batches] == [False, True, False]
    assert [b.seeds for b in batches] == [[20], [], [22]]
    assert _distance(batches[2].images[0], _vary(pipe, [image_a], seed=22).images[0]) == 0
