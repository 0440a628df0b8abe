"""The page side of the real-WebUI walk (``walk.py``): constants, small helpers, the step recorder and the page
actions every step uses (Playwright + chromium; only the standard library besides)."""

from __future__ import annotations

import json
import re
import struct
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


class WalkPage:
    """The page, the results and the page actions (the steps are mixed in by ``walk.Walk``)."""

    def __init__(self, url: str, name: str, shots: Path, log: str | None) -> None:
        self.url, self.name, self.shots = url.rstrip("/"), name, shots
        self.log = Log(log)
        self.results: list[dict[str, Any]] = []
        self.console: list[str] = []
        self.page: Any = None
        self.seen: list[str] = []
        self.unclip = self.refiner = ""
        self.seeds: list[int] = []

    def refiner_accordion_id(self) -> str:
        """The id of our txt2img accordion (A1111's InputAccordion, or Forge's script group)."""
        accordion = self.page.evaluate(
            """() => { const a = Array.from(document.querySelectorAll('#tab_txt2img .input-accordion, '
                         + '#tab_txt2img [id^=script_txt2img]'))
                         .find(e => /refiner_post.?pass_enabled$/.test(e.id));
                       return a ? a.id : null; }"""
        )
        if not accordion:
            raise AssertionError("no 'Refiner post-pass (SDXL)' accordion in txt2img")
        return accordion

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
