"""The real-WebUI setup scripts (tests/real_webui/setup/) parse, and docs/real-webuis.md names only files that exist.

Cheap and offline: ``bash -n`` for the shell scripts, ``compile`` for the python ones. Building a WebUI is not tested
here (GBs, minutes); docs/real-webuis.md records the runs that did.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "tests" / "real_webui" / "setup"
DOC = ROOT / "docs" / "real-webuis.md"
SHELL = sorted(SETUP.glob("*.sh"))
PYTHON = sorted(SETUP.glob("*.py"))


def test_the_setup_folder_has_its_scripts() -> None:
    names = {p.name for p in SHELL + PYTHON}
    assert {"common.sh", "a1111.sh", "forge.sh", "webui.sh", "cycle.sh", "make_models.py"} <= names


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
@pytest.mark.parametrize("script", SHELL, ids=lambda p: p.name)
def test_shell_script_parses(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", PYTHON, ids=lambda p: p.name)
def test_python_script_compiles(script: Path) -> None:
    compile(script.read_text(encoding="utf-8"), str(script), "exec")


def test_scripts_fix_no_machine_path() -> None:
    """Every location is an environment variable with a default: no absolute path of one machine."""
    for script in SHELL + PYTHON:
        text = script.read_text(encoding="utf-8")
        assert not re.search(r"(?:^|[\s\"'=(:])/(work|root|home|tmp|opt)/", text, re.M), (
            f"{script.name} names a fixed path"
        )


def test_the_doc_names_only_existing_files_and_every_script() -> None:
    text = DOC.read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:tests|docs|extension|scripts)/[\w./-]+?)/?`", text))
    assert named, "docs/real-webuis.md names no repository file"
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"docs/real-webuis.md names files that do not exist: {missing}"
    unnamed = sorted(p.name for p in SHELL + PYTHON if f"tests/real_webui/setup/{p.name}" not in named)
    assert not unnamed, f"docs/real-webuis.md does not describe {unnamed}"


def test_the_walk_cites_only_files_in_the_repository() -> None:
    for path in (ROOT / "tests" / "real_webui").glob("*.py"):
        if path.name == Path(__file__).name:
            continue
        text = path.read_text(encoding="utf-8")
        assert "shared/" not in text, f"{path.name} cites a file outside the repository"
