"""Stand-in for the WebUI's ``launch`` module (``launch.py`` re-exporting ``modules/launch_utils.py``, docs/webui-contract.md §1).

``is_installed`` is the WebUI's code (``importlib.metadata.distribution`` then ``find_spec``). ``run_pip`` builds the
same command line but does not run pip: it records the call and simulates the result, controlled by environment
variables so that a test can run ``install.py`` in a subprocess exactly as the WebUI does:

``WEBUI_STUB_PIP_LOG``      JSON-lines file; each ``run_pip`` appends ``{"command", "desc", "cmdline"}``.
``WEBUI_STUB_SITE``         a folder on ``PYTHONPATH``: ``install name==version`` (or ``install name``) writes a
                            ``<name>-<version>.dist-info`` there, so the next run sees the package as installed.
``WEBUI_STUB_PIP_FAIL``     when set, ``run_pip`` fails like the WebUI's (``RuntimeError`` with the pip output).
``WEBUI_STUB_SKIP_INSTALL`` when set, behaves as ``--skip-install`` (``run_pip`` is a no-op).
``INDEX_URL``               as in the WebUI: appended as ``--index-url``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import re
import sys

python = sys.executable
git = os.environ.get("GIT", "git")
index_url = os.environ.get("INDEX_URL", "")
dir_repos = "repositories"
default_command_live = os.environ.get("WEBUI_LAUNCH_LIVE_OUTPUT") == "1"
args = argparse.Namespace(skip_install=bool(os.environ.get("WEBUI_STUB_SKIP_INSTALL")), skip_prepare_environment=False)


def is_installed(package: str) -> bool:
    """The WebUI's check (launch_utils.py:121-132): a distribution of that name, else an importable module."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        try:
            spec = importlib.util.find_spec(package)
        except ModuleNotFoundError:
            return False
        return spec is not None
    return dist is not None


def repo_dir(name: str) -> str:
    """``<script_path>/repositories/<name>``."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), dir_repos, name)


def commit_hash() -> str:
    """The stand-in has no git checkout."""
    return "<none>"


def git_tag() -> str:
    """The release the stand-in imitates."""
    return "v1.10.1"


def run(command: str, desc: str | None = None, errdesc: str | None = None, custom_env=None, live: bool = False) -> str:
    """Not available in the stand-in (it never runs commands)."""
    raise RuntimeError(f"webui stand-in: launch.run is not simulated ({command!r})")


def check_run_python(code: str) -> bool:
    """Not simulated: report success."""
    return True


def _record(entry: dict) -> None:
    log = os.environ.get("WEBUI_STUB_PIP_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as file:
            file.write(json.dumps(entry) + "\n")


def _constraints(command: str) -> str | None:
    """Text of the ``-c FILE`` constraints file a command names (it may be deleted after the call)."""
    match = re.search(r'(?:-c|--constraint)\s+("[^"]*"|\S+)', command)
    if not match:
        return None
    try:
        with open(match.group(1).strip('"'), encoding="utf-8") as file:
            return file.read()
    except OSError:
        return None


def _fake_install(command: str) -> None:
    """Write a dist-info for each ``name[==version]`` that ``pip install`` names."""
    site = os.environ.get("WEBUI_STUB_SITE")
    if not site:
        return
    tokens = re.findall(r'"[^"]*"|\S+', command)[1:]
    skip_next = False
    for token in tokens:
        if skip_next:
            skip_next = False
            continue
        if token in ("-c", "-r", "--constraint", "--requirement", "--index-url", "--extra-index-url"):
            skip_next = True
            continue
        if token.startswith("-"):
            continue
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?(?:==([\w.+!-]+))?", token.strip('"'))
        if not match:
            continue
        name, version = match.group(1), match.group(2) or "99.0.0"
        info = os.path.join(site, f"{re.sub(r'[-_.]+', '_', name)}-{version}.dist-info")
        os.makedirs(info, exist_ok=True)
        with open(os.path.join(info, "METADATA"), "w", encoding="utf-8") as file:
            file.write(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def run_pip(command: str, desc: str | None = None, live: bool = default_command_live) -> str | None:
    """Like the WebUI's (launch_utils.py:139-144), recorded and simulated instead of executed."""
    if args.skip_install:
        return None
    index_url_line = f" --index-url {index_url}" if index_url != "" else ""
    cmdline = f'"{python}" -m pip {command} --prefer-binary{index_url_line}'
    _record({"command": command, "desc": desc, "cmdline": cmdline, "constraints": _constraints(command)})
    print(f"Installing {desc}")
    if os.environ.get("WEBUI_STUB_PIP_FAIL"):
        raise RuntimeError(
            f"Couldn't install {desc}.\nCommand: {cmdline}\nError code: 1\n"
            f"stdout: <empty>\nstderr: ERROR: simulated pip failure (webui stand-in)\n"
        )
    if command.split()[:1] == ["install"]:
        _fake_install(command)
    return ""
