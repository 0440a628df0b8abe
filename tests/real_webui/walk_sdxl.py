"""The SDXL-base steps of the real-WebUI walk (``walk.py``, opt-in: ``--sdxl CHECKPOINT`` or ``REIMAGINE_WALK_SDXL``).

From the page, txt2img with a full-size SDXL base (``make_sdxl_base.py``) and the "Refiner post-pass (SDXL)" accordion:
Latent, Pixel, Hires fix on, batch count 2 x batch size 2, a progress bar / live preview watched through the refiner
pass, Interrupt during the refiner pass, memory (resident / offload after each run), send to Reimagine. Tiny sizes
(128x128, 2 steps): a CPU WebUI runs the full-size SDXL UNet.

VAE calls and peak RSS come from the test-only companion extension ``vae_probe/`` (installed into the WebUI's
``extensions/`` folder next to ours, then Extensions > Installed > Apply and restart UI, unless it already answers):
it wraps the WebUI model's ``decode_first_stage`` / ``encode_first_stage`` and ``diffusers.AutoencoderKL`` inside the
WebUI process. The independent oracle for "Latent skips the VAE round trip": Latent mode calls the refiner's VAE
(diffusers) 0 times, Pixel mode encodes and decodes each image once more.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from walk_page import REFINER_KEYS, SEED, WAIT_S, WalkPage, http

PROBE = "/reimagine-probe/v1"
PROBE_DIR = Path(__file__).resolve().with_name("vae_probe")
PROBE_NAME = "reimagine-vae-probe"
SIDE = 128
# WebUI options for the SDXL steps (restored afterwards): a preview every step, polled every 250 ms; the preview
# method stays the default "Approx NN" (it reads models/VAE-approx/vaeapprox-sdxl.pt, never a VAE decode)
SDXL_OPTIONS = {"show_progress_every_n_steps": 1, "live_previews_enable": True, "live_preview_refresh_period": 250}
OPT_MEMORY = "reimagine_memory"
MEMORY_MODES = ("Keep resident", "Offload after each run")
# records the progress bar's text/percent and the live preview images seen while the post-pass runs
WATCH_TXT2IMG_JS = """() => {
    const w = window.__walk_sdxl = {texts: [], percents: [], refinerPercents: [], refinerText: false,
                                    srcsBefore: [], refinerSrcs: [], bar: false};
    const c = document.getElementById('tab_txt2img') || document.body;
    const look = () => {
        const bar = c.querySelector('.progressDiv');
        const text = bar ? (bar.innerText || '').trim() : '';
        if (bar) w.bar = true;
        if (text && w.texts[w.texts.length - 1] !== text) w.texts.push(text);
        const m = text.match(/(\\d+)%/);
        const refiner = /Refiner post-pass/.test(text);
        if (m) { const v = +m[1]; w.percents.push(v); if (refiner) w.refinerPercents.push(v); }
        if (refiner) w.refinerText = true;
        for (const img of c.querySelectorAll('.livePreview img')) {
            const src = img.getAttribute('src') || '';
            if (!src) continue;
            if (refiner) { if (!w.srcsBefore.includes(src) && !w.refinerSrcs.includes(src)) w.refinerSrcs.push(src); }
            else if (!w.srcsBefore.includes(src)) w.srcsBefore.push(src);
        }
    };
    if (window.__walk_sdxl_observer) window.__walk_sdxl_observer.disconnect();
    window.__walk_sdxl_observer = new MutationObserver(look);
    window.__walk_sdxl_observer.observe(c, {childList: true, subtree: true, characterData: true, attributes: true,
                                            attributeFilter: ['src', 'style']});
    if (window.__walk_sdxl_timer) clearInterval(window.__walk_sdxl_timer);
    window.__walk_sdxl_timer = setInterval(look, 100);
    return true;
}"""


class SDXLSteps(WalkPage):
    """The SDXL steps; ``sdxl_model`` (a checkpoint name or part of it) switches them on."""

    sdxl_model: str = ""
    webui_dir: Path | None = None
    report: dict[str, Any]
    _saved_options: dict[str, Any]
    _refiner_prefix: str = ""

    # --- the companion probe -----------------------------------------------------------------------------------------

    def probe(self, action: str = "counts") -> dict[str, Any]:
        status, answer = http(f"{self.url}{PROBE}/{action}", {} if action == "reset" else None, timeout=60)
        if status != 200 or not isinstance(answer, dict):
            raise AssertionError(f"{PROBE}/{action}: HTTP {status} {str(answer)[:200]}")
        return answer

    def step_sdxl_probe(self) -> None:
        if self._probe_up():
            self.note(f"the VAE probe extension already answers at {PROBE}")
            return
        if self.webui_dir is None:
            raise AssertionError(
                "the VAE probe does not answer; pass --webui-dir (REIMAGINE_WALK_WEBUI_DIR) to install it"
            )
        target = self.webui_dir / "extensions" / PROBE_NAME
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(PROBE_DIR, target)
        self.note(f"copied {PROBE_DIR} to {target}; Extensions > Installed > Apply and restart UI")
        if not self.page.url.startswith(self.url):
            self.page.goto(self.url, timeout=120_000)
            self.page.wait_for_selector("#tabs", timeout=180_000)
        self.top_tab("Extensions")
        self.page.locator("#tab_extensions button", has_text=re.compile(r"^\s*Installed\s*$")).first.click()
        self.page.wait_for_timeout(1000)
        apply = self.page.locator(
            "#tab_extensions button:visible", has_text=re.compile(r"^\s*Apply and restart UI\s*$")
        ).first
        startups = self._startups()
        started = time.time()
        apply.click()
        # No HTTP request while the WebUI starts again: A1111 1.10 dies with "Cannot add middleware after an
        # application has started" when a request reaches it between gradio's launch and its API middleware
        # (seen once in this walk). So the page (whose restart_reload() pings ./internal/ping every 500 ms) is left,
        # and with the log the walk waits for a new "Startup time:" line (printed after the API is added) first.
        self.page.wait_for_timeout(1000)
        self.page.goto("about:blank")
        while time.time() - started < WAIT_S:
            time.sleep(5)
            if (startups is None or self._startups() > startups) and self._probe_up():
                break
        else:
            raise AssertionError(f"the WebUI did not come back with the probe within {WAIT_S} s")
        self.note(f"the WebUI is back after {time.time() - started:.0f} s with {PROBE} answering")
        self.page.goto(self.url, timeout=180_000)
        self.page.wait_for_selector("#tabs", timeout=300_000)
        self.page.wait_for_timeout(2000)

    def _startups(self) -> int | None:
        """How many "Startup time:" lines the WebUI's log has (None without a log)."""
        if not self.log.path or not self.log.path.exists():
            return None
        return self.log.path.read_bytes().count(b"\nStartup time:")

    def _probe_up(self) -> bool:
        try:
            return http(f"{self.url}{PROBE}/counts", timeout=10)[0] == 200
        except OSError:
            return False

    # --- setup --------------------------------------------------------------------------------------------------------

    def step_sdxl_select(self) -> None:
        p = self.page
        if not p.url.startswith(self.url):
            p.goto(self.url, timeout=180_000)
            p.wait_for_selector("#tabs", timeout=300_000)
        status, options = http(f"{self.url}/sdapi/v1/options", timeout=60)
        if status != 200 or not isinstance(options, dict):
            raise AssertionError(f"GET /sdapi/v1/options: {status}")
        self._saved_options = {k: options[k] for k in [*SDXL_OPTIONS, OPT_MEMORY] if k in options}
        http(f"{self.url}/sdapi/v1/options", {k: v for k, v in SDXL_OPTIONS.items() if k in options}, timeout=60)
        self.note(f"options saved {self._saved_options}; set {SDXL_OPTIONS}")
        if self.log.path and self.log.path.exists():  # the memory-plan lines are read from here on
            self._sdxl_log_offset = self.log.path.stat().st_size
        started = time.time()
        self._choose_checkpoint()
        # A1111 loads the checkpoint now (its progress shows on the page), Forge at the next generation
        deadline = time.time() + WAIT_S * 2
        while time.time() < deadline:
            status, options = http(f"{self.url}/sdapi/v1/options", timeout=WAIT_S)
            if status == 200 and self.sdxl_model in str(options.get("sd_model_checkpoint", "")):
                break
            time.sleep(3)
        else:
            raise AssertionError(f"sd_model_checkpoint did not become {self.sdxl_model!r}")
        p.wait_for_timeout(1000)
        self.note(f"sd_model_checkpoint = {options.get('sd_model_checkpoint')!r} after {time.time() - started:.0f} s")
        self.top_tab("txt2img")
        self._refiner_prefix = self._refiner_accordion()

    def _choose_checkpoint(self) -> None:
        """The checkpoint dropdown at the top: A1111 ``#setting_sd_model_checkpoint``, Forge the ``.model_selection``
        dropdown labelled "Checkpoint" (no elem_id)."""
        p = self.page
        if p.locator("#setting_sd_model_checkpoint").count():
            field = p.locator("#setting_sd_model_checkpoint input").first
        else:
            box = p.locator(".model_selection", has_text=re.compile(r"Checkpoint")).first
            field = box.locator("input").first
        field.click()
        option = p.locator("ul.options li", has_text=self.sdxl_model).first
        option.wait_for(state="visible", timeout=15_000)
        option.click()
        p.wait_for_timeout(500)
        if self.sdxl_model not in field.input_value():
            raise AssertionError(f"the checkpoint dropdown reads {field.input_value()!r}")

    def _refiner_accordion(self) -> str:
        p = self.page
        accordion = self.refiner_accordion_id()
        prefix = accordion[: -len("enabled")]
        p.locator(f"#{accordion}").first.scroll_into_view_if_needed()
        self.open_accordion(accordion)
        ticked = p.locator(f"#{accordion}-visible-checkbox")
        if ticked.count() and not ticked.first.is_checked():
            ticked.first.click()
        self.choose(f"{prefix}model", self.refiner)
        box = p.locator(f"#{prefix}keep_original input").first
        if box.count() and box.is_checked():
            box.click()
        self.note(f"refiner accordion #{accordion} ticked, model {self.refiner}, keep original off")
        return prefix

    def _mode(self, mode: str) -> None:
        self.page.locator(f"#{self._refiner_prefix}mode label", has_text=re.compile(rf"^\s*{mode}\s*$")).first.click()
        self.page.wait_for_timeout(300)

    def _hires(self, on: bool) -> None:
        p = self.page
        box = p.locator("#txt2img_hr-visible-checkbox")
        if not box.count():
            box = p.locator("#txt2img_enable_hr input")
        if box.first.is_checked() != on:
            box.first.click()
            p.wait_for_timeout(300)
        if on:
            self.open_accordion("txt2img_hr")
            self.number("txt2img_hr_scale", 1.5)
            self.number("txt2img_hires_steps", 1)

    # --- one txt2img run ----------------------------------------------------------------------------------------------

    def _generate(
        self, label: str, mode: str, *, batch_count: int = 1, batch_size: int = 1, refiner_steps: int = 2
    ) -> dict[str, Any]:
        """Set the txt2img controls, reset the probe, Generate, wait; a record of what was seen."""
        p = self.page
        self.top_tab("txt2img")
        self._mode(mode)
        self.number(f"{self._refiner_prefix}steps", refiner_steps)
        p.locator("#txt2img_prompt textarea").first.fill("a lighthouse at dusk")
        self.number("txt2img_steps", 2)
        self.number("txt2img_width", SIDE)
        self.number("txt2img_height", SIDE)
        self.number("txt2img_batch_count", batch_count)
        self.number("txt2img_batch_size", batch_size)
        self.number("txt2img_seed", SEED)
        self.probe("reset")
        before = p.locator("#generation_info_txt2img textarea").first.input_value()
        p.evaluate(WATCH_TXT2IMG_JS)
        started = time.time()
        p.click("#txt2img_generate")
        self.wait_info_change("txt2img", before, timeout_s=WAIT_S * 2)
        self.wait_idle("txt2img", timeout_s=WAIT_S)
        return self._record(label, mode, started)

    def _record(self, label: str, mode: str, started: float) -> dict[str, Any]:
        took = time.time() - started
        info = self.generation_info("txt2img")
        infotexts = [str(t) for t in info.get("infotexts", [])]
        probe = self.probe("counts")
        watched = self.page.evaluate("() => window.__walk_sdxl || {}")
        record = {
            "run": label,
            "mode": mode,
            "seconds": round(took, 1),
            "images": self.gallery_count("txt2img"),
            "infotexts": len(infotexts),
            "refiner_infotext": [_refiner_part(t) for t in infotexts[:4]],
            "vae_calls": probe.get("counts", {}),
            "peak_rss_gib": round(probe.get("rss_kb", {}).get("VmHWM", 0) / 1024**2, 2),
            "progress": {
                "bar": watched.get("bar"),
                "refinerText": watched.get("refinerText"),
                "texts": _changes([re.sub(r" ETA: .*", "", t) for t in watched.get("texts", [])]),
            },
            "percents": _changes(watched.get("percents", [])),
            "refiner_percents": _changes(watched.get("refinerPercents", [])),
            "refiner_preview_images": len(watched.get("refinerSrcs", [])),
            "log_lines": self._log_lines(r"memory plan|Refiner post-pass"),
        }
        self.report["runs"].append(record)
        self.note(json.dumps(record, ensure_ascii=False)[:2500])
        return record

    def _log_lines(self, pattern: str) -> list[str]:
        path = self.log.path
        if not path or not path.exists():
            return []
        start = getattr(self, "_sdxl_log_offset", 0)
        with path.open("rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
            self._sdxl_log_offset = f.tell()
        return [line.strip()[:300] for line in text.splitlines() if re.search(pattern, line)][-6:]

    # --- the steps ------------------------------------------------------------------------------------------------------

    def step_sdxl_latent(self) -> None:
        r = self._generate("latent", "Latent")
        text = r["refiner_infotext"][0] if r["refiner_infotext"] else ""
        _need_keys(text, "Refiner post-pass mode: Latent")
        calls = r["vae_calls"]
        if calls.get("diffusers_decode", 0) or calls.get("diffusers_encode", 0):
            raise AssertionError(f"Latent mode used the refiner's VAE: {calls}")
        if calls.get("webui_decode_images", 0) != 1:
            raise AssertionError(f"Latent mode: the WebUI decoded {calls.get('webui_decode_images')} images, not 1")

    def step_sdxl_pixel(self) -> None:
        r = self._generate("pixel", "Pixel")
        text = r["refiner_infotext"][0] if r["refiner_infotext"] else ""
        _need_keys(text, "Refiner post-pass mode: Pixel")
        calls = r["vae_calls"]
        if calls.get("diffusers_encode_images", 0) < 1 or calls.get("diffusers_decode_images", 0) < 1:
            raise AssertionError(f"Pixel mode did not encode + decode with the refiner's VAE: {calls}")

    def step_sdxl_hires(self) -> None:
        self._hires(True)
        try:
            r = self._generate("hires-latent", "Latent")
        finally:
            self._hires(False)
        text = r["refiner_infotext"][0] if r["refiner_infotext"] else ""
        # the WebUI decodes the Hires pass inside sample_hr_pass: a chosen Latent runs as Pixel and says so
        _need_keys(text, "Refiner post-pass mode: Pixel (Hires fix)")
        if r["vae_calls"].get("diffusers_encode_images", 0) < 1:
            raise AssertionError(f"Latent under Hires fix did not run as Pixel: {r['vae_calls']}")
        self.note("Latent under Hires fix ran as Pixel, and the infotext says why: 'Pixel (Hires fix)'")

    def step_sdxl_batch(self) -> None:
        r = self._generate("batch-2x2", "Latent", batch_count=2, batch_size=2)
        if r["infotexts"] < 4 or r["images"] < 4:
            raise AssertionError(f"batch count 2 x batch size 2: {r['images']} images, {r['infotexts']} infotexts")
        for text in r["refiner_infotext"]:
            _need_keys(text, "Refiner post-pass mode: Latent")
        calls = r["vae_calls"]
        if calls.get("diffusers_decode", 0) or calls.get("diffusers_encode", 0):
            raise AssertionError(f"Latent mode used the refiner's VAE: {calls}")

    def step_sdxl_progress(self) -> None:
        r = self._generate("progress-preview", "Latent", refiner_steps=40)
        pct, ref = r["percents"], r["refiner_percents"]
        self.note(f"percents {pct}; while the post-pass ran {ref}; preview images then {r['refiner_preview_images']}")
        problems = []
        if not r["progress"].get("refinerText"):
            problems.append("the progress bar never said 'Refiner post-pass'")
        if any(b < a for a, b in itertools.pairwise(pct)) or any(v > 100 for v in pct):
            problems.append(f"the progress went back or past 100%: {pct}")
        if not ref or max(ref) < 75:
            problems.append(f"the progress bar did not near its total during the post-pass: {ref}")
        if r["refiner_preview_images"] < 1:
            problems.append("no live preview image during the post-pass")
        if problems:
            raise AssertionError("; ".join(problems))

    def _interrupted_run(self, label: str, clicks: int) -> dict[str, Any]:
        """Batch count 2, 150 refiner steps; Interrupt ``clicks`` times once the bar says "Refiner post-pass"."""
        p = self.page
        self.top_tab("txt2img")
        self._mode("Latent")
        self.number(f"{self._refiner_prefix}steps", 150)
        self.number("txt2img_batch_count", 2)
        self.number("txt2img_batch_size", 1)
        self.probe("reset")
        before = p.locator("#generation_info_txt2img textarea").first.input_value()
        p.evaluate(WATCH_TXT2IMG_JS)
        started = time.time()
        p.click("#txt2img_generate")
        try:
            p.wait_for_function("() => !!(window.__walk_sdxl || {}).refinerText", timeout=WAIT_S * 2000)
            p.wait_for_timeout(1000)
            p.click("#txt2img_interrupt")
            self.note(f"Interrupt clicked during the post-pass after {time.time() - started:.0f} s")
            if clicks > 1:
                p.wait_for_timeout(1500)
                toast = p.locator(".toast-body, .toast-wrap").all_inner_texts()
                again = "#txt2img_interrupting" if self.visible("txt2img_interrupting") else "#txt2img_interrupt"
                p.click(again)
                self.note(f"the WebUI said {[t.strip()[:120] for t in toast]}; clicked {again} again")
            self.wait_info_change("txt2img", before, timeout_s=WAIT_S)
            self.wait_idle("txt2img", timeout_s=WAIT_S)
        finally:
            self.number(f"{self._refiner_prefix}steps", 2)
            self.number("txt2img_batch_count", 1)
        r = self._record(label, "Latent", started)
        claims = bool(r["refiner_infotext"] and r["refiner_infotext"][0])
        self.note(
            f"{clicks} click(s): the refiner's UNet ran {r['vae_calls'].get('diffusers_unet', 0)} of 150 steps; "
            f"{r['images']} image(s) kept; its infotext has our keys: {claims}"
        )
        if r["images"] < 1 or r["infotexts"] < 1:
            raise AssertionError(f"the interrupted run kept {r['images']} images / {r['infotexts']} infotexts")
        return r

    def step_sdxl_interrupt(self) -> None:
        # The WebUI's "Don't Interrupt in the middle" (interrupt_after_current, on by default; ui_toprow.py): with more
        # than one job, the first click stops after the current image -- the post-pass finishes that image, batch 2
        # never starts; a second click ("Interrupting...") interrupts now -- the post-pass stops between steps and
        # the image stays as the base made it.
        once = self._interrupted_run("interrupted (1 click)", 1)
        if once["images"] != 1 or once["vae_calls"].get("diffusers_unet", 0) != 150:
            raise AssertionError(f"one click: expected the image finished (150 refiner steps), batch 2 skipped: {once}")
        twice = self._interrupted_run("interrupted (2 clicks)", 2)
        ran = twice["vae_calls"].get("diffusers_unet", 0)
        if ran >= 150:
            raise AssertionError("the second click did not stop the post-pass: its UNet ran all 150 steps")
        if twice["refiner_infotext"] and twice["refiner_infotext"][0]:
            raise AssertionError(f"the unrefined image's infotext claims the post-pass: {twice['refiner_infotext'][0]}")
        after = self._generate("after-interrupt", "Latent")
        if after["images"] != 1 or not after["refiner_infotext"]:
            raise AssertionError(f"the run after the interrupt: {after['images']} images")
        _need_keys(after["refiner_infotext"][0], "Refiner post-pass mode: Latent")

    def step_sdxl_memory(self) -> None:
        seen = {}
        try:
            for mode in reversed(MEMORY_MODES):
                status, _ = http(f"{self.url}/sdapi/v1/options", {OPT_MEMORY: mode}, timeout=60)
                if status != 200:
                    raise AssertionError(f"POST /sdapi/v1/options {OPT_MEMORY}={mode!r}: {status}")
                r = self._generate(f"memory: {mode}", "Latent")
                seen[mode] = {"peak_rss_gib": r["peak_rss_gib"], "plan": r["log_lines"]}
        finally:
            if OPT_MEMORY in self._saved_options:
                http(f"{self.url}/sdapi/v1/options", {OPT_MEMORY: self._saved_options[OPT_MEMORY]}, timeout=60)
        self.report["memory"] = seen
        self.note(f"peak RSS by memory setting: {seen}")

    def step_sdxl_send(self) -> None:
        p = self.page
        self.top_tab("txt2img")
        p.click("#txt2img_send_to_reimagine")
        p.wait_for_selector("#reimagine_image_1 img", state="visible", timeout=60_000)
        visible = self.visible("reimagine_generate")
        self.note(f"after 🌀 Send to Reimagine: the Reimagine tab shows {visible}, image 1 is filled")
        if not visible:
            raise AssertionError("Send to Reimagine did not switch to the Reimagine tab")

    def restore_sdxl_options(self) -> None:
        saved = {k: v for k, v in getattr(self, "_saved_options", {}).items() if k != OPT_MEMORY}
        if saved:
            http(f"{self.url}/sdapi/v1/options", saved, timeout=60)

    def sdxl_steps(self) -> list[tuple[str, str, Any]]:
        return [
            (
                "sdxl-probe",
                "the test-only VAE probe extension answers (installed through the page)",
                self.step_sdxl_probe,
            ),
            ("sdxl-select", "select the SDXL base; tick the refiner accordion", self.step_sdxl_select),
            ("sdxl-latent", "Latent: refined, no refiner VAE call", self.step_sdxl_latent),
            ("sdxl-pixel", "Pixel: the refiner's VAE encodes and decodes", self.step_sdxl_pixel),
            ("sdxl-hires", "Hires fix on with Latent chosen", self.step_sdxl_hires),
            ("sdxl-batch", "batch count 2 x batch size 2", self.step_sdxl_batch),
            ("sdxl-progress", "progress bar and live preview through the post-pass", self.step_sdxl_progress),
            ("sdxl-interrupt", "Interrupt during the post-pass; the next run works", self.step_sdxl_interrupt),
            ("sdxl-memory", "peak RSS: offload after each run vs keep resident", self.step_sdxl_memory),
            ("sdxl-send", "send the result to the Reimagine tab", self.step_sdxl_send),
        ]


def _changes(values: list[Any]) -> list[Any]:
    """``values`` without consecutive repeats (the page is polled every 100 ms)."""
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]


def _refiner_part(text: str) -> str:
    """The ``Refiner post-pass*`` keys of one infotext (and its line of parameters' tail)."""
    parts = [m.group(0) for m in re.finditer(r"Refiner post-pass[^:]*: (\"[^\"]*\"|[^,]*)", text)]
    return ", ".join(parts)


def _need_keys(text: str, *extra: str) -> None:
    missing = [key for key in (*REFINER_KEYS[:2], "Refiner post-pass mode: ", *extra) if key not in text]
    if missing or "Refiner post-pass error" in text:
        raise AssertionError(f"infotext lacks {missing} or reports an error: {text[:600]!r}")
