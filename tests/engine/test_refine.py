"""The SDXL refiner post-pass engine and its CLI, on the tiny refiner: what a user would notice."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from extension import infotext
from extension.cli import main
from extension.engine.refiner import (
    BaseSettings,
    RefineRequest,
    choose_mode,
    encode_image,
    infotext_items,
    latents_fit_refiner,
    planned_steps,
    refine,
    schedule_length,
)
from extension.engine.samplers import make_scheduler
from extension.engine.vae import decode_latents
from extension.errors import ParamError
from extension.outputs import read_infotext, save_png
from extension.params import REFINER


def _image(seed: int, size: tuple[int, int] = (64, 64)) -> Image.Image:
    pixels = np.random.RandomState(seed).randint(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _smooth(size: tuple[int, int] = (64, 64)) -> Image.Image:
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
    return Image.fromarray(np.stack([xx * 4, yy * 4, (xx + yy) * 2], -1).astype(np.uint8))


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


def _distance(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(_pixels(a) - _pixels(b)).mean())


class Calls:
    """Counts forward calls of a module (and records what a hook function extracts)."""

    def __init__(self, module: torch.nn.Module, extract=None):
        self.count = 0
        self.seen: list = []
        self._extract = extract
        self._handle = module.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, _module, args, kwargs):
        self.count += 1
        if self._extract is not None:
            self.seen.append(self._extract(args, kwargs))

    def remove(self) -> None:
        self._handle.remove()


@pytest.fixture(scope="module")
def pipe(tiny):
    from extension.loading import load_sdxl

    return load_sdxl(tiny.sdxl_refiner.folder)


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return _image(1)


@pytest.fixture(scope="module")
def latents(pipe) -> torch.Tensor:
    """'SDXL base latents': the smooth test image in the shared SDXL latent space."""
    return encode_image(pipe, _smooth(), torch.Generator().manual_seed(0))


def _refine(pipe, images=(), **kwargs):
    kwargs.setdefault("steps", 2)
    kwargs.setdefault("seed", 1234)
    kwargs.setdefault("sampler_name", "Euler")
    return refine(pipe, RefineRequest(images=list(images), **kwargs))


# --- steps and strength ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 2, 7, 10, 20, 150])
@pytest.mark.parametrize("strength", [0.01, 0.05, 0.1, 0.2, 0.25, 0.3, 1 / 3, 0.5, 0.7, 0.75, 0.9, 0.99, 1.0])
def test_planned_steps_is_what_diffusers_runs(steps, strength):
    """``steps`` refiner steps run at any strength (diffusers' own tail formula on the chosen schedule length)."""
    n = schedule_length(steps, strength)
    runs = min(int(n * strength), n)
    assert runs == planned_steps(steps, strength)
    assert runs == min(steps, int(1000 * strength))  # only the 1000 training timesteps limit it


def test_planned_steps_edge_cases():
    assert planned_steps(10, 0.0) == 0
    assert planned_steps(10, 0.0004) == 0  # no timestep to run: the image stays as it is
    assert planned_steps(10, 0.005) == 5  # only 5 of the 1000 training timesteps lie below this strength
    assert planned_steps(10, 0.25) == 10


def test_unet_runs_exactly_the_planned_steps_and_progress_counts_them(pipe, image):
    unet = Calls(pipe.unet)
    reports: list[tuple[int, int]] = []
    try:
        result = refine(
            pipe,
            RefineRequest(images=[image, image], steps=3, strength=0.3, sampler_name="Euler", seed=1),
            progress=lambda step, total: reports.append((step, total)),
        )
    finally:
        unet.remove()
    assert unet.count == 2 * 3  # CFG batched: one UNet call per step, two images
    assert reports == [(1, 6), (2, 6), (3, 6), (4, 6), (5, 6), (6, 6)]
    assert [im.size for im in result.images] == [(64, 64), (64, 64)]
    assert result.mode == "Pixel" and not result.interrupted


def test_same_result_as_plain_diffusers_img2img(pipe, image):
    """Pixel mode is diffusers' SDXL img2img at the same seed, strength and schedule — bit for bit."""
    ours = _refine(pipe, [image], prompt="a cat", strength=0.3, steps=3, cfg_scale=5.0, seed=5).images[0]
    saved = pipe.scheduler
    pipe.scheduler = make_scheduler(dict(saved.config), "Euler", "Automatic")
    try:
        theirs = pipe(
            prompt="a cat",
            image=image,
            strength=0.3,
            num_inference_steps=schedule_length(3, 0.3),
            guidance_scale=5.0,
            generator=[torch.Generator().manual_seed(5)],
        ).images[0]
    finally:
        pipe.scheduler = saved
    assert _distance(ours, theirs) == 0


def test_strength_zero_returns_the_input_untouched(pipe, image, latents):
    unet, encoder, decoder = Calls(pipe.unet), Calls(pipe.vae.encoder), Calls(pipe.vae.decoder)
    try:
        pixel = _refine(pipe, [image], strength=0.0)
        latent = _refine(pipe, latents=latents, latent_family="sdxl", strength=0.0, return_latents=True)
        assert (unet.count, encoder.count, decoder.count) == (0, 0, 0)
        decoded = _refine(pipe, latents=latents, latent_family="sdxl", strength=0.0)
        assert (unet.count, encoder.count, decoder.count) == (0, 0, 1)  # only the one decode the base needs anyway
    finally:
        for calls in (unet, encoder, decoder):
            calls.remove()
    assert _distance(pixel.images[0], image) == 0
    assert torch.equal(latent.latents, latents)
    expected = pipe.image_processor.postprocess(decode_latents(pipe, latents), output_type="pil")[0]
    assert _distance(decoded.images[0], expected) == 0


def test_distance_from_the_input_grows_with_strength(pipe, latents):
    """Latent mode: distance from the input latents; pixel mode: distance from the input's VAE round trip (the tiny
    VAE has random weights, so the round trip is the input as the refiner sees it)."""
    strengths = [0.1, 0.4, 1.0]
    by_latents = [
        float((_refine(pipe, latents=latents, latent_family="sdxl", strength=s, return_latents=True).latents - latents)
              .abs().mean())
        for s in strengths
    ]  # fmt: skip
    assert by_latents == sorted(by_latents) and by_latents[0] > 0

    round_trip = pipe.image_processor.postprocess(decode_latents(pipe, latents), output_type="pil")[0]
    by_pixels = [_distance(_refine(pipe, [_smooth()], strength=s, seed=0).images[0], round_trip) for s in strengths]
    assert by_pixels == sorted(by_pixels)


def test_size_that_is_not_a_multiple_of_8_is_kept(pipe):
    odd = _image(3, (75, 66))
    result = _refine(pipe, [odd], strength=0.2)
    assert result.images[0].size == (75, 66)
    assert np.isfinite(_pixels(result.images[0])).all()


@pytest.mark.parametrize(
    "sampler", ["Euler a", "Euler", "Heun", "LMS", "DPM++ 2M", "DPM++ 2M SDE", "DPM++ SDE", "DDIM", "UniPC"]
)
def test_every_sampler_runs_the_planned_steps(pipe, image, sampler):
    reports: list[tuple[int, int]] = []
    result = refine(
        pipe,
        RefineRequest(images=[image], steps=2, strength=0.3, sampler_name=sampler, seed=3),
        progress=lambda step, total: reports.append((step, total)),
    )
    assert reports == [(1, 2), (2, 2)]  # second-order samplers too: steps, not model evaluations
    assert np.isfinite(_pixels(result.images[0])).all()
    assert f"Refiner post-pass sampler: {sampler}" in result.infotexts[0]
    # a seed reproduces its image with every sampler, the SDE ones included (their noise is drawn from the seed)
    again = refine(pipe, RefineRequest(images=[image], steps=2, strength=0.3, sampler_name=sampler, seed=3))
    assert np.array_equal(_pixels(again.images[0]), _pixels(result.images[0]))


# --- conditioning ------------------------------------------------------------------------------------------------


def test_refiner_prompt_changes_the_output_and_blank_inherits_the_base(pipe, image):
    plain = _refine(pipe, [image], prompt="a photo").images[0]
    other = _refine(pipe, [image], prompt="an oil painting of a lighthouse").images[0]
    inherited = _refine(pipe, [image], prompt="", base=BaseSettings(prompt="a photo")).images[0]
    assert _distance(plain, other) > 0.5
    assert _distance(plain, inherited) == 0


def test_aesthetic_score_and_size_reach_the_added_time_ids(pipe, image):
    unet = Calls(pipe.unet, lambda args, kwargs: kwargs["added_cond_kwargs"]["time_ids"].clone())
    try:
        _refine(
            pipe,
            [image],
            steps=1,
            cfg_scale=5.0,
            aesthetic_score=7.5,
            negative_aesthetic_score=1.0,
            original_width=1024,
            original_height=768,
            crop_top=16,
            crop_left=8,
        )
    finally:
        unet.remove()
    time_ids = unet.seen[0]
    # [uncond, cond] rows: (original h, original w, crop top, crop left, aesthetic score)
    expected = torch.tensor([[768, 1024, 16, 8, 1.0], [768, 1024, 16, 8, 7.5]], dtype=time_ids.dtype)
    assert torch.equal(time_ids, expected)


def test_aesthetic_score_changes_the_output(pipe, image):
    low = _refine(pipe, [image], aesthetic_score=2.0).images[0]
    high = _refine(pipe, [image], aesthetic_score=9.0).images[0]
    assert _distance(low, high) > 0


def test_blank_cfg_and_sampler_inherit_the_base():
    base = BaseSettings(prompt="p", negative_prompt="n", cfg_scale=3.5, sampler_name="DPM++ 2M Karras")
    resolved = RefineRequest(images=[_image(0)], base=base).resolved()
    assert (resolved.prompt, resolved.negative_prompt, resolved.cfg_scale) == ("p", "n", 3.5)
    assert (resolved.sampler_name, resolved.scheduler) == ("DPM++ 2M", "Karras")  # the pre-1.9 WebUI name
    unknown = RefineRequest(images=[_image(0)], base=BaseSettings(sampler_name="Restart")).resolved()
    assert (unknown.sampler_name, unknown.scheduler, unknown.cfg_scale) == ("DPM++ 2M", "Automatic", 7.0)
    unsupported = RefineRequest(images=[_image(0)], base=BaseSettings(sampler_name="Euler a", scheduler="Karras"))
    assert unsupported.resolved().scheduler == "Automatic"
    explicit = RefineRequest(images=[_image(0)], base=base, cfg_scale=9, sampler_name="Heun", scheduler="")
    assert (explicit.resolved().cfg_scale, explicit.resolved().sampler_name) == (9.0, "Heun")


# --- latent mode -------------------------------------------------------------------------------------------------


def test_latent_mode_skips_the_vae_round_trip(pipe, image, latents):
    encoder, decoder = Calls(pipe.vae.encoder), Calls(pipe.vae.decoder)
    try:
        latent = _refine(pipe, latents=latents, latent_family="sdxl", strength=0.3)
        assert (encoder.count, decoder.count) == (0, 1)
        _refine(pipe, latents=latents, latent_family="sdxl", strength=0.3, return_latents=True)
        assert (encoder.count, decoder.count) == (0, 1)  # the WebUI decodes returned latents itself
        _refine(pipe, [image], strength=0.3)
        assert (encoder.count, decoder.count) == (1, 2)
    finally:
        encoder.remove()
        decoder.remove()
    assert latent.mode == "Latent" and latent.images[0].size == (64, 64)
    assert "Refiner post-pass mode: Latent" in latent.infotexts[0]


def test_latent_mode_batch_matches_one_by_one(pipe, latents):
    batch = torch.cat([latents, latents.flip(-1)])
    together = _refine(pipe, latents=batch, latent_family="sdxl", seeds=[5, 9], return_latents=True)
    second = _refine(pipe, latents=batch[1:], latent_family="sdxl", seed=9, return_latents=True)
    assert together.seeds == [5, 9]
    torch.testing.assert_close(together.latents[1:], second.latents, rtol=1e-4, atol=1e-4)


def test_latents_of_another_family_never_reach_the_refiner(pipe, image, latents):
    assert latents_fit_refiner(latents, "sdxl", pipe)
    assert not latents_fit_refiner(latents, "sd1", pipe)  # SD 1.5 latents also have 4 channels
    assert not latents_fit_refiner(latents, "", pipe)  # untagged: unknown space
    assert not latents_fit_refiner(torch.zeros(1, 8, 8, 8), "sdxl", pipe)
    sd15 = RefineRequest(images=[image], latents=latents, latent_family="sd1")
    assert choose_mode(sd15, pipe) == "Pixel"
    forced = RefineRequest(images=[image], latents=latents, latent_family="sdxl", mode="Pixel")
    assert choose_mode(forced, pipe) == "Pixel"
    assert choose_mode(RefineRequest(images=[image], latents=latents, latent_family="sdxl"), pipe) == "Latent"
    with pytest.raises(ParamError, match="only SDXL base latents share the refiner's latent space"):
        refine(pipe, RefineRequest(latents=latents, latent_family="sd2"))


# --- VAE NaN guard -----------------------------------------------------------------------------------------------


@pytest.fixture
def half_vae_pipe(tiny, cpu_fp16):
    """A pipeline whose VAE runs in fp16 and whose decoder overflows (NaN) in fp16, like SDXL's VAE at 1024²."""
    from extension.loading import load_sdxl

    pipe = load_sdxl(tiny.sdxl_refiner.folder)
    pipe.vae.to(torch.float16)
    pipe.vae.register_to_config(force_upcast=False)  # as an fp16-'safe' VAE claims to be
    dtypes: list[torch.dtype] = []

    def overflow(_module, _args, output):
        dtypes.append(output.dtype)
        return torch.full_like(output, float("nan")) if output.dtype == torch.float16 else output

    pipe.vae.decoder.register_forward_hook(overflow)
    pipe.decoder_dtypes = dtypes
    return pipe


def test_nan_guard_retries_the_decode_in_fp32(half_vae_pipe, latents):
    pipe = half_vae_pipe
    raw = pipe.vae.decode(latents.half() / pipe.vae.config.scaling_factor).sample
    assert torch.isnan(raw).all()  # what an unguarded decode returns: a black image
    result = _refine(pipe, latents=latents, latent_family="sdxl", strength=0.2)
    pixels = _pixels(result.images[0])
    assert np.isfinite(pixels).all() and pixels.max() > 0
    assert pipe.decoder_dtypes[-2:] == [torch.float16, torch.float32]
    assert pipe.vae.dtype == torch.float16  # put back afterwards
    pipe.decoder_dtypes.clear()
    decode_latents(pipe, latents)
    assert pipe.decoder_dtypes == [torch.float32]  # remembered: no second wasted fp16 decode


def test_force_upcast_vae_never_decodes_in_fp16(half_vae_pipe, latents):
    pipe = half_vae_pipe
    pipe.vae.register_to_config(force_upcast=True)
    pixels = decode_latents(pipe, latents)
    assert torch.isfinite(pixels).all()
    assert pipe.decoder_dtypes == [torch.float32]
    assert pipe.vae.dtype == torch.float16


# --- seeds, errors, stop -----------------------------------------------------------------------------------------


def test_same_seed_reproduces_and_other_seed_differs(pipe, image):
    first = _refine(pipe, [image], seed=77, strength=0.5).images[0]
    again = _refine(pipe, [image], seed=77, strength=0.5).images[0]
    other = _refine(pipe, [image], seed=78, strength=0.5).images[0]
    assert _distance(first, again) == 0
    assert _distance(first, other) > 0


def test_random_seed_is_reported(pipe, image):
    result = _refine(pipe, [image, image], seed=-1, steps=1)
    assert result.seeds[1] == (result.seeds[0] + 1) % 2**32
    assert f"Seed: {result.seeds[0]}" in result.infotexts[0]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"strength": 1.5}, "strength must be a number from 0 to 1"),
        ({"strength": -0.1}, "strength must be a number from 0 to 1"),
        ({"steps": 0}, "steps must be an integer from 1 to 150"),
        ({"sampler_name": "Foo"}, "sampler_name must be one of"),
        ({"sampler_name": "Euler a", "scheduler": "Karras"}, "does not support schedule type 'Karras'"),
        ({"cfg_scale": float("nan")}, "cfg_scale must be a number"),
        ({"mode": "Sideways"}, "mode must be one of Auto, Latent, Pixel"),
        ({"aesthetic_score": 11}, "aesthetic_score must be a number from 0 to 10"),
        ({"images": []}, "nothing to refine"),
        ({"images": [Image.new("RGB", (32, 64))]}, "at least 64x64 pixels"),
        ({"seeds": [1, 2]}, "got 2 seed(s) for 1 image(s)"),
        ({"seed": -2}, "seed must be an integer from -1"),
        (
            {"images": [], "latents": torch.zeros(1, 4, 8, 8), "mode": "Pixel", "latent_family": "sdxl"},
            "pixel mode needs images",
        ),
    ],
)
def test_bad_values_are_rejected_with_a_message(pipe, image, changes, message):
    values = {"images": [image], **changes}
    with pytest.raises(ParamError) as error:
        refine(pipe, RefineRequest(**values))
    assert message in str(error.value)
    checked = RefineRequest.from_controls({}, images=[image])
    assert checked.checked
    with pytest.raises(ParamError) as error:
        refine(pipe, replace(checked, **changes))  # a changed copy of a checked request is checked again
    assert message in str(error.value)


