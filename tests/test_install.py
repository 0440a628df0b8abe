"""install.py, run the way the WebUI runs it: ``"<python>" "<ext>/install.py"`` in a subprocess, cwd = the WebUI root,
``PYTHONPATH`` = the WebUI root (here: a stand-in ``launch`` that records ``run_pip`` calls).

Most runs use ``python -S`` with a fake site folder on ``PYTHONPATH``, so ``importlib.metadata`` sees exactly the
distributions the test declares (the stand-in's ``run_pip`` "installs" by writing a dist-info there).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.webui_stub.pins import INSTALLED_EXTRA, NEO_REQUIREMENTS_PATH, REQUIREMENTS, REQUIREMENTS_FILE, pinned

REPO = Path(__file__).resolve().parents[1]
INSTALL_PY = REPO / "install.py"
STUB_LAUNCH = Path(__file__).resolve().parent / "webui_stub" / "webui_root" / "launch.py"


@dataclass
class Run:
    """One install.py run: exit code, output, the pip calls it made."""

    returncode: int
    stdout: str
    stderr: str
    pip_calls: list[dict]


class FakeWebUI:
    """A WebUI root (stand-in launch.py + the WebUI's pin file: requirements_versions.txt, Neo requirements.txt) and a
    fake site folder of installed packages."""

    def __init__(self, tmp_path: Path, flavour: str) -> None:
        self.flavour = flavour
        self.root = tmp_path / "webui"
        self.site = tmp_path / "site"
        self.pip_log = tmp_path / "pip.jsonl"
        self.root.mkdir()
        self.site.mkdir()
        shutil.copy(STUB_LAUNCH, self.root / "launch.py")
        (self.root / REQUIREMENTS_FILE[flavour]).write_text(REQUIREMENTS[flavour], encoding="utf-8")

    def install(self, name: str, version: str) -> None:
        """Declare a distribution as installed."""
        info = self.site / f"{re.sub(r'[-_.]+', '_', name)}-{version}.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")

    def install_webui_packages(self) -> None:
        """What the WebUI's own prepare step leaves installed: its pins plus unpinned dependencies."""
        for name, version in {**pinned(self.flavour), **INSTALLED_EXTRA[self.flavour]}.items():
            self.install(name, version)

    def run(self, *, isolated: bool = True, extra_env: dict[str, str] | None = None) -> Run:
        """Run install.py once; return what happened."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("WEBUI_STUB_") and k != "PYTHONPATH"}
        paths = [str(self.root), str(self.site)] if isolated else [str(self.root)]
        env.update(PYTHONPATH=os.pathsep.join(paths), WEBUI_STUB_PIP_LOG=str(self.pip_log), **(extra_env or {}))
        if isolated:
            env["WEBUI_STUB_SITE"] = str(self.site)
        before = self.pip_calls()
        command = [sys.executable, *(["-S"] if isolated else []), str(INSTALL_PY)]
        done = subprocess.run(command, cwd=self.root, env=env, capture_output=True, text=True, timeout=120)
        return Run(done.returncode, done.stdout, done.stderr, self.pip_calls()[len(before) :])

    def pip_calls(self) -> list[dict]:
        """Every run_pip call recorded so far."""
        if not self.pip_log.exists():
            return []
        return [json.loads(line) for line in self.pip_log.read_text(encoding="utf-8").splitlines() if line]


def named_requirements(command: str) -> list[str]:
    """Normalised distribution names a pip command line asks for (constraint files and options skipped)."""
    tokens = re.findall(r'"[^"]*"|\S+', command)
    names, skip = [], False
    for token in tokens[1:]:
        if skip:
            skip = False
        elif token in ("-c", "--constraint", "-r", "--requirement", "--index-url", "--extra-index-url"):
            skip = True
        elif not token.startswith("-"):
            match = re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*", token.strip('"'))
            if match:
                names.append(re.sub(r"[-_.]+", "-", match.group(0)).lower())
    return names


def normalized_pins(flavour: str) -> set[str]:
    return {re.sub(r"[-_.]+", "-", name).lower() for name in pinned(flavour)}


@pytest.fixture(params=["a1111", "forge", "neo"])
def webui(request: pytest.FixtureRequest, tmp_path: Path) -> FakeWebUI:
    return FakeWebUI(tmp_path, request.param)


def test_first_run_installs_diffusers_then_second_run_makes_no_pip_call(tmp_path: Path) -> None:
    fake = FakeWebUI(tmp_path, "a1111")
    fake.install_webui_packages()  # A1111 ships no diffusers

    first = fake.run()
    assert first.returncode == 0, first.stdout + first.stderr
    assert [named_requirements(call["command"]) for call in first.pip_calls] == [["diffusers"]]
    assert first.pip_calls[0]["command"].startswith("install diffusers==0.31.0")
    assert "Installing sd-webui-reimagine requirement: diffusers==0.31.0" in first.stdout

    second = fake.run()
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.pip_calls == []
    assert second.stdout == ""  # nothing to report on a satisfied launch


def test_pip_calls_are_constrained_to_the_webui_pins(tmp_path: Path) -> None:
    fake = FakeWebUI(tmp_path, "a1111")
    fake.install_webui_packages()
    (call,) = fake.run().pip_calls
    constraints = call["constraints"].splitlines()
    assert "transformers==4.30.2" in constraints
    assert "accelerate==0.21.0" in constraints
    assert set(constraints) == {f"{name}=={version}" for name, version in pinned("a1111").items()}


def test_forge_with_its_pins_installed_needs_nothing(tmp_path: Path) -> None:
    fake = FakeWebUI(tmp_path, "forge")
    fake.install_webui_packages()  # Forge pins diffusers==0.31.0 itself
    run = fake.run()
    assert run.returncode == 0
    assert run.pip_calls == []
    assert run.stdout == ""


@pytest.mark.parametrize("installed", ["nothing", "webui packages"])
def test_a_pinned_package_is_never_named_in_a_pip_command(webui: FakeWebUI, installed: str) -> None:
    if installed == "webui packages":
        webui.install_webui_packages()
    # even in an empty environment (pins missing: --skip-install earlier, a broken venv) pinned names are left alone
    runs = [webui.run(), webui.run()]
    pins = normalized_pins(webui.flavour)
    calls = [call for run in runs for call in run.pip_calls]
    for call in calls:
        assert not set(named_requirements(call["command"])) & pins, call
        for name in pins:
            assert not re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", call["command"], re.IGNORECASE), call
    if webui.flavour in ("forge", "neo"):
        assert all("diffusers" not in call["command"] for call in calls)  # Forge pins 0.31.0, Neo 0.37.1
    else:
        assert any(call["command"].startswith("install diffusers==0.31.0") for call in calls)
    assert all(run.returncode == 0 for run in runs)


def test_missing_pinned_package_is_reported_not_installed(tmp_path: Path) -> None:
    fake = FakeWebUI(tmp_path, "a1111")  # nothing installed: torchsde is pinned by A1111
    run = fake.run()
    assert "torchsde is missing but pinned by the WebUI (torchsde==0.2.6); not touching it." in run.stdout
    assert all("torchsde" not in call["command"] for call in run.pip_calls)


def test_unpinned_missing_package_is_installed(tmp_path: Path) -> None:
    fake = FakeWebUI(tmp_path, "forge")
    fake.install_webui_packages()
    shutil.rmtree(next(fake.site.glob("torchsde-*.dist-info")))
    run = fake.run()
    assert [named_requirements(call["command"]) for call in run.pip_calls] == [["torchsde"]]
    assert fake.run().pip_calls == []


@pytest.mark.parametrize("version", ["0.31.0", "0.35.1", "0.32.0.dev0"])
def test_any_present_diffusers_is_left_alone(tmp_path: Path, version: str) -> None:
    fake = FakeWebUI(tmp_path, "a1111")
    fake.install_webui_packages()
    fake.install("diffusers", version)
    run = fake.run()
    assert run.pip_calls == []
    assert "WARNING" not in run.stdout


def test_too_old_diffusers_is_warned_about_not_changed(tmp_path: Path) -> None:
    fake = FakeWebUI(tmp_path, "a1111")
    fake.install_webui_packages()
    fake.install("diffusers", "0.21.4")
    run = fake.run()
    assert run.returncode == 0
    assert run.pip_calls == []
    assert "WARNING: diffusers 0.21.4 is installed, but this extension needs diffusers >= 0.31" in run.stdout
    assert "pip install diffusers==0.31.0" in run.stdout  # tells the user what to do


def test_diffusers_0_27_is_warned_about(tmp_path: Path) -> None:
    """0.27 lacks the model-level ``UNet2DConditionModel.from_single_file`` that extension/loading/ calls."""
    fake = FakeWebUI(tmp_path, "a1111")
    fake.install_webui_packages()
    fake.install("diffusers", "0.27.0")
    run = fake.run()
    assert run.pip_calls == []
    assert "WARNING: diffusers 0.27.0 is installed, but this extension needs diffusers >= 0.31" in run.stdout


def _install_py_constant(name: str) -> object:
    """A constant of install.py, read from its source (importing it needs the WebUI's ``launch``)."""
    import ast

    for node in ast.parse(INSTALL_PY.read_text(encoding="utf-8")).body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"install.py defines no {name}")


def test_install_minimum_and_pin_match_pyproject_lower_bound() -> None:
    """One truth for the oldest diffusers: pyproject.toml's ``diffusers>=X`` = install.py's ``MIN_DIFFUSERS``, and
    the version install.py adds is not below it."""
    try:
        import tomllib
    except ImportError:  # Python 3.10 (Forge)
        tomllib = pytest.importorskip("tomli")
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    bounds = [re.fullmatch(r"diffusers\s*>=\s*([\d.]+)", d.split(";")[0].strip()) for d in project["dependencies"]]
    lower = [tuple(int(x) for x in m.group(1).split(".")) for m in bounds if m]
    assert len(lower) == 1, "pyproject.toml must give diffusers one lower bound (diffusers>=X)"
    assert tuple(_install_py_constant("MIN_DIFFUSERS")) == lower[0]
    pins = [spec for dist, spec, _ in _install_py_constant("REQUIREMENTS") if dist == "diffusers"]
    assert len(pins) == 1 and pins[0].startswith("diffusers==")
    assert tuple(int(x) for x in pins[0].split("==")[1].split(".")) >= lower[0]


def test_pip_failure_is_reported_not_fatal(tmp_path: Path) -> None:
    fake = FakeWebUI(tmp_path, "a1111")
    fake.install_webui_packages()
    run = fake.run(extra_env={"WEBUI_STUB_PIP_FAIL": "1"})
    assert run.returncode == 0
    assert len(run.pip_calls) == 1
    assert "[sd-webui-reimagine] could not install diffusers==0.31.0" in run.stdout  # stdout: the WebUI shows it
    assert "simulated pip failure" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr
    # nothing was installed, so the next launch tries again
    assert len(fake.run(extra_env={"WEBUI_STUB_PIP_FAIL": "1"}).pip_calls) == 1


def test_skip_install_makes_no_pip_call(tmp_path: Path) -> None:
    fake = FakeWebUI(tmp_path, "a1111")
    fake.install_webui_packages()
    run = fake.run(extra_env={"WEBUI_STUB_SKIP_INSTALL": "1"})
    assert run.returncode == 0
    assert run.pip_calls == []


def test_satisfied_run_in_the_real_environment_makes_no_pip_call_and_imports_nothing_heavy(tmp_path: Path) -> None:
    """In this venv (diffusers 0.31.0 installed): no pip call, and torch/diffusers are never imported (what keeps
    it fast; the time itself is measured, not asserted: see the README)."""
    pytest.importorskip("diffusers")
    fake = FakeWebUI(tmp_path, "a1111")
    run = fake.run(isolated=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.pip_calls == [], run.pip_calls  # torchsde is pinned by A1111, so it is never installed by us

    done = subprocess.run(
        [sys.executable, "-X", "importtime", str(INSTALL_PY)],
        cwd=fake.root,
        env={**os.environ, "PYTHONPATH": str(fake.root), "WEBUI_STUB_PIP_LOG": str(fake.pip_log)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "launch" in imported
    heavy = {name for name in imported if name.split(".")[0] in {"torch", "diffusers", "transformers", "gradio"}}
    assert not heavy, sorted(heavy)


# --- Forge Neo: requirements.txt, re-checked after the extension installers ----------------------------------------


def test_neo_pins_are_a_verbatim_copy_of_its_requirements_txt() -> None:
    """tests/fixtures/neo-requirements.txt is Neo's file (branch neo, commit 1e8cfbc1): its pins as read there."""
    text = NEO_REQUIREMENTS_PATH.read_text(encoding="utf-8")
    assert text.splitlines()[-1] == "torch" and 'audioop-lts==0.2.2;python_version>="3.13"' in text.splitlines()
    pins = pinned("neo")
    assert (pins["diffusers"], pins["transformers"], pins["numpy"], pins["pydantic"]) == (
        "0.37.1",
        "4.57.6",
        "2.3.5",
        "2.10.6",
    )
    assert pins["torchsde"] == "0.2.6" and "gradio" not in pins


def test_neo_with_its_venv_makes_no_pip_call(tmp_path: Path) -> None:
    """Neo's requirements.txt in the WebUI root and Neo's venv: install.py calls run_pip zero times, prints nothing."""
    fake = FakeWebUI(tmp_path, "neo")
    fake.install_webui_packages()
    assert not (fake.root / "requirements_versions.txt").exists()
    for _ in range(2):
        run = fake.run()
        assert run.returncode == 0, run.stdout + run.stderr
        assert run.pip_calls == []
        assert run.stdout == ""


@pytest.mark.parametrize("where", ["root", "REQS_FILE"])
def test_neo_missing_pinned_package_is_left_to_neo(tmp_path: Path, where: str) -> None:
    """diffusers missing from Neo's venv (e.g. after --skip-install): Neo pins diffusers==0.37.1 in requirements.txt
    and installs it itself after the extension installers; installing our 0.31.0 would make requirements_met() fail
    and flip-flop on every start. So: no pip call, and the user is told why."""
    fake = FakeWebUI(tmp_path, "neo")
    fake.install_webui_packages()
    shutil.rmtree(next(fake.site.glob("diffusers-*.dist-info")))
    env = None
    if where == "REQS_FILE":  # the file elsewhere, named by $REQS_FILE (relative to the WebUI's cwd)
        (fake.root / "requirements.txt").rename(fake.root / "my-reqs.txt")
        env = {"REQS_FILE": "my-reqs.txt"}
    run = fake.run(extra_env=env)
    assert run.returncode == 0
    assert run.pip_calls == []
    assert "diffusers is missing but pinned by the WebUI (diffusers==0.37.1); not touching it." in run.stdout


def test_neo_pip_calls_are_constrained_to_its_pins(tmp_path: Path) -> None:
    """A requirement Neo does not pin (none today; simulated by dropping torchsde from its file) is installed under
    every Neo pin as a constraint, environment markers kept."""
    fake = FakeWebUI(tmp_path, "neo")
    text = REQUIREMENTS["neo"].replace("torchsde==0.2.6\n", "")
    (fake.root / "requirements.txt").write_text(text, encoding="utf-8")
    fake.install_webui_packages()
    shutil.rmtree(next(fake.site.glob("torchsde-*.dist-info")))
    (call,) = fake.run().pip_calls
    assert named_requirements(call["command"]) == ["torchsde"]
    constraints = set(call["constraints"].splitlines())
    assert {"diffusers==0.37.1", "numpy==2.3.5", "transformers==4.57.6"} <= constraints
    assert 'audioop-lts==0.2.2; python_version>="3.13"' in constraints


def test_our_requirements_never_reach_pip_at_another_version_than_neos() -> None:
    """Whatever is missing, what install.py hands to pip never names a package Neo pins (any version): REQUIREMENTS
    that Neo pins (diffusers, torchsde) are left to Neo."""
    sys.path.insert(0, str(STUB_LAUNCH.parent))
    try:
        import importlib.util

        spec = importlib.util.spec_from_file_location("reimagine_install", INSTALL_PY)
        install = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(install)
    finally:
        sys.path.remove(str(STUB_LAUNCH.parent))
        sys.modules.pop("launch", None)
    pins = install.webui_pins([NEO_REQUIREMENTS_PATH])
    every = [dist for dist, _spec, _why in install.REQUIREMENTS]
    neo = {install.normalize(name): version for name, version in pinned("neo").items()}
    for _dist, spec, _why in install.to_install(pins, every):
        assert not set(named_requirements(f"install {spec}")) & set(neo), spec
