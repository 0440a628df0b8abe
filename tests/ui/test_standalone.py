"""The standalone app's host (extension/ui/standalone.py): both tabs built, its run wrapper, reading gallery files
back, and Generate / Refine with SDXL end to end with the tiny models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from extension.loading import discovery as models
from extension.runtime import jobs
from extension.ui.standalone import StandaloneHost
from tests.ui import fakes
from tests.ui.fakes import FakeEngine, FakeHost, make_args

image = fakes.image  # the input-image fixture


def test_standalone_app_builds_both_tabs(tmp_path: Path) -> None:
    from extension.app import build_app

    demo, _ = build_app(FakeHost(tmp_path))
    ids = {getattr(block, "elem_id", None) for block in demo.blocks.values()}
    assert {"tab_reimagine", "tab_reimagine_refine", "reimagine_generate", "reimagine_refine_generate"} <= ids
    # each tab rendered exactly once
    assert sum(1 for block in demo.blocks.values() if getattr(block, "elem_id", None) == "reimagine_generate") == 1


def test_standalone_run_wrapper_serialises_and_reports_errors(tmp_path: Path, image: Image.Image) -> None:
    host = FakeHost(tmp_path)
    fractions: list[float] = []

    def progress(fraction: float, desc: str | None = None) -> None:
        fractions.append(fraction)

    fake = FakeEngine()
    handler = host.run(lambda task, *args: jobs.generate(host, args, fake.engine()), 1 + len(jobs.input_names()))
    *_, (gallery, _, _, log) = handler("", *make_args(image, n_iter=2), progress)  # a generator: live previews
    assert len(gallery) == 2 and "Time taken" in log
    assert fractions and fractions[-1] == pytest.approx(1.0)
    fake.fail = RuntimeError("boom")
    *_, (gallery, _, _, log) = handler("", *make_args(image), progress)
    assert gallery == [] and "RuntimeError: boom" in log


def test_gallery_image_only_reads_outputs(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    (tmp_path / "out").mkdir()
    inside = tmp_path / "out" / "a.png"
    Image.new("RGB", (8, 8)).save(inside)
    outside = tmp_path / "secret.png"
    Image.new("RGB", (8, 8)).save(outside)
    assert host.gallery_image([{"name": str(inside), "is_file": True}], 0).size == (8, 8)
    assert host.gallery_image([(str(inside), None)], 0).size == (8, 8)
    assert host.gallery_image([str(outside)], 0) is None
    assert host.gallery_image([], 0) is None


@pytest.mark.slow
def test_standalone_generate_with_tiny_model(tiny: Any, tmp_path: Path, image: Image.Image) -> None:
    host = StandaloneHost([], models=[tiny.unclip_h.safetensors], config_root=tiny.config_root, outdir=tmp_path / "o")
    (choice,) = host.models(models.UNCLIP_KINDS)
    args = make_args(image, model=choice.name, steps=2, n_iter=2, seed=42)
    gallery, info_json, _, log = jobs.generate(host, args)
    assert log == "" and len(gallery) == 2
    info = json.loads(info_json)
    assert info["all_seeds"] == [42, 43] and "Noise level: 200" in info["infotexts"][0]
    assert "Model: unclip-h" in info["infotexts"][0] and "Model hash: " in info["infotexts"][0]
    assert Image.open(gallery[1]).info["parameters"] == info["infotexts"][1]


# How the gallery hands a saved output back: a path (gradio 4, the standalone app), or the gradio-3 dict of A1111 1.10.1,
# whose modules/ui_tempdir.py save_pil_to_file names saved outputs "<path>?<mtime>" (its image_from_url_text strips it)
GALLERY_FORMS = {
    "path": lambda path: path,
    "a1111-gradio3": lambda path: {"name": f"{path}?1796691585.2211034", "data": None, "is_file": True},
}


@pytest.mark.slow
@pytest.mark.parametrize("form", sorted(GALLERY_FORMS))
def test_refine_with_sdxl_on_a_selected_output(tiny: Any, tmp_path: Path, form: str) -> None:
    host = StandaloneHost(
        [], models=[tiny.sdxl_refiner.safetensors], config_root=tiny.config_root, outdir=tmp_path / "o"
    )
    host.refine_area = 128 * 128  # the tiny refiner; SDXL's own class is 1024²
    base = tmp_path / "base.png"
    text = "a cat\nSteps: 2, Sampler: Euler a, CFG scale: 5, Seed: 9, Size: 64x64, Model: unclip-h, Noise level: 0"
    Image.new("RGB", (64, 64), (120, 30, 200)).save(base, pnginfo=_png_info(text))
    host.outdir.mkdir()
    shutil.copy(base, host.outdir / "00000-9.png")
    info = json.dumps({"infotexts": [text], "all_seeds": [9]})
    (refiner,) = host.models(models.REFINER_KINDS)
    gallery, info_json, shown, log = jobs.refine_selected(
        host, [GALLERY_FORMS[form](str(host.outdir / "00000-9.png"))], 0, info, refiner.name, 0.3, 2
    )
    # the batch stays, the refined image is added after it (the WebUI keeps a batch visible), with its own infotext
    assert log == "" and len(gallery) == 2 and gallery[0] == str(host.outdir / "00000-9.png")
    refined = Image.open(gallery[1])
    assert refined.size == (128, 128)
    info = json.loads(info_json)
    kept, infotext = info["infotexts"]
    assert kept == text and info["all_seeds"][0] == 9 and jobs.selected_seed(info_json, 1) == 9
    assert refined.info["parameters"] == infotext and "Refiner post-pass steps: 2" in shown
    assert "Size: 128x128" in infotext and "Seed: 9" in infotext and "Noise level: 0" in infotext
    _, _, _, log = jobs.refine_selected(host, [], 0, "", refiner.name, 0.3, 2)
    assert "Generate an image first" in log


def _png_info(text: str) -> Any:
    from extension.outputs import png_info

    return png_info(text)