def test_stop_returns_the_images_that_finished(pipe, image):
    reference = _refine(pipe, [image], steps=3, seed=10).images[0]
    seen: list[int] = []
    stopped = refine(
        pipe,
        RefineRequest(images=[image, _image(2), _image(3)], steps=3, seed=10, sampler_name="Euler"),
        progress=lambda step, total: seen.append(step),
        should_stop=lambda: len(seen) >= 4,  # during the second image
    )
    assert stopped.interrupted
    assert len(stopped.images) == 1 and stopped.seeds == [10]
    assert _distance(stopped.images[0], reference) == 0
    assert seen == [1, 2, 3, 4]  # the second image stopped after its first step

    unet = Calls(pipe.unet)
    try:
        batch = refine(
            pipe,
            RefineRequest(latents=torch.zeros(2, 4, 8, 8), latent_family="sdxl", steps=5, return_latents=True),
            should_stop=lambda: unet.count >= 2,
        )
    finally:
        unet.remove()
    assert batch.interrupted and batch.latents is None and unet.count == 2


# --- infotext ----------------------------------------------------------------------------------------------------


def test_infotext_keys_are_ours_and_paste_back(pipe, image):
    base = BaseSettings.from_infotext(
        "a castle\nNegative prompt: blurry\nSteps: 30, Sampler: Euler a, CFG scale: 6, Seed: 42, Size: 64x64"
    )
    result = _refine(pipe, [image], base=base, seed=42, prompt="a castle, sharp", strength=0.3, steps=3,
                     aesthetic_score=6.5)  # fmt: skip
    parsed = infotext.parse(result.infotexts[0])
    assert "Refiner" not in parsed  # the native refiner's key: pasting it would switch that one on
    assert parsed["Prompt"] == "a castle" and parsed["Negative prompt"] == "blurry"  # the base's, kept
    assert parsed["Steps"] == "30" and parsed["Seed"] == "42"
    assert parsed["Refiner post-pass"] == "sdxl-refiner"
    assert parsed["Refiner post-pass strength"] == "0.3"
    assert parsed["Refiner post-pass steps"] == "3"
    assert parsed["Refiner post-pass mode"] == "Pixel"
    assert parsed["Refiner post-pass prompt"] == "a castle, sharp"
    assert parsed["Refiner post-pass sampler"] == "Euler"
    assert parsed["Refiner post-pass aesthetic"] == "6.5"
    assert parsed["Refiner post-pass negative aesthetic"] == "2.5"
    for inherited in ("negative prompt", "CFG scale", "schedule type", "seed"):
        assert f"Refiner post-pass {inherited}" not in parsed
    restored = REFINER.from_infotext(parsed)
    assert restored == {
        "model": "sdxl-refiner",
        "strength": 0.3,
        "steps": 3,
        "mode": "Pixel",
        "prompt": "a castle, sharp",
        "sampler_name": "Euler",
        "aesthetic_score": 6.5,
        "negative_aesthetic_score": 2.5,
    }


