#!/usr/bin/env python3
"""Walk the extension through a REAL, running A1111 WebUI or Forge, the way a user does (Playwright + chromium).

usage: python tests/real_webui/walk.py --url http://127.0.0.1:7860 --name a1111 [--log WEBUI_LOG]
                                       [--shots /tmp/walk-shots] [--json RESULTS.json]

The WebUI must already run with the extension installed (Extensions -> Install from URL), with an SD 1.5 checkpoint
loaded as the base, and with an unCLIP-H model and an SDXL refiner in ``models/Stable-diffusion`` (tiny ones are
enough: ``tests/real_webui/setup/`` builds it all, see docs/real-webuis.md; the WebUI needs ``REIMAGINE_CONFIG_ROOT``). Run it
with a python that has playwright (A1111's venv, Forge's ``pwvenv``); only the standard library is used besides.

Steps (each one recorded as pass/fail with what was seen, the new WebUI log lines that look like errors, and the
browser's console errors; a screenshot after each):

1. ``tab``: open the page at 1366x768, click the "Reimagine" tab; a viewport (not full-page) screenshot right after,
   ``<name>-tab-viewport.png``, and which of the main controls lie above the fold.
   ``mix-accordion``: "Mix more images" (images 2-4) is folded at first; choosing the Interpolation mode unfolds it.
   ``token-counter``: typing a prompt makes the counter under the prompt box read ``N/75`` with N > 0.
2. ``generate``: image 1, the unCLIP model, batch count 2, steps 2, 64x64, Generate, 2 images in the gallery.
   ``select``: select the 2nd output, the info text shows its seed. ``reuse_seed``: the seed field takes it.
   ``vary_again``: the selected output becomes image 1 and a new run starts. ``refine``: the "Refine with SDXL"
   accordion of the results column (model, strength, steps, "Refine the selected image") runs the post-pass over the
   selected output. During the runs the progress bar / live preview under the gallery is watched (noted).
   ``live-preview``: with the WebUI's options set to a preview every step ("Approx cheap") and the page's preview
   poll at its shortest (``live_preview_refresh_period`` 250 ms; all restored afterwards), a run long enough to be
   seen (30 steps, 128x128, batch count 2; redone with 4× the steps, up to 150 and batch count 4, while it ends in
   under 10 s without a preview image: the tiny models finished in 1.9 s on Forge) shows the progress bar and a live
   preview image under the gallery. ``interrupt``: a long run (150 steps, batch count 4) is interrupted once its
   progress bar shows; the tab comes back idle (not just "Interrupting..."), with the images that finished and the
   "Interrupted" note, and a 2-step run afterwards works.
   ``refine`` also checks that the batch stays in the gallery with the refined image added last and selected.
3. ``txt2img``: tick the "Refiner post-pass (SDXL)" accordion, refiner model, 2 steps, 64x64; our infotext keys.
4. ``api``: POST /sdapi/v1/txt2img with the refiner's alwayson args (200 + our keys), and a bad value (strength 5):
   a 4xx or a clear ``Refiner post-pass error`` in the infotext, never a 500.

Exit status 0 when every step passed. Models are found through the extension's ``GET /reimagine/v1/models``.
No timing is checked; waits are generous (CPU WebUIs are slow).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import struct
import sys
import time
import traceback
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

VIEWPORT = {"width": 1366, "height": 768}
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOP_TABS = "#tabs > .tab-nav > button"
WAIT_S = 600  # one generation on a loaded 2-core CPU, model load included
SEED = 1234
# Console noise of the WebUIs themselves, offline (docs/real-webuis.md, "The offline traps")
IGNORED_CONSOLE = (
    "ERR_NAME_NOT_RESOLVED",
    "Failed to load resource",
    "fonts.googleapis",
    "iframeResizer",
    "reading 'props'",
    "Too many arguments provided for the endpoint",
    "preload CSS",
)
LOG_PROBLEM = re.compile(r"Traceback|Error|Exception|^\*\*\*|error:", re.IGNORECASE)
LOG_HARMLESS = re.compile(
    r"FutureWarning|warnings\.warn|Found no NVIDIA driver|Couldn't install|No module named 'insightface'",
)
# the main controls of the tab, reported as above / below the fold of the first viewport
FOLD_CONTROLS = (
    ("prompt", "reimagine_prompt"),
    ("negative prompt", "reimagine_neg_prompt"),
    ("token counter", "reimagine_token_counter"),
    ("Generate", "reimagine_generate"),
    ("model", "reimagine_model"),
    ("mode", "reimagine_mode"),
    ("image 1", "reimagine_image_1"),
    ("Mix more images", "reimagine_mix_accordion"),
    ("noise level", "reimagine_noise_level"),
    ("noise presets", "reimagine_noise_presets"),
    ("sampler", "reimagine_sampling"),
    ("scheduler", "reimagine_scheduler"),
    ("steps", "reimagine_steps"),
    ("width", "reimagine_width"),
    ("height", "reimagine_height"),
    ("batch count", "reimagine_batch_count"),
    ("CFG scale", "reimagine_cfg_scale"),
    ("seed", "reimagine_seed"),
    ("Edit by text", "reimagine_text_diff_accordion"),
    ("gallery", "reimagine_gallery"),
    ("Vary again", "reimagine_vary_again"),
    ("Refine with SDXL", "reimagine_refine_accordion"),
)
TOKEN_PROMPT = "a photo of a (cat:1.3)"
TOKEN_COUNT = re.compile(r"^\s*(\d+)\s*/\s*75\s*$")
# installed before a run: records whether the WebUI's progress bar / live preview showed up under the gallery
WATCH_PROGRESS_JS = """() => {
    window.__walk_progress = {bar: false, preview: false, previewImage: false};
    // requestProgress() puts .progressDiv beside the gallery container and .livePreview into the gallery
    const c = document.getElementById('reimagine_results_column') || document.body;
    const look = () => {
        const seen = window.__walk_progress;
        seen.bar = seen.bar || !!c.querySelector('.progressDiv');
        seen.preview = seen.preview || !!c.querySelector('.livePreview');
        seen.previewImage = seen.previewImage || !!c.querySelector('.livePreview img');
    };
    if (window.__walk_observer) window.__walk_observer.disconnect();
    window.__walk_observer = new MutationObserver(look);
    window.__walk_observer.observe(c, {childList: true, subtree: true, attributes: true, attributeFilter: ['src']});
    look();
    return true;
}"""
# what still shows that a tab's job runs: its buttons (by id, and any visible "Interrupting..." text in the tab) and the
# progress bar requestProgress() puts beside the gallery
BUSY_JS = """(tab) => {
    const shown = (el) => !!el && el.offsetParent !== null;
    const root = document.getElementById('tab_' + tab) || document.body;
    const busy = [];
    for (const id of [tab + '_interrupt', tab + '_interrupting', tab + '_skip']) {
        if (shown(document.getElementById(id))) busy.push(id);
    }
    for (const b of root.querySelectorAll('button')) {
        if (shown(b) && /Interrupting/i.test(b.textContent || '')) busy.push('"' + b.textContent.trim() + '"');
    }
    if (root.querySelector('.progressDiv')) busy.push('progress bar');
    if (!shown(document.getElementById(tab + '_generate'))) busy.push('Generate hidden');
    return busy;
}"""
IDLE_JS = f"(tab) => ({BUSY_JS})(tab).length === 0"
REFINER_KEYS = (
    "Refiner post-pass: ",
    "Refiner post-pass strength: ",
    "Refiner post-pass steps: 2",
    "Refiner post-pass mode: ",
)


# ---------------------------------------------------------------------------------------------------------------------
# small helpers


def png_bytes(width: int = 128, height: int = 96) -> bytes:
    """A colourful RGB PNG made with the standard library (no Pillow needed in the runner's venv)."""
    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in ((x * 2) % 256, (y * 3) % 256, ((x + y) * 5) % 256))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def http(url: str, payload: Any = None, timeout: float = WAIT_S) -> tuple[int, Any]:
    """(status, parsed JSON or text) of a GET (payload None) or a JSON POST; HTTP errors are returned, not raised."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            status, body = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")


class Log:
    """New lines of the WebUI's log since the last call (the problems only)."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self.offset = self.path.stat().st_size if self.path and self.path.exists() else 0

    def new_problems(self) -> list[str]:
        if not self.path or not self.path.exists():
            return []
        with self.path.open("rb") as f:
            f.seek(self.offset)
            text = f.read().decode(errors="replace")
            self.offset = f.tell()
        keep: list[str] = []
        in_traceback = False
        for line in text.splitlines():
            problem = bool(LOG_PROBLEM.search(line)) and not LOG_HARMLESS.search(line)
            if problem or in_traceback:
                keep.append(line.rstrip())
            # a traceback goes on with indented lines and ends with its (unindented) exception line
            in_traceback = "Traceback (most recent call last)" in line or (in_traceback and line[:1] in (" ", "\t"))
        return keep


