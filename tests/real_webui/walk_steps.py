"""The SD 1.5-base steps of the real-WebUI walk (``walk.py``): the Reimagine tab, txt2img with the refiner accordion,
the REST API."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from walk_page import (
    BUSY_JS,
    FOLD_CONTROLS,
    REFINER_KEYS,
    SEED,
    TOKEN_COUNT,
    TOKEN_PROMPT,
    TOP_TABS,
    WAIT_S,
    WalkPage,
    http,
)


class SD15Steps(WalkPage):
    """Steps 1-4 of ``walk.py`` (docstring there)."""

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
        accordion = self.refiner_accordion_id()
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