def test_infotext_items_for_the_webui_hook(pipe):
    request = RefineRequest(images=[_image(0)], base=BaseSettings(prompt="p", cfg_scale=7.0), cfg_scale=4).resolved()
    items = infotext_items(request, pipe, "Latent")
    assert items == {
        "Refiner post-pass": "sdxl-refiner",
        "Refiner post-pass strength": "0.25",
        "Refiner post-pass steps": "10",
        "Refiner post-pass mode": "Latent",
        "Refiner post-pass CFG scale": "4",
        "Refiner post-pass sampler": "DPM++ 2M",
        "Refiner post-pass aesthetic": "6",
        "Refiner post-pass negative aesthetic": "2.5",
    }
    assert all(key.startswith("Refiner post-pass") for key in items)
    result = refine(pipe, replace(request, strength=0.0))  # the job returns its items, as its infotext has them
    written = infotext.parse(result.infotexts[0])
    assert result.items and result.items == {key: written[key] for key in result.items}


# --- CLI ---------------------------------------------------------------------------------------------------------


def test_cli_refines_a_folder_writes_infotext_and_resumes(tiny, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    base_text = "a red boat\nNegative prompt: fog\nSteps: 20, Sampler: DPM++ 2M, CFG scale: 5, Seed: 99, Size: 64x64"
    save_png(_image(1), inputs / "boat.png", base_text)
    _image(2, (80, 64)).save(inputs / "plain.jpg")
    (inputs / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    args = ["refine", str(inputs), "--model", str(tiny.sdxl_refiner.folder), "--out", str(out), "--steps", "2",
            "--strength", "0.3", "--aesthetic", "7"]  # fmt: skip

    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["boat.png", "plain.png"]
    boat = infotext.parse(read_infotext(out / "boat.png"))
    assert boat["Prompt"] == "a red boat" and boat["Seed"] == "99" and boat["Steps"] == "20"  # the base's
    assert boat["Refiner post-pass strength"] == "0.3" and boat["Refiner post-pass aesthetic"] == "7"
    assert "Refiner post-pass seed" not in boat  # the base's seed was used
    plain = infotext.parse(read_infotext(out / "plain.png"))
    assert plain["Size"] == "80x64" and plain["Refiner post-pass steps"] == "2"
    assert Image.open(out / "plain.png").size == (80, 64)
    assert not list(out.glob(".*tmp"))

    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    capsys.readouterr()
    assert main(args) == 0  # everything exists: nothing is loaded or written
    assert "nothing to do" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before

    original = _pixels(Image.open(out / "boat.png"))
    (out / "boat.png").unlink()
    assert main(args) == 0  # an interrupted run resumes with exactly the missing image
    assert np.array_equal(_pixels(Image.open(out / "boat.png")), original)
    assert (out / "plain.png").stat().st_mtime_ns == before["plain.png"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--strength", "2"], "strength must be a number from 0 to 1"),
        (["--sampler", "Euler a", "--schedule", "Karras"], "does not support schedule type"),
        (["--out", "{inputs}"], "refusing to overwrite the input"),
    ],
)
def test_cli_user_errors_print_one_clear_line(tiny, tmp_path, capsys, extra, message):
    inputs = tmp_path / "in"
    inputs.mkdir()
    _image(1).save(inputs / "a.png")
    extra = [part.format(inputs=inputs) for part in extra]
    argv = ["refine", str(inputs), "--model", str(tiny.sdxl_refiner.folder), "--out", str(tmp_path / "o"), *extra]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and "Traceback" not in error
