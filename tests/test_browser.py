"""The standalone app in a real browser (Playwright driving Debian's chromium), on the tiny models.

What a user does: upload an image, press Generate, see the images appear, read the infotext, change the noise level,
select an output and vary it again, interrupt a long run and keep what finished, refine an upload in the Refine tab.
Screenshots go to ``tests/artifacts/<gradio major>/`` (git-ignored; the path is printed).

Runs in every environment (gradio 3.41, 3.43, 4.40 and 6.x). Skipped, with the reason, only when no chromium can be
found or installed (``apt-get install -y chromium``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("REIMAGINE_ARTIFACTS", Path(__file__).resolve().parent / "artifacts"))
# Not fonts.googleapis.com and the like: the test machine is offline, gradio's pages try to load web fonts.
IGNORED_CONSOLE = ("ERR_NAME_NOT_RESOLVED", "fonts.googleapis", "Failed to load resource", "preload CSS")


def _chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, timeout=600, check=False)
        if CHROMIUM.exists():
            return CHROMIUM
    pytest.skip("Debian chromium is not installed at /usr/bin/chromium and `apt-get install -y chromium` failed")


@pytest.fixture(scope="module")
def artifacts() -> Path:
    import gradio

    folder = ARTIFACTS / f"gradio{gradio.__version__.split('.')[0]}"
    folder.mkdir(parents=True, exist_ok=True)
    ignore = ARTIFACTS / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return folder


@pytest.fixture(scope="module")
def app(tiny: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from extension.app import start

    outdir = tmp_path_factory.mktemp("outputs")
    running = start(
        0,
        [],
        models=[tiny.unclip_h.safetensors, tiny.sdxl_refiner.safetensors],
        outdir=outdir,
        config_root=tiny.config_root,
        quiet=True,
    )
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Page:
    """A page of the app with the few actions the tests need."""

    def __init__(self, page: Any, artifacts: Path) -> None:
        self.page = page
        self.artifacts = artifacts
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on(
            "console",
            lambda m: (
                self.errors.append(m.text)
                if m.type == "error" and not any(s in m.text for s in IGNORED_CONSOLE)
                else None
            ),
        )

    def number(self, elem_id: str, value: Any) -> None:
        box = self.page.locator(f"#{elem_id} input[type=number]")
        box.fill(str(value))
        box.press("Enter")

    def upload(self, elem_id: str, path: Path) -> None:
        self.page.set_input_files(f"#{elem_id} input[type=file]", str(path))
        self.page.wait_for_selector(f"#{elem_id} img", timeout=30_000)

    # Gallery entries: ``thumbnail-small`` in preview view, ``thumbnail-lg`` in grid view (gradio 3.41 and 4.40); gradio
    # may drop back to the grid when the gallery's value changes (the live preview, then the outputs)
    COUNT_JS = (
        "(() => { const g = document.querySelector('#reimagine_gallery'); if (!g) return 0; "
        "return g.querySelectorAll('.thumbnail-small').length || g.querySelectorAll('.thumbnail-lg').length; })()"
    )

    def thumbnail(self, index: int) -> Any:
        """Gallery entry ``index``: in the preview strip (``thumbnail-small``) when shown, else in the grid (gradio 6
        shows the outputs as a grid)."""
        strip = self.page.locator("#reimagine_gallery .thumbnail-small")
        return strip.nth(index) if strip.count() else self.page.locator("#reimagine_gallery .thumbnail-item").nth(index)

    def tab(self, title: str) -> None:
        """Open a top-level tab (``.tab-nav`` buttons in gradio 3/4; ``role=tab`` buttons in gradio 6)."""
        buttons = self.page.locator(".tab-nav button, button[role=tab]", has_text=re.compile(rf"^\s*{title}\s*$"))
        buttons.first.click()

    def thumbnails(self) -> int:
        return self.page.evaluate(self.COUNT_JS)

    def wait_thumbnails(self, count: int, timeout: float = 180) -> None:
        self.page.wait_for_function(f"{self.COUNT_JS} >= {count}", timeout=timeout * 1000)

    def wait_text(self, elem_id: str, text: str, timeout: float = 180) -> str:
        self.page.wait_for_function(
            "([id, text]) => { const e = document.getElementById(id); return e && e.innerText.includes(text); }",
            arg=[elem_id, text],
            timeout=timeout * 1000,
        )
        return self.page.inner_text(f"#{elem_id}")

    def info(self) -> str:
        return self.page.inner_text("#html_info_reimagine")

    def shot(self, name: str) -> Path:
        path = self.artifacts / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path


@pytest.fixture
def page(app: Any, browser: Any, artifacts: Path, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    tab = Page(context.new_page(), artifacts)
    tab.page.goto(app.url)
    # gradio 6 renders the page in steps (the buttons before the gallery): wait for both ends of the tab
    for elem_id in ("reimagine_generate", "reimagine_gallery"):
        tab.page.wait_for_selector(f"#{elem_id}", timeout=60_000)
    try:
        yield tab
        assert tab.errors == [], f"JavaScript errors: {tab.errors}"
    finally:
        tab.shot(f"last-{request.node.name}")  # the page as the test left it (also when it failed)
        context.close()


@pytest.fixture(scope="module")
def input_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import numpy as np

    path = tmp_path_factory.mktemp("inputs") / "input.png"
    pixels = (np.random.RandomState(0).rand(96, 128, 3) * 255).astype("uint8")
    Image.fromarray(pixels).save(path)
    return path


# ---------------------------------------------------------------------------------------------------------------------


def test_layout_looks_like_a_webui_tab(page: Page) -> None:
    p = page.page
    for elem_id in (
        "reimagine_prompt",
        "reimagine_generate",
        "reimagine_interrupt",
        "reimagine_skip",
        "reimagine_model",
        "reimagine_image_1",
        "reimagine_noise_level",
        "reimagine_gallery",
    ):
        assert p.locator(f"#{elem_id}").first.is_visible(), elem_id
    assert p.locator("#reimagine_model input").first.input_value() == "unclip-h.safetensors"
    # the settings column is left of the results, the prompt above both
    settings, results = (
        p.locator("#reimagine_settings").bounding_box(),
        p.locator("#reimagine_results_column").bounding_box(),
    )
    assert settings["x"] < results["x"] and abs(settings["y"] - results["y"]) < 50
    page.shot("01-empty-tab")


def test_generate_shows_images_with_infotext(page: Page, input_image: Path, app: Any) -> None:
    page.upload("reimagine_image_1", input_image)
    page.number("reimagine_steps", 3)
    page.number("reimagine_batch_count", 2)
    page.number("reimagine_batch_size", 2)
    page.number("reimagine_seed", 1234)
    page.page.click("#reimagine_generate")
    page.wait_thumbnails(4)
    assert page.thumbnails() == 4
    info = page.wait_text("html_info_reimagine", "Seed: 1234")
    for expected in ("Steps: 3", "Noise level: 200", "CLIP fit: squash", "Model: unclip-h", "Size: "):
        assert expected in info
    saved = sorted(app.host.outdir.glob("*.png"))
    assert len(saved) >= 4 and "Seed: 123" in Image.open(saved[-1]).info["parameters"]
    page.page.click("#reimagine_download")
    page.page.wait_for_selector("#download_files_reimagine a", timeout=30_000)
    assert page.page.locator("#download_files_reimagine a").count() >= 4
    page.shot("02-generated")


def test_app_object_takes_routes(app: Any) -> None:
    import json
    import urllib.request

    from tests.webui.test_webui_api import route_paths

    assert "/reimagine/v1/models" in route_paths(app.app)  # extension.api registered on the standalone app
    with urllib.request.urlopen(app.url.rstrip("/") + "/reimagine/v1/models", timeout=30) as answer:
        listed = json.loads(answer.read())
    assert {(m["name"], m["kind"]) for m in listed} == {
        ("unclip-h.safetensors", "unclip-h"),
        ("sdxl-refiner.safetensors", "sdxl-refiner"),
    }


def test_noise_level_preset_and_value_reach_the_infotext(page: Page, input_image: Path) -> None:
    page.upload("reimagine_image_1", input_image)
    page.number("reimagine_steps", 2)
    page.page.click("#reimagine_preset_strong")
    page.page.wait_for_function(
        "document.querySelector('#reimagine_noise_level input[type=number]').value == '500'", timeout=30_000
    )
    page.page.click("#reimagine_generate")
    page.wait_text("html_info_reimagine", "Noise level: 500")
    page.number("reimagine_noise_level", 321)
    page.page.click("#reimagine_generate")
    info = page.wait_text("html_info_reimagine", "Noise level: 321")
    assert "Noise level: 500" not in info
    page.shot("03-noise-level")


def test_select_reuse_seed_and_vary_again(page: Page, input_image: Path, app: Any) -> None:
    page.upload("reimagine_image_1", input_image)
    page.number("reimagine_steps", 2)
    page.number("reimagine_batch_size", 2)
    page.number("reimagine_seed", 500)
    page.page.click("#reimagine_generate")
    page.wait_thumbnails(2)
    page.wait_text("html_info_reimagine", "Seed: 500")
    page.thumbnail(1).click()
    page.wait_text("html_info_reimagine", "Seed: 501")
    page.page.click("#reimagine_reuse_seed")
    page.page.wait_for_function("document.querySelector('#reimagine_seed input').value == '501'", timeout=30_000)
    outputs = Path(app.host.outdir)
    written = len(list(outputs.glob("*.png")))
    input_before = page.page.get_attribute("#reimagine_image_1 img", "src")
    page.page.click("#reimagine_vary_again")  # image 501 becomes the input, a new run starts by itself
    for _ in range(360):  # the new run's two outputs are saved (gradio 6 keeps hidden fields out of the page)
        if len(list(outputs.glob("*.png"))) >= written + 2:
            break
        page.page.wait_for_timeout(500)
    assert len(list(outputs.glob("*.png"))) >= written + 2, "Vary again started no run"
    assert page.page.get_attribute("#reimagine_image_1 img", "src") != input_before
    page.wait_thumbnails(2, timeout=30)  # the gallery showed the run's live preview; its outputs replace it
    assert page.thumbnails() == 2 and "Seed: 501" in page.info()
    page.shot("04-vary-again")


def test_interrupt_a_long_run_keeps_what_finished(page: Page, input_image: Path) -> None:
    page.upload("reimagine_image_1", input_image)
    page.number("reimagine_steps", 150)
    page.number("reimagine_batch_count", 3)
    page.number("reimagine_seed", 77)
    page.page.click("#reimagine_generate")
    page.wait_text("reimagine_results_column", "Batch 2 of 3", timeout=300)  # gradio's progress: batch 1 is done
    page.shot("05-running")
    page.page.click("#reimagine_interrupt")
    log = page.wait_text("html_log_reimagine", "Interrupted", timeout=300)
    # Stopped inside batch 2 (or, on a very busy machine, batch 3): what finished is kept, the rest is not made.
    finished = int(re.search(r"(\d) / 3", log).group(1))
    assert finished in (1, 2)
    page.wait_thumbnails(finished, timeout=30)
    assert page.thumbnails() == finished
    assert "Seed: 77" in page.info()
    page.shot("06-interrupted")


def test_refine_tab_refines_an_upload(page: Page, input_image: Path) -> None:
    p = page.page
    page.tab("Refine")
    p.set_input_files("#reimagine_refine_files input[type=file]", str(input_image))
    p.wait_for_timeout(500)
    page.number("reimagine_refine_steps", 2)
    p.click("#reimagine_refine_generate")
    p.wait_for_function(
        "document.querySelectorAll('#reimagine_refine_gallery .thumbnail-item').length >= 1", timeout=300_000
    )
    info = page.wait_text("html_info_reimagine_refine", "Refiner post-pass")
    assert "Refiner post-pass steps: 2" in info and "Refiner post-pass mode: Pixel" in info
    page.shot("07-refine-tab")


def test_switch_to_reimagine_opens_the_tab(page: Page) -> None:
    """The WebUI's paste bindings ("Send to Reimagine", PNG Info) call ``switch_to_reimagine()`` from
    javascript/reimagine.js: from another tab it must bring the Reimagine tab back, in every gradio's tab markup
    (``.tab-nav`` in gradio 3/4, ``role=tablist`` without ``.tab-nav`` in gradio 6). Oracle: gradio's own rendering,
    which shows the selected tab's panel and hides the others."""
    p = page.page
    page.tab("Refine")
    p.wait_for_selector("#tab_reimagine_refine", state="visible", timeout=30_000)
    p.wait_for_selector("#tab_reimagine", state="hidden", timeout=30_000)
    assert p.evaluate("typeof switch_to_reimagine") == "function"
    assert p.evaluate("switch_to_reimagine(1, 'x')") == [1, "x"]  # the paste binding's inputs pass through
    p.wait_for_selector("#tab_reimagine", state="visible", timeout=30_000)
    p.wait_for_selector("#tab_reimagine_refine", state="hidden", timeout=30_000)
    assert p.is_visible("#reimagine_generate")