class Walk:
    """The page, the results and the checks."""

    def __init__(self, url: str, name: str, shots: Path, log: str | None) -> None:
        self.url, self.name, self.shots = url.rstrip("/"), name, shots
        self.log = Log(log)
        self.results: list[dict[str, Any]] = []
        self.console: list[str] = []
        self.page: Any = None
        self.seen: list[str] = []
        self.unclip = self.refiner = ""
        self.seeds: list[int] = []

    # --- recording -------------------------------------------------------------------------------------------------

    def note(self, text: str) -> None:
        self.seen.append(text)
        print(f"    {text}", flush=True)

    def step(self, key: str, title: str, fn: Callable[[], None]) -> bool:
        print(f"[{self.name}] {key}: {title}", flush=True)
        self.seen, self.console = [], []
        ok, error = True, ""
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - a failed step is recorded, the walk goes on
            ok, error = False, f"{type(exc).__name__}: {exc}".strip()
            print(traceback.format_exc(), flush=True)
        shot = self.shot(key)
        result = {
            "step": key,
            "title": title,
            "ok": ok,
            "seen": self.seen,
            "error": error[:2000],
            "screenshot": shot,
            "log_problems": self.log.new_problems(),
            "console_errors": list(self.console),
        }
        self.results.append(result)
        print(f"[{self.name}] {key}: {'PASS' if ok else 'FAIL ' + error[:300]}", flush=True)
        for line in result["log_problems"]:
            print(f"    log: {line}", flush=True)
        for line in result["console_errors"]:
            print(f"    console: {line}", flush=True)
        return ok

    def shot(self, key: str) -> str:
        if self.page is None or self.page.url == "about:blank":  # nothing opened yet (the models step)
            return ""
        path = self.shots / f"{self.name}-{key}.png"
        try:
            self.page.screenshot(path=str(path), full_page=True, timeout=60_000)
        except Exception as exc:  # noqa: BLE001
            print(f"    screenshot failed: {exc}", flush=True)
            return ""
        return str(path)

    # --- page actions ------------------------------------------------------------------------------------------------

    def top_tab(self, label: str) -> None:
        tab = self.page.locator(TOP_TABS, has_text=re.compile(rf"^\s*{re.escape(label)}\s*$", re.IGNORECASE)).first
        tab.click()
        self.page.wait_for_timeout(500)

    def number(self, elem_id: str, value: Any) -> None:
        box = self.page.locator(f"#{elem_id} input[type=number]").first
        box.fill(str(value))
        box.press("Enter")
        self.page.wait_for_timeout(200)
        got = box.input_value()
        if str(got) != str(value):
            raise AssertionError(f"#{elem_id} reads {got!r} after setting {value!r}")

    def choose(self, elem_id: str, value: str) -> None:
        """Pick ``value`` in a gradio dropdown (3.41 and 4.40: click the input, then the option)."""
        field = self.page.locator(f"#{elem_id} input").first
        field.click()
        option = self.page.locator("ul.options li", has_text=value).first
        option.wait_for(state="visible", timeout=15_000)
        option.click()
        self.page.wait_for_timeout(300)
        got = field.input_value()
        if value not in got:
            raise AssertionError(f"#{elem_id} reads {got!r} after choosing {value!r}")

    def accordion_open(self, elem_id: str) -> bool:
        return "open" in (self.page.locator(f"#{elem_id} .label-wrap").first.get_attribute("class") or "").split()

    def visible(self, elem_id: str) -> bool:
        found = self.page.locator(f"#{elem_id}")
        return found.count() > 0 and found.first.is_visible()

    def watch_progress(self) -> None:
        self.page.evaluate(WATCH_PROGRESS_JS)

    def note_progress(self) -> None:
        seen = self.page.evaluate("() => window.__walk_progress || null")
        self.note(f"during the run, under the gallery: {seen}")

    def open_accordion(self, elem_id: str) -> None:
        wrap = self.page.locator(f"#{elem_id} .label-wrap").first
        if "open" not in (wrap.get_attribute("class") or ""):
            wrap.click()
            self.page.wait_for_timeout(300)

    def gallery_count(self, tab: str) -> int:
        return int(
            self.page.evaluate(
                """(id) => { const g = document.getElementById(id); if (!g) return 0;
                   const small = g.querySelectorAll('.thumbnail-item.thumbnail-small').length;
                   return small || g.querySelectorAll('.thumbnail-item').length; }""",
                f"{tab}_gallery",
            )
        )

    def generation_info(self, tab: str) -> dict[str, Any]:
        text = self.page.locator(f"#generation_info_{tab} textarea").first.input_value()
        try:
            return json.loads(text) if text else {}
        except ValueError:
            return {}

    def wait_info_change(self, tab: str, before: str, timeout_s: float = WAIT_S) -> str:
        self.page.wait_for_function(
            """([id, before]) => { const t = document.querySelector('#' + id + ' textarea');
               return t && t.value && t.value !== before; }""",
            arg=[f"generation_info_{tab}", before],
            timeout=timeout_s * 1000,
        )
        return self.page.locator(f"#generation_info_{tab} textarea").first.input_value()

    def wait_text(self, elem_id: str, text: str, timeout_s: float = 60) -> str:
        self.page.wait_for_function(
            "([id, text]) => { const e = document.getElementById(id); return e && e.innerText.includes(text); }",
            arg=[elem_id, text],
            timeout=timeout_s * 1000,
        )
        return self.page.inner_text(f"#{elem_id}")

    def html_info(self, tab: str) -> str:
        return self.page.inner_text(f"#html_info_{tab}")

    def wait_idle(self, tab: str, timeout_s: float = 120) -> None:
        """Until the tab is idle again, twice 500 ms apart: Generate shown, and no Interrupt, "Interrupting...",
        Skip or progress bar left (after an Interrupt the WebUI shows "Interrupting..." where Interrupt was, and
        Generate comes back only when the job has really ended)."""
        try:
            for _ in range(2):
                self.page.wait_for_function(IDLE_JS, arg=tab, timeout=timeout_s * 1000)
                self.page.wait_for_timeout(500)
            self.page.wait_for_function(IDLE_JS, arg=tab, timeout=timeout_s * 1000)
        except Exception as exc:
            busy = self.page.evaluate(BUSY_JS, tab)
            raise AssertionError(f"the {tab} tab is not idle after the run: {busy}") from exc
        self.note(f"{tab} tab idle again (Generate shown; no Interrupt, Interrupting..., Skip or progress bar)")

    # --- the steps ---------------------------------------------------------------------------------------------------

    def find_models(self) -> None:
        status, models = http(f"{self.url}/reimagine/v1/models", timeout=60)
        if status != 200 or not isinstance(models, list):
            raise AssertionError(f"GET /reimagine/v1/models: {status} {str(models)[:300]}")
        kinds = {m.get("kind"): m.get("name") for m in models}
        self.unclip = next((m["name"] for m in models if str(m.get("kind", "")).startswith("unclip-h")), "")
        self.refiner = kinds.get("sdxl-refiner", "")
        self.note(f"models: {models}")
        if not self.unclip or not self.refiner:
            raise AssertionError(f"need an unCLIP-H and an SDXL refiner model, the extension lists {kinds}")

    def step_tab(self) -> None:
        self.page.goto(self.url, timeout=120_000)
        self.page.wait_for_selector(TOP_TABS, timeout=180_000)
        tabs = [t.strip() for t in self.page.locator(TOP_TABS).all_inner_texts()]
        self.note(f"top tabs: {tabs}")
        self.top_tab("Reimagine")
        self.page.wait_for_selector("#reimagine_generate", state="visible", timeout=60_000)
        self.page.wait_for_timeout(1000)  # let the layout settle
        viewport_shot = self.shots / f"{self.name}-tab-viewport.png"
        self.page.screenshot(path=str(viewport_shot), full_page=False, timeout=60_000)
        self.note(f"viewport screenshot: {viewport_shot}")
        fold = self.page.evaluate(
            """(controls) => controls.map(([label, id]) => {
                   const e = document.getElementById(id);
                   if (!e || e.offsetParent === null) return [label, 'hidden'];
                   const r = e.getBoundingClientRect();
                   const where = r.bottom <= window.innerHeight ? 'above' : (r.top < window.innerHeight ? 'cut' : 'below');
                   return [label, where + ` (x ${Math.round(r.left)}, y ${Math.round(r.top)}-${Math.round(r.bottom)})`];
               })""",
            [list(pair) for pair in FOLD_CONTROLS],
        )
        for where in ("above", "cut", "below", "hidden"):
            self.note(f"{where} the fold: {[label for label, at in fold if at.startswith(where)]}")
        self.note(f"positions: {dict(fold)}")
        for elem_id in ("reimagine_model", "reimagine_image_1", "reimagine_gallery", "reimagine_vary_again"):
            if not self.page.locator(f"#{elem_id}").first.is_visible():
                raise AssertionError(f"#{elem_id} is not visible in the Reimagine tab")
        self.note(f"model dropdown reads {self.page.locator('#reimagine_model input').first.input_value()!r}")

    def step_mix_accordion(self) -> None:
        p = self.page
        if not self.visible("reimagine_mix_accordion"):
            raise AssertionError("no 'Mix more images' accordion (#reimagine_mix_accordion) visible")
        label = p.locator("#reimagine_mix_accordion .label-wrap").first.inner_text().strip()
        folded = not self.accordion_open("reimagine_mix_accordion")
        slots = {i: self.visible(f"reimagine_image_{i}") for i in range(1, 5)}
        self.note(f"accordion label {label!r}; folded at first: {folded}; image slots visible: {slots}")
        if not folded or any(slots[i] for i in (2, 3, 4)) or not slots[1]:
            raise AssertionError("'Mix more images' is not folded at first (or image 1 is hidden)")
        frames_before = self.visible("reimagine_frames")
        p.locator("#reimagine_mode label", has_text="Interpolation").first.click()
        try:
            p.wait_for_function(
                """() => { const e = document.getElementById('reimagine_image_2');
                           return !!e && e.offsetParent !== null; }""",
                timeout=15_000,
            )
        finally:
            slots = {i: self.visible(f"reimagine_image_{i}") for i in range(1, 5)}
            self.note(
                f"after choosing Interpolation: accordion open {self.accordion_open('reimagine_mix_accordion')}; "
                f"image slots visible {slots}; frames slider visible {frames_before} -> "
                f"{self.visible('reimagine_frames')}"
            )
        if not self.accordion_open("reimagine_mix_accordion"):
            raise AssertionError("image 2 shows but the accordion's label-wrap is not 'open'")
        if not self.visible("reimagine_frames"):
            raise AssertionError("the Frames slider is not shown in Interpolation mode")
        # back to Variations for the generation steps; the group may stay unfolded (noted)
        p.locator("#reimagine_mode label", has_text="Variations").first.click()
        p.wait_for_timeout(800)
        self.note(
            f"back to Variations: accordion open {self.accordion_open('reimagine_mix_accordion')}, "
            f"frames visible {self.visible('reimagine_frames')}"
        )
        if self.visible("reimagine_frames"):
            raise AssertionError("the Frames slider stays shown after going back to Variations")

    def step_token_counter(self) -> None:
        p = self.page
        for elem_id in ("reimagine_token_counter", "reimagine_negative_token_counter"):
            if p.locator(f"#{elem_id}").count() == 0:
                raise AssertionError(f"no #{elem_id}")
            self.note(f"#{elem_id} at first: {p.inner_text(f'#{elem_id}').strip()!r} (visible {self.visible(elem_id)})")
        box = p.locator("#reimagine_prompt textarea").first
        box.click()
        box.fill("")
        box.press_sequentially(TOKEN_PROMPT, delay=20)
        try:
            p.wait_for_function(
                """() => { const e = document.getElementById('reimagine_token_counter');
                           const m = e && e.innerText.trim().match(/^(\\d+)\\s*\\/\\s*75$/);
                           return !!m && Number(m[1]) > 0; }""",
                timeout=30_000,
            )
        finally:
            first = p.inner_text("#reimagine_token_counter").strip()
            self.note(f"after typing {TOKEN_PROMPT!r}: first N > 0 reading {first!r}")
        # every keystroke is a change event: wait until the counter settles (same text for 2 s) before judging it
        text, since, deadline = first, time.time(), time.time() + 30
        while time.time() - since < 2 and time.time() < deadline:
            p.wait_for_timeout(250)
            now = p.inner_text("#reimagine_token_counter").strip()
            if now != text:
                text, since = now, time.time()
        self.note(f"settled counter: {text!r} (5/75 expected: '(cat:1.3)' is attention syntax)")
        match = TOKEN_COUNT.match(text)
        if not match or int(match.group(1)) <= 0:
            raise AssertionError(f"the counter reads {text!r}, not N/75 with N > 0")
        negative = p.inner_text("#reimagine_negative_token_counter").strip()
        self.note(f"negative counter (negative prompt untouched): {negative!r}")
        box.fill("")  # the generation steps run without a prompt, as before
        p.wait_for_timeout(1000)
        self.note(f"prompt cleared: counter reads {p.inner_text('#reimagine_token_counter').strip()!r}")

    def step_generate(self, image: Path) -> None:
        p = self.page
        p.set_input_files("#reimagine_image_1 input[type=file]", str(image))
        p.wait_for_selector("#reimagine_image_1 img", timeout=60_000)
        self.choose("reimagine_model", self.unclip)
        self.number("reimagine_steps", 2)
        self.number("reimagine_width", 64)
        self.number("reimagine_height", 64)
        self.number("reimagine_batch_count", 2)
        self.number("reimagine_batch_size", 1)
        self.number("reimagine_seed", SEED)
        before = p.locator("#generation_info_reimagine textarea").first.input_value()
        self.watch_progress()
        p.click("#reimagine_generate")
        self.wait_info_change("reimagine", before)
        self.note_progress()
        p.wait_for_function(
            """() => { const g = document.getElementById('reimagine_gallery');
                       return g && g.querySelectorAll('.thumbnail-item').length >= 2; }""",
            timeout=60_000,
        )
        self.wait_idle("reimagine")
        info = self.generation_info("reimagine")
        self.seeds = [int(s) for s in info.get("all_seeds", [])]
        count = self.gallery_count("reimagine")
        self.note(f"gallery shows {count} images; all_seeds {self.seeds}; {len(info.get('infotexts', []))} infotexts")
        self.note(f"info text: {self.html_info('reimagine')[:400]!r}")
        log = p.inner_text("#html_log_reimagine") if p.locator("#html_log_reimagine").count() else ""
        self.note(f"html log: {log[:300]!r}")
        if count != 2:
            raise AssertionError(f"expected 2 images in the gallery, saw {count}")
        if len(self.seeds) != 2:
            raise AssertionError(f"expected 2 seeds in the generation info, saw {self.seeds}")
        if "Refiner post-pass error" in log or "Error" in log:
            raise AssertionError(f"the run reported an error: {log[:500]}")

    def step_select(self) -> None:
        p = self.page
        if len(self.seeds) < 2:
            raise AssertionError("no 2 seeds from the previous step")
        thumbs = p.locator("#reimagine_gallery .thumbnail-item.thumbnail-small")
        if thumbs.count() < 2:
            thumbs = p.locator("#reimagine_gallery .thumbnail-item")
        thumbs.nth(1).click()
        want = f"Seed: {self.seeds[1]}"
        try:
            text = self.wait_text("html_info_reimagine", want, timeout_s=30)
        finally:
            self.note(f"after selecting the 2nd output the info text reads {self.html_info('reimagine')[:300]!r}")
        if re.search(rf"Seed: {self.seeds[1]}\b", text) is None:
            raise AssertionError(f"{want!r} is not in the info text")
        index = p.evaluate("typeof reimagine_selected_index === 'function' ? reimagine_selected_index() : null")
        self.note(f"reimagine_selected_index() = {index}")
        if index != 1:
            raise AssertionError(f"the page reports selected index {index}, expected 1")

    def step_reuse_seed(self) -> None:
        p = self.page
        self.number("reimagine_seed", -1)
        p.click("#reimagine_reuse_seed")
        want = str(self.seeds[1]) if len(self.seeds) > 1 else "?"
        try:
            p.wait_for_function(
                "(want) => document.querySelector('#reimagine_seed input').value == want", arg=want, timeout=30_000
            )
        finally:
            self.note(f"seed field after ♻️: {p.locator('#reimagine_seed input').first.input_value()!r} (want {want})")

    def step_vary_again(self) -> None:
        p = self.page
        before_src = p.get_attribute("#reimagine_image_1 img", "src")
        before = p.locator("#generation_info_reimagine textarea").first.input_value()
        # the seed field holds the 2nd output's seed now (♻️); keep it so the run is reproducible
        p.click("#reimagine_vary_again")
        after = self.wait_info_change("reimagine", before)
        self.wait_idle("reimagine")
        after_src = p.get_attribute("#reimagine_image_1 img", "src")
        self.note(f"image 1 src before {str(before_src)[:80]!r}, after {str(after_src)[:80]!r}")
        info = json.loads(after)
        self.note(f"new run: all_seeds {info.get('all_seeds')}, gallery {self.gallery_count('reimagine')} images")
        self.note(f"info text: {self.html_info('reimagine')[:300]!r}")
        if after_src == before_src:
            raise AssertionError("image 1 did not change to the selected output")

    def step_refine(self) -> None:
        p = self.page
        thumbs = p.locator("#reimagine_gallery .thumbnail-item.thumbnail-small")
        if thumbs.count() < 2:
            thumbs = p.locator("#reimagine_gallery .thumbnail-item")
        if thumbs.count() >= 2:
            thumbs.nth(1).click()
            p.wait_for_timeout(500)
        in_results = p.evaluate(
            """() => !!document.querySelector('#reimagine_results_column #reimagine_refine_accordion')"""
        )
        self.note(f"'Refine with SDXL' accordion in the results column: {in_results}")
        if not in_results:
            raise AssertionError("#reimagine_refine_accordion is not inside #reimagine_results_column")
        self.open_accordion("reimagine_refine_accordion")
        inside = {
            elem_id: p.locator(f"#reimagine_refine_accordion #{elem_id}").count() > 0
            for elem_id in (
                "reimagine_refiner_model",
                "reimagine_refiner_strength",
                "reimagine_refiner_steps",
                "reimagine_refine",
            )
        }
        button = p.locator("#reimagine_refine").first.inner_text().strip()
        self.note(f"inside the accordion: {inside}; button reads {button!r}")
        if not all(inside.values()) or button != "Refine the selected image":
            raise AssertionError(f"the refine accordion lacks controls ({inside}) or its button reads {button!r}")
        self.choose("reimagine_refiner_model", self.refiner)
        self.number("reimagine_refiner_steps", 2)
        batch = self.gallery_count("reimagine")
        before = p.locator("#generation_info_reimagine textarea").first.input_value()
        self.watch_progress()
        p.click("#reimagine_refine")
        try:
            self.wait_info_change("reimagine", before)
            self.note_progress()
            text = self.wait_text("html_info_reimagine", "Refiner post-pass", timeout_s=60)
            self.wait_idle("reimagine")
        finally:
            log = p.inner_text("#html_log_reimagine") if p.locator("#html_log_reimagine").count() else ""
            self.note(f"html log: {log[:300]!r}")
        self.note(f"info text: {text[:500]!r}; gallery {self.gallery_count('reimagine')} images (was {batch})")
        missing = [key for key in REFINER_KEYS if key not in text]
        if missing or "Refiner post-pass error" in text:
            raise AssertionError(f"refined infotext lacks {missing} or reports an error: {text[:500]}")
        # the WebUI's habit: the batch stays visible, the new image is added and selected
        try:
            p.wait_for_function(
                """(count) => typeof reimagine_selected_index === 'function'
                              && reimagine_selected_index() === count - 1""",
                arg=batch + 1,
                timeout=10_000,
            )
        except Exception as exc:
            count, selected = self.gallery_count("reimagine"), p.evaluate("() => reimagine_selected_index()")
            raise AssertionError(
                f"after refining, the gallery shows {count} images (the batch had {batch}) with #{selected} selected; "
                f"expected {batch + 1} with the refined one (#{batch}) selected"
            ) from exc
        self.note(f"the batch stayed: {self.gallery_count('reimagine')} images, the refined one (#{batch}) selected")

    def step_live_preview(self) -> None:
        p = self.page
        status, options = http(f"{self.url}/sdapi/v1/options", timeout=60)
        if status != 200 or not isinstance(options, dict):
            raise AssertionError(f"GET /sdapi/v1/options: {status}")
        want = {
            "show_progress_every_n_steps": 1,
            "show_progress_type": "Approx cheap",
            "live_previews_enable": True,
            "live_preview_refresh_period": 250,  # ms between the page's progress polls (default 1000)
        }
        saved = {k: options[k] for k in want if k in options}
        self.note(f"options before: {saved}")
        status, _ = http(f"{self.url}/sdapi/v1/options", {k: v for k, v in want.items() if k in saved}, timeout=60)
        if status != 200:
            raise AssertionError(f"POST /sdapi/v1/options: {status}")
        seen: dict[str, Any] = {}
        steps, batches = 30, 2
        try:
            while True:
                took = self._run_reimagine(steps, batches, 128)
                self.note(f"{steps} steps x batch count {batches}: the run took about {took:.1f} s")
                seen = p.evaluate("() => window.__walk_progress || {}")
                if seen.get("previewImage") or took >= 10 or steps >= 150:
                    break
                steps, batches = min(steps * 4, 150), min(batches * 2, 4)  # too quick to be seen: a longer run
        finally:
            http(f"{self.url}/sdapi/v1/options", saved, timeout=60)
            self._small_runs()
        if not seen.get("bar") or not seen.get("previewImage"):
            raise AssertionError(f"no progress bar or no live preview image under the gallery during the run: {seen}")

    def _run_reimagine(self, steps: int, batches: int, side: int) -> float:
        """One Generate with these settings, until the tab is idle; returns about how long it ran (not checked)."""
        p = self.page
        self.number("reimagine_steps", steps)
        self.number("reimagine_width", side)
        self.number("reimagine_height", side)
        self.number("reimagine_batch_count", batches)
        self.number("reimagine_seed", SEED)
        before = p.locator("#generation_info_reimagine textarea").first.input_value()
        self.watch_progress()
        started = time.time()
        p.click("#reimagine_generate")
        self.wait_info_change("reimagine", before)
        took = time.time() - started
        self.note_progress()
        self.wait_idle("reimagine")
        self.note(f"gallery {self.gallery_count('reimagine')} images; info {self.html_info('reimagine')[:200]!r}")
        return took

    def _small_runs(self) -> None:
        self.number("reimagine_steps", 2)
        self.number("reimagine_width", 64)
        self.number("reimagine_height", 64)
        self.number("reimagine_batch_count", 2)

    def step_interrupt(self) -> None:
        p = self.page
        self.number("reimagine_steps", 150)
        self.number("reimagine_width", 128)
        self.number("reimagine_height", 128)
        self.number("reimagine_batch_count", 4)
        self.number("reimagine_seed", SEED)
        self.watch_progress()
        p.click("#reimagine_generate")
        try:
            p.wait_for_function("() => !!(window.__walk_progress || {}).bar", timeout=WAIT_S * 1000)
            p.wait_for_timeout(1000)
            p.click("#reimagine_interrupt")
            self.note(f"Interrupt clicked; the tab shows {p.evaluate(BUSY_JS, 'reimagine')}")
            self.wait_idle("reimagine", timeout_s=WAIT_S)
        finally:
            self._small_runs()
        log = p.inner_text("#html_log_reimagine") if p.locator("#html_log_reimagine").count() else ""
        count = self.gallery_count("reimagine")
        self.note(f"after the interrupt: gallery {count} images; html log {log[:300]!r}")
        if "Interrupted" not in log or count >= 4:
            raise AssertionError(f"the interrupted run shows {count} of 4 images and the log {log[:300]!r}")
        self._run_reimagine(2, 2, 64)  # the next run starts and ends normally
        if self.gallery_count("reimagine") != 2:
            raise AssertionError(f"the run after the interrupt shows {self.gallery_count('reimagine')} images, not 2")

    def step_txt2img(self) -> None:
        p = self.page
        self.top_tab("txt2img")
        accordion = p.evaluate(
            """() => { const a = Array.from(document.querySelectorAll('#tab_txt2img .input-accordion, '
                         + '#tab_txt2img [id^=script_txt2img]'))
                         .find(e => /refiner_post.?pass_enabled$/.test(e.id));
                       return a ? a.id : null; }"""
        )
        if not accordion:
            raise AssertionError("no 'Refiner post-pass (SDXL)' accordion in txt2img")
        prefix = accordion[: -len("enabled")]
        self.note(f"accordion #{accordion}")
        p.locator(f"#{accordion}").first.scroll_into_view_if_needed()
        self.open_accordion(accordion)
        ticked = p.locator(f"#{accordion}-visible-checkbox")
        if ticked.count() and not ticked.first.is_checked():
            ticked.first.click()
        hidden = p.locator(f"#{accordion}-checkbox input").first
        self.note(
            f"visible box ticked: {ticked.first.is_checked() if ticked.count() else 'n/a'}; "
            f"hidden checkbox: {hidden.is_checked() if hidden.count() else 'n/a'}"
        )
        self.choose(f"{prefix}model", self.refiner)
        self.number(f"{prefix}steps", 2)
        p.locator("#txt2img_prompt textarea").first.fill("a lighthouse at dusk")
        self.number("txt2img_steps", 2)
        self.number("txt2img_width", 64)
        self.number("txt2img_height", 64)
        self.number("txt2img_batch_count", 1)
        self.number("txt2img_batch_size", 1)
        self.number("txt2img_seed", SEED)
        before = p.locator("#generation_info_txt2img textarea").first.input_value()
        p.click("#txt2img_generate")
        self.wait_info_change("txt2img", before)
        self.wait_idle("txt2img")
        text = self.html_info("txt2img")
        self.note(f"txt2img info text: {text[:700]!r}")
        missing = [key for key in REFINER_KEYS if key not in text]
        if missing or "Refiner post-pass error" in text:
            raise AssertionError(f"txt2img infotext lacks {missing} or reports an error")

    def step_api(self) -> None:
        base = {
            "prompt": "a lighthouse at dusk",
            "steps": 2,
            "width": 64,
            "height": 64,
            "seed": SEED,
            "sampler_name": "Euler a",
        }
        good = {**base, "alwayson_scripts": {"refiner post-pass": {"args": [{"model": self.refiner, "steps": 2}]}}}
        status, answer = http(f"{self.url}/sdapi/v1/txt2img", good)
        infotexts = _infotexts(answer)
        self.note(f"good request: HTTP {status}; {len(_images(answer))} images; infotext {infotexts[:1]!r}"[:900])
        good_ok = status == 200 and bool(infotexts) and all(k in infotexts[0] for k in REFINER_KEYS)
        good_ok = good_ok and "Refiner post-pass error" not in infotexts[0]

        bad = {
            **base,
            "alwayson_scripts": {"refiner post-pass": {"args": [{"model": self.refiner, "steps": 2, "strength": 5}]}},
        }
        status_bad, answer_bad = http(f"{self.url}/sdapi/v1/txt2img", bad)
        texts_bad = _infotexts(answer_bad)
        detail = answer_bad if status_bad != 200 else texts_bad[:1]
        self.note(f"bad request (strength 5): HTTP {status_bad}; {str(detail)[:700]!r}")
        clear = 400 <= status_bad < 500 or (
            status_bad == 200 and bool(texts_bad) and "Refiner post-pass error" in texts_bad[0]
        )
        problems = []
        if not good_ok:
            problems.append(f"good request: HTTP {status}, infotext without our keys or with an error")
        if not clear:
            problems.append(f"bad request: HTTP {status_bad} without a clear message")
        if problems:
            raise AssertionError("; ".join(problems))

    # --- all ---------------------------------------------------------------------------------------------------------

    def run(self, image: Path) -> list[dict[str, Any]]:
        from playwright.sync_api import sync_playwright

        self.shots.mkdir(parents=True, exist_ok=True)
        executable = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
            try:
                context = browser.new_context(viewport=VIEWPORT)
                context.set_default_timeout(60_000)
                self.page = context.new_page()
                self.page.on(
                    "pageerror",
                    lambda error: (
                        self.console.append(f"pageerror: {error}")
                        if not any(s in str(error) for s in IGNORED_CONSOLE)
                        else None
                    ),
                )
                self.page.on(
                    "console",
                    lambda m: (
                        self.console.append(m.text)
                        if m.type == "error" and not any(s in m.text for s in IGNORED_CONSOLE)
                        else None
                    ),
                )
                self.step("models", "the extension lists an unCLIP-H model and an SDXL refiner", self.find_models)
                self.step("reimagine-tab", "open the page, click the Reimagine tab", self.step_tab)
                self.step(
                    "mix-accordion",
                    "'Mix more images' folded at first; the Interpolation mode unfolds it",
                    self.step_mix_accordion,
                )
                self.step("token-counter", "typing a prompt updates the N/75 token counter", self.step_token_counter)
                self.step(
                    "generate",
                    "image 1, unCLIP model, batch count 2, steps 2, 64x64, Generate",
                    lambda: self.step_generate(image),
                )
                self.step("select", "select the 2nd output: the info text shows its seed", self.step_select)
                self.step("reuse-seed", "♻️ puts the selected output's seed into the seed field", self.step_reuse_seed)
                self.step(
                    "vary-again", "Vary again: the selected output becomes image 1, a new run", self.step_vary_again
                )
                self.step("refine", "Refine with SDXL over the selected output", self.step_refine)
                self.step(
                    "live-preview", "a longer run shows the progress bar and a live preview", self.step_live_preview
                )
                self.step(
                    "interrupt", "Interrupt a long run: idle again, the finished images kept", self.step_interrupt
                )
                self.step(
                    "txt2img-refiner", "txt2img with the Refiner post-pass (SDXL) accordion ticked", self.step_txt2img
                )
                self.step("api", "POST /sdapi/v1/txt2img with alwayson args, good and bad", self.step_api)
                context.close()
            finally:
                browser.close()
        return self.results


