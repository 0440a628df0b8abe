#!/usr/bin/env python3
"""Install this extension into a running real WebUI through its page, as a user does (Playwright + chromium).

usage: python install_extension.py REPO --url URL [--name sd-webui-reimagine] [--log WEBUI_LOG] [--shots DIR]

Clicks: Extensions > Install from URL (URL = REPO, a git URL or a local git path: only COMMITTED content is cloned)
> Install; then Extensions > Installed > "Apply and restart UI"; waits until the WebUI is back (with ``--log``: until
a new ``Startup time:`` line, after which the extension's own routes exist) and the Installed table lists NAME.
The WebUI must run in a relaunch loop (setup/webui.sh starts it so); "Apply and quit" is refused. Exit 0 on success.
Run it with the python of ``pwvenv`` (setup/*.sh build it); chromium: $CHROMIUM, else chromium from PATH.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

TABS = "#tabs > .tab-nav > button"
STARTUP = "Startup time:"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/", timeout=5):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def startups(log: str | None) -> int:
    if not log or not os.path.exists(log):
        return 0
    with open(log, errors="replace") as f:
        return sum(line.startswith(STARTUP) for line in f)


def exact(text: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*{re.escape(text)}\s*$")


def open_extensions(page, url: str, sub: str) -> None:
    page.goto(url, wait_until="domcontentloaded", timeout=300_000)
    page.wait_for_selector(TABS, timeout=300_000)
    page.locator(TABS, has_text=exact("Extensions")).first.click()
    page.locator("#tab_extensions button", has_text=exact(sub)).first.click()
    page.wait_for_timeout(500)


def log_size(log: str | None) -> int:
    return os.path.getsize(log) if log and os.path.exists(log) else 0


def log_since(log: str | None, offset: int) -> str:
    if not log or not os.path.exists(log):
        return ""
    with open(log, errors="replace") as f:
        f.seek(offset)
        return f.read()


def wait_back(url: str, log: str | None, before: int, offset: int, timeout: float) -> float:
    """Seconds until the relaunched WebUI is back. With a log, nothing is requested before its new ``Startup time:``
    line: A1111 v1.10.1 dies ("Cannot add middleware after an application has started") when a request reaches it
    between gradio's launch and its API setup. A ``launch.py exited N`` line (N != 0, setup/webui.sh's loop) fails
    at once."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if re.search(r"^===== launch\.py exited [1-9]", log_since(log, offset), re.M):
            raise SystemExit(f"the WebUI exited during the restart: see {log}")
        if (log is None or startups(log) > before) and answers(url):
            return time.time() - t0
        time.sleep(1)
    raise SystemExit(f"the WebUI was not back within {timeout:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repo")
    ap.add_argument("--url", required=True)
    ap.add_argument("--name", default="sd-webui-reimagine")
    ap.add_argument("--log")
    ap.add_argument("--shots")
    ap.add_argument("--timeout", type=float, default=900)
    a = ap.parse_args()
    url, repo = a.url.rstrip("/"), a.repo
    if os.path.exists(repo):
        repo = str(Path(repo).resolve())  # the WebUI clones from its own working directory
        head = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        if head.returncode:
            raise SystemExit(f"{repo}: not a git repository with a commit")
        print(f"installing {repo} @ {head.stdout.strip()} as extensions/{a.name}", flush=True)
    if not answers(url):
        raise SystemExit(f"no WebUI at {url}")
    shots = Path(a.shots) if a.shots else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        executable = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
        browser = pw.chromium.launch(executable_path=executable, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})

        def shot(name: str) -> None:
            if shots:
                page.screenshot(path=str(shots / name))

        open_extensions(page, url, "Install from URL")
        page.get_by_label("URL for extension's git repository").fill(repo)
        page.get_by_label("Local directory name").fill(a.name)
        shot("install-filled.png")
        t0 = time.time()
        page.locator("#tab_extensions button:visible", has_text=exact("Install")).first.click()
        page.wait_for_function(
            "() => { const r = document.querySelector('#extension_install_result');"
            " return !!r && /Installed into|Error/.test(r.innerText); }",
            timeout=a.timeout * 1000,
        )
        result = " ".join(page.inner_text("#extension_install_result").split())
        print(f"install: {result} ({time.time() - t0:.0f} s)", flush=True)
        shot("install-result.png")
        if "Installed into" not in result:
            raise SystemExit(1)

        page.locator("#tab_extensions button", has_text=exact("Installed")).first.click()
        page.wait_for_selector(f"#extensions_installed_html :text('{a.name}')", timeout=60_000)
        apply = page.locator("#tab_extensions button:visible", has_text=re.compile(r"Apply and (restart UI|quit)"))
        label = apply.first.inner_text().strip()
        if label != "Apply and restart UI":
            raise SystemExit(f'the button reads "{label}": start the WebUI in a relaunch loop (setup/webui.sh)')
        before, offset = startups(a.log), log_size(a.log)
        apply.first.click()
        # the old page pings the server every 0.5 s to reload itself: once the old process is gone, leave the page,
        # so that no request reaches the relaunching WebUI too early (see wait_back)
        t0 = time.time()
        while a.log and "===== relaunch" not in log_since(a.log, offset) and time.time() - t0 < 60:
            time.sleep(0.2)
        page.goto("about:blank")
        time.sleep(0 if a.log else 5)
        back = wait_back(url, a.log, before, offset, a.timeout)
        print(f"restarted: back after {back:.0f} s", flush=True)

        open_extensions(page, url, "Installed")
        page.wait_for_selector(f"#extensions_installed_html :text('{a.name}')", timeout=120_000)
        shot("installed-after-restart.png")
        browser.close()
    print(f"installed: extensions/{a.name}")


if __name__ == "__main__":
    sys.exit(main())
