"""``pip install .``: the wheel installs the core as ``sd_webui_reimagine`` (never a top-level ``extension``) with the
``sd-reimagine`` command.

The oracle is pip and the interpreter themselves: the wheel is built by pip from pyproject.toml (offline, with the
test environment's setuptools/wheel), installed by pip into a fresh venv, and probed there in subprocesses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ("vary", "interpolate", "refine", "serve")


def _run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (seeing the test environment's packages) with our wheel installed; returns its bin folder."""
    pytest.importorskip("setuptools")
    pytest.importorskip("wheel")
    work = tmp_path_factory.mktemp("package")
    # Build from a copy, so that setuptools' build/ and *.egg-info never land in the checkout.
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "style.css"):
        shutil.copy2(REPO / name, source / name)
    for folder in ("extension", "javascript"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = work / "wheels"
    built = _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
        "-w", wheels, source,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel_file,) = wheels.glob("sd_webui_reimagine-*.whl")

    env_dir = work / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    bin_dir = env_dir / ("Scripts" if sys.platform == "win32" else "bin")
    # The test environment's pip installs into the new venv (`--python`, pip>=22.3), so the venv needs no pip.
    python = bin_dir / "python"
    site = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    done = _run(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q",
        "--no-warn-script-location", wheel_file,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # `--system-site-packages` sees the base interpreter's packages, not those of the test environment (itself a
    # venv): a .pth file makes its torch/diffusers visible, after the venv's own site folder.
    Path(site, "test-env.pth").write_text(
        "\n".join(sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})) + "\n"
    )
    assert Path(site, "sd_webui_reimagine", "__init__.py").is_file(), sorted(p.name for p in Path(site).iterdir())
    return bin_dir


def test_console_command_lists_every_subcommand(installed: Path) -> None:
    result = _run(installed / "sd-reimagine", "--help")
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert command in result.stdout
    assert "sd-reimagine" in result.stdout  # the program name the user typed, not "python -m extension"


def test_installed_package_imports_under_its_unique_name_and_no_extension_package(
    installed: Path, tmp_path: Path
) -> None:
    probe = (
        "import importlib.util, json, sd_webui_reimagine, sd_webui_reimagine.cli, sd_webui_reimagine.loading.configs as c;"
        "print(json.dumps({'file': sd_webui_reimagine.__file__, 'extension': importlib.util.find_spec('extension') is not None,"
        "'configs': sorted(p.name for p in c.BUNDLED_CONFIGS.iterdir())}))"
    )
    # cwd outside the checkout: the checkout's own `extension/` folder must not be what is found.
    result = _run(installed / "python", "-c", probe, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert "site-packages" in found["file"]
    assert found["extension"] is False
    assert {"unclip-l", "unclip-h"} <= set(found["configs"])  # package data: the bundled model configs


def test_subcommand_help_runs_from_the_installed_copy(installed: Path) -> None:
    result = _run(installed / "sd-reimagine", "vary", "--help")
    assert result.returncode == 0, result.stderr
    assert "--model" in result.stdout


def test_checkout_still_runs_as_python_dash_m_extension() -> None:
    result = _run(sys.executable, "-m", "extension", "--help", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "python -m extension" in result.stdout
    for command in COMMANDS:
        assert command in result.stdout


def test_installed_app_has_the_tabs_css_and_javascript(installed: Path, tmp_path: Path) -> None:
    """``sd-reimagine serve`` from an installed copy styles and scripts its page as the checkout does."""
    probe = (
        "import json, sd_webui_reimagine.app as a;"
        "print(json.dumps({'css': a.page_css(), 'js': a.SCRIPT_FILE.read_text(encoding='utf-8'), 'at': str(a.SCRIPT_FILE)}))"
    )
    result = _run(installed / "python", "-c", probe, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert "site-packages" in found["at"]
    assert (REPO / "style.css").read_text(encoding="utf-8") in found["css"]
    assert found["js"] == (REPO / "javascript" / "reimagine.js").read_text(encoding="utf-8")