def _infotexts(answer: Any) -> list[str]:
    if not isinstance(answer, dict):
        return []
    try:
        info = json.loads(answer.get("info") or "{}")
    except ValueError:
        return []
    return [str(t) for t in info.get("infotexts", [])] if isinstance(info, dict) else []


def _images(answer: Any) -> list[Any]:
    return answer.get("images") or [] if isinstance(answer, dict) else []


def walk(url: str, name: str, shots: Path, log: str | None = None) -> list[dict[str, Any]]:
    """Run every step against the WebUI at ``url``; return one result dict per step."""
    shots.mkdir(parents=True, exist_ok=True)
    image = shots / f"{name}-input.png"
    image.write_bytes(png_bytes())
    started = time.time()
    results = Walk(url, name, shots, log).run(image)
    print(f"[{name}] walk took {time.time() - started:.0f} s", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("REIMAGINE_REAL_WEBUI_URL", "http://127.0.0.1:7860"))
    parser.add_argument("--name", default=os.environ.get("REIMAGINE_REAL_WEBUI_NAME", "webui"))
    parser.add_argument("--log", default=os.environ.get("REIMAGINE_REAL_WEBUI_LOG"))
    parser.add_argument("--shots", type=Path, default=Path(os.environ.get("REIMAGINE_WALK_SHOTS", "/tmp/walk-shots")))
    parser.add_argument("--json", type=Path, help="also write the results there")
    args = parser.parse_args(argv)
    results = walk(args.url, args.name, args.shots, args.log)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print()
    for r in results:
        print(f"{'PASS' if r['ok'] else 'FAIL'}  {r['step']:<16} {r['error'][:200]}")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
