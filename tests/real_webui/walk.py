#!/usr/bin/env python3
"""Walk the extension through a REAL, running A1111 WebUI or Forge, the way a user does (Playwright + chromium).

usage: python tests/real_webui/walk.py --url http://127.0.0.1:7860 --name a1111 [--log WEBUI_LOG]
                                       [--shots /tmp/walk-shots] [--json RESULTS.json]
                                       [--sdxl CHECKPOINT --webui-dir WEBUI_DIR [--only sdxl]]

The WebUI must already run with the extension installed (Extensions -> Install from URL), with an SD 1.5 checkpoint
loaded as the base, and with an unCLIP-H model and an SDXL refiner in ``models/Stable-diffusion`` (tiny ones are
enough: ``tests/real_webui/setup/`` builds it all, see docs/real-webuis.md; the WebUI needs
``REIMAGINE_CONFIG_ROOT``). Run it with a python that has playwright (A1111's venv, Forge's ``pwvenv``); only the standard library is used besides.

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
   ``ip-adapter``, ``ip-adapter-keep-composition``: one IP-Adapter variation (the SD 1.5 base + ``ip-adapter_sd15``)
   and one with Keep composition 0.5, from the tab (``walk_ipadapter.py``, which also places their files).
3. ``txt2img``: tick the "Refiner post-pass (SDXL)" accordion, refiner model, 2 steps, 64x64; our infotext keys.
4. ``api``: POST /sdapi/v1/txt2img with the refiner's alwayson args (200 + our keys), and a bad value (strength 5):
   a 4xx or a clear ``Refiner post-pass error`` in the infotext, never a 500.

5. Opt-in (``--sdxl``, env ``REIMAGINE_WALK_SDXL``: the name of a full-size SDXL base, ``make_sdxl_base.py``): the
   SDXL steps of ``walk_sdxl.py`` (Latent, Pixel, Hires fix, batch 2x2, progress + live preview through the post-pass,
   Interrupt during it, memory, send to Reimagine), with VAE call counts and peak RSS from the test-only
   ``vae_probe/`` extension (installed into ``--webui-dir``/extensions, env ``REIMAGINE_WALK_WEBUI_DIR``). A summary
   goes to ``<shots>/<name>-sdxl-report.json``. ``--only sdxl`` (env ``REIMAGINE_WALK_ONLY``) skips steps 1-4; ``--sdxl-steps sdxl-latent,sdxl-hires`` (env
   ``REIMAGINE_WALK_SDXL_STEPS``) runs only those SDXL steps.

Modules: ``walk_page.py`` (helpers, recorder, page actions), ``walk_steps.py`` (steps 1-4), ``walk_sdxl.py`` (5),
``walk_ipadapter.py`` (the IP-Adapter steps of 2).
Exit status 0 when every step passed. Models are found through the extension's ``GET /reimagine/v1/models``.
No timing is checked; waits are generous (CPU WebUIs are slow).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the walk's modules, also when loaded by file path

import walk_ipadapter  # noqa: E402
from walk_page import BROWSER_ARGS, IGNORED_CONSOLE, VIEWPORT, png_bytes  # noqa: E402
from walk_sdxl import SDXLSteps  # noqa: E402
from walk_steps import SD15Steps  # noqa: E402


class Walk(SDXLSteps, SD15Steps):
    """The page, the results and the checks."""

    only: str = ""  # "sdxl": the models step, then only the SDXL steps
    sdxl_only: tuple[str, ...] = ()  # these SDXL steps (after sdxl-probe and sdxl-select); empty: all

    def run(self, image: Path) -> list[dict[str, Any]]:
        from playwright.sync_api import sync_playwright

        self.report = {"runs": []}
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
                if self.only != "sdxl":
                    self.step("reimagine-tab", "open the page, click the Reimagine tab", self.step_tab)
                    self.step(
                        "mix-accordion",
                        "'Mix more images' folded at first; the Interpolation mode unfolds it",
                        self.step_mix_accordion,
                    )
                    self.step(
                        "token-counter", "typing a prompt updates the N/75 token counter", self.step_token_counter
                    )
                    self.step(
                        "generate",
                        "image 1, unCLIP model, batch count 2, steps 2, 64x64, Generate",
                        lambda: self.step_generate(image),
                    )
                    self.step("select", "select the 2nd output: the info text shows its seed", self.step_select)
                    self.step(
                        "reuse-seed", "♻️ puts the selected output's seed into the seed field", self.step_reuse_seed
                    )
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
                    for key, title, fn in walk_ipadapter.steps(self, image):  # the IP-Adapter backend
                        self.step(key, title, fn)
                    self.step(
                        "txt2img-refiner",
                        "txt2img with the Refiner post-pass (SDXL) accordion ticked",
                        self.step_txt2img,
                    )
                    self.step("api", "POST /sdapi/v1/txt2img with alwayson args, good and bad", self.step_api)
                if self.sdxl_model:
                    try:
                        for key, title, fn in self.sdxl_steps():
                            if not self.sdxl_only or key in ("sdxl-probe", "sdxl-select", *self.sdxl_only):
                                self.step(key, title, fn)
                    finally:
                        self.restore_sdxl_options()
                        (self.shots / f"{self.name}-sdxl-report.json").write_text(
                            json.dumps(self.report, indent=2, ensure_ascii=False)
                        )
                context.close()
            finally:
                browser.close()
        return self.results


def walk(
    url: str,
    name: str,
    shots: Path,
    log: str | None = None,
    *,
    sdxl: str = "",
    webui_dir: Path | None = None,
    only: str = "",
    sdxl_steps: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Run every step against the WebUI at ``url``; return one result dict per step. ``sdxl``: a checkpoint name (or
    part of it) switches the SDXL steps on; ``webui_dir`` lets them install the VAE probe; ``only="sdxl"`` skips the
    SD 1.5-base steps; ``sdxl_steps`` picks some SDXL steps (probe and select always run)."""
    shots.mkdir(parents=True, exist_ok=True)
    image = shots / f"{name}-input.png"
    image.write_bytes(png_bytes())
    started = time.time()
    runner = Walk(url, name, shots, log)
    runner.sdxl_model, runner.webui_dir, runner.only, runner.sdxl_only = sdxl, webui_dir, only, sdxl_steps
    results = runner.run(image)
    print(f"[{name}] walk took {time.time() - started:.0f} s", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("REIMAGINE_REAL_WEBUI_URL", "http://127.0.0.1:7860"))
    parser.add_argument("--name", default=os.environ.get("REIMAGINE_REAL_WEBUI_NAME", "webui"))
    parser.add_argument("--log", default=os.environ.get("REIMAGINE_REAL_WEBUI_LOG"))
    parser.add_argument("--shots", type=Path, default=Path(os.environ.get("REIMAGINE_WALK_SHOTS", "/tmp/walk-shots")))
    parser.add_argument("--json", type=Path, help="also write the results there")
    env = os.environ.get
    parser.add_argument("--sdxl", default=env("REIMAGINE_WALK_SDXL", ""), help="SDXL base checkpoint: the SDXL steps")
    parser.add_argument("--webui-dir", type=Path, default=env("REIMAGINE_WALK_WEBUI_DIR"), help="for the VAE probe")
    parser.add_argument("--only", default=env("REIMAGINE_WALK_ONLY", ""), choices=["", "sdxl"])
    parser.add_argument(
        "--sdxl-steps", default=env("REIMAGINE_WALK_SDXL_STEPS", ""), help="comma list, e.g. sdxl-latent,sdxl-hires"
    )
    args = parser.parse_args(argv)
    results = walk(
        args.url,
        args.name,
        args.shots,
        args.log,
        sdxl=args.sdxl,
        webui_dir=args.webui_dir,
        only=args.only,
        sdxl_steps=tuple(s.strip() for s in args.sdxl_steps.split(",") if s.strip()),
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print()
    for r in results:
        print(f"{'PASS' if r['ok'] else 'FAIL'}  {r['step']:<16} {r['error'][:200]}")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