def test_refine_the_selected_image_keeps_the_batch_and_selects_the_refined_one(
    app: Any, page: Page, input_image: Path
) -> None:
    """The WebUI's habit: a new image joins the batch in the gallery and is selected (issue #22)."""
    app.host.refine_area = 128 * 128  # the tiny refiner; SDXL's own class is 1024²
    p = page.page
    page.upload("reimagine_image_1", input_image)
    page.number("reimagine_steps", 2)
    page.number("reimagine_batch_size", 2)
    page.number("reimagine_seed", 600)
    p.click("#reimagine_generate")
    page.wait_thumbnails(2)
    page.wait_text("html_info_reimagine", "Seed: 600")
    page.thumbnail(1).click()
    page.wait_text("html_info_reimagine", "Seed: 601")
    p.locator("#reimagine_refine_accordion .label-wrap").first.click()
    page.number("reimagine_refiner_steps", 2)
    p.click("#reimagine_refine")
    page.wait_thumbnails(3)
    p.wait_for_function("() => reimagine_selected_index() === 2", timeout=30_000)
    info = page.wait_text("html_info_reimagine", "Refiner post-pass")
    assert "Seed: 601" in info  # the refined image is the selected one's
    assert page.thumbnails() == 3
    page.thumbnail(0).click()  # the batch's images keep their infotexts
    page.wait_text("html_info_reimagine", "Seed: 600")
    page.shot("08-refine-selected")
