"""pytest fixtures that put the WebUI stand-in (``tests/webui_stub/webui_root/modules``) in place for one test.

Use (tests/conftest.py re-exports them: ``from tests.webui_stub.fixture import each_webui, webui``; a test module may
also import them directly the same way)::

    def test_x(webui):                                   # A1111 v1.10.1 in the a1111 env, Forge in the forge env,
                                                         # Forge Neo in the neo env (see default_flavour)
        webui.load_scripts()                             # loads extensions/sd-webui-reimagine/scripts/*.py like A1111
        from modules import script_callbacks, shared    # the stand-in's modules, fresh for this test
        tabs = script_callbacks.ui_tabs_callback()

    @pytest.mark.parametrize("webui", ["a1111", "forge", "neo"], indirect=True)
    def test_y(webui): ...                               # or use the ``each_webui`` fixture

``webui.root`` is a temporary WebUI folder (script_path = data_path) with ``extensions/sd-webui-reimagine`` -> the
repository, ``models/Stable-diffusion``, ``models/karlo``, ``outputs`` and the flavour's requirements file
(``requirements_versions.txt``; Neo: ``requirements.txt``). After the test every stand-in module
(``modules*``, ``launch``, ``backend*``) and the extension's core (``sd_webui_reimagine*``) is removed from
``sys.modules``, ``sys.path`` is restored, and ``torch.load`` / gradio patches are undone.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

STUB_DIR = Path(__file__).resolve().parent
WEBUI_ROOT = STUB_DIR / "webui_root"
"""Folder holding the stand-in ``modules`` package and ``launch.py`` (the WebUI's script_path on sys.path)."""
FORGE_ROOT = STUB_DIR / "forge_root"
"""Folder holding Forge's ``backend`` package (on sys.path only for the forge flavour)."""
NEO_ROOT = STUB_DIR / "neo_root"
"""Folder holding Forge Neo's ``backend`` package (its own memory manager and flags; on sys.path only for neo)."""
REPO_ROOT = STUB_DIR.parents[1]
EXTENSION_DIRNAME = "sd-webui-reimagine"
CORE_MODULE = "sd_webui_reimagine"
FLAVOURS = ("a1111", "forge", "neo")
_OWNED = ("modules", "launch", "backend", CORE_MODULE)


def _major(distribution: str) -> int | None:
    """Major version of an installed distribution, or None."""
    import importlib.metadata

    try:
        return int(importlib.metadata.version(distribution).split(".")[0])
    except Exception:
        return None


def default_flavour() -> str:
    """``$WEBUI_STUB_FLAVOUR``, else the WebUI this environment's packages belong to.

    Each WebUI reinstalls its own ``==`` pins at every start, so its pins identify it: numpy 2 is Neo (its
    requirements.txt pins numpy==2.3.5; A1111 and Forge both pin numpy==1.26.2), on the gradio Neo runs (3.x in the
    neo test environment, 4.40 in Neo's launch_utils.py); otherwise gradio 4 is Forge (4.40.0) and gradio 3 is A1111
    (3.41.2). gradio alone cannot tell A1111 from the neo environment (both 3.x). An environment with a newer gradio
    (the standalone ``newest`` one) keeps the Forge stand-in, as before.
    """
    flavour = os.environ.get("WEBUI_STUB_FLAVOUR")
    if flavour:
        return flavour
    gradio = _major("gradio")
    if gradio is None:
        return "a1111"
    numpy = _major("numpy")
    if numpy is not None and numpy >= 2 and gradio in GRADIO_MAJORS_OF["neo"]:
        return "neo"
    return "forge" if gradio >= 4 else "a1111"


def _owned(name: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in _OWNED)


class StubWebUI:
    """A stand-in WebUI installation for one test: folders on disk plus the ``modules`` package on sys.path."""

    def __init__(self, root: Path, flavour: str | None = None, extension_source: Path = REPO_ROOT) -> None:
        flavour = flavour or default_flavour()
        if flavour not in FLAVOURS:
            raise ValueError(f"flavour must be one of {FLAVOURS}, not {flavour!r}")
        self.root = Path(root)
        self._flavour = flavour
        self.extension_dir = self.root / "extensions" / EXTENSION_DIRNAME
        self.models_dir = self.root / "models"
        self.checkpoints_dir = self.models_dir / "Stable-diffusion"
        self.outputs_dir = self.root / "outputs"
        self._active = False
        self._saved_path: list[str] | None = None
        self._saved_path_object: list[str] | None = None
        self._saved_modules: dict[str, ModuleType] = {}
        self._build(extension_source)

    def _build(self, extension_source: Path) -> None:
        from .pins import REQUIREMENTS, REQUIREMENTS_FILE

        for folder in (self.checkpoints_dir, self.models_dir / "karlo", self.outputs_dir, self.extension_dir.parent):
            folder.mkdir(parents=True, exist_ok=True)
        (self.root / REQUIREMENTS_FILE[self._flavour]).write_text(REQUIREMENTS[self._flavour], encoding="utf-8")
        if not self.extension_dir.exists():
            try:
                self.extension_dir.symlink_to(extension_source, target_is_directory=True)
            except OSError:  # no symlinks (Windows without privileges): copy what a clone would have
                shutil.copytree(
                    extension_source,
                    self.extension_dir,
                    ignore=shutil.ignore_patterns(".git", ".nox", ".gl", "__pycache__", "*.whl"),
                )

    # ------------------------------------------------------------------------------------------------ lifecycle
    @property
    def flavour(self) -> str:
        """``"a1111"``, ``"forge"`` or ``"neo"``; setting it re-imports the stand-in (modules imported before are
        stale)."""
        return self._flavour

    @flavour.setter
    def flavour(self, value: str) -> None:
        if value not in FLAVOURS:
            raise ValueError(f"flavour must be one of {FLAVOURS}, not {value!r}")
        was_active = self._active
        if was_active:
            self.deactivate()
        self._flavour = value
        if was_active:
            self.activate()

    @property
    def is_forge(self) -> bool:
        """Forge 2 or Forge Neo (both have ``backend.memory_management``; see ``modules._stub.is_forge``)."""
        return self._flavour in ("forge", "neo")

    @property
    def is_neo(self) -> bool:
        return self._flavour == "neo"

    def activate(self) -> None:
        """Put the stand-in on ``sys.path`` (like the WebUI's root) and configure it; idempotent."""
        if self._active:
            return
        self._saved_path_object = sys.path
        self._saved_path = list(sys.path)
        self._saved_modules = {name: module for name, module in sys.modules.items() if _owned(name)}
        for name in self._saved_modules:
            del sys.modules[name]
        sys.path.insert(0, str(WEBUI_ROOT))
        if self.is_forge:
            sys.path.insert(0, str(NEO_ROOT if self.is_neo else FORGE_ROOT))
        importlib.invalidate_caches()
        stub = importlib.import_module("modules._stub")
        stub.flavour = self._flavour
        stub.root = self.root
        self._active = True

    def deactivate(self) -> None:
        """Undo everything ``activate`` and the test did to the interpreter's module state."""
        if not self._active:
            return
        safe = sys.modules.get("modules.safe")
        if safe is not None:
            safe.uninstall()
        gradio_patch = sys.modules.get("modules.gradio_extensons")
        if gradio_patch is not None:
            gradio_patch.unpatch()
        for name in [name for name in sys.modules if _owned(name)]:
            del sys.modules[name]
        sys.modules.update(self._saved_modules)
        if self._saved_path_object is not None and self._saved_path is not None:
            sys.path = self._saved_path_object
            sys.path[:] = self._saved_path
        importlib.invalidate_caches()
        self._active = False

    # ------------------------------------------------------------------------------------------------- helpers
    def module(self, name: str) -> ModuleType:
        """``webui.module("shared")`` -> the stand-in's ``modules.shared``."""
        return importlib.import_module(f"modules.{name}")

    def load_scripts(self) -> list[ModuleType]:
        """``modules.scripts.load_scripts()`` (startup / Reload UI); returns the script modules of our extension."""
        scripts = self.module("scripts")
        script_loading = self.module("script_loading")
        scripts.load_scripts()
        ours = str(self.extension_dir / "scripts") + os.sep
        return [module for path, module in script_loading.loaded_scripts.items() if path.startswith(ours)]

    def reload_ui(self) -> list[ModuleType]:
        """Settings -> Reload UI: ``script_unloaded`` callbacks, then every script file runs again."""
        self.module("script_callbacks").script_unloaded_callback()
        self.module("script_loading").loaded_scripts.clear()
        return self.load_scripts()

    def callbacks(self, category: str) -> list:
        """Registered callbacks of a category, e.g. ``webui.callbacks("ui_tabs")`` (``ScriptCallback`` objects)."""
        return list(self.module("script_callbacks").callback_map[f"callbacks_{category}"])

    def script_runner(self, is_img2img: bool = False):
        """A ``ScriptRunner`` for txt2img (or img2img) with every loaded Script instantiated (no UI built)."""
        runner = self.module("scripts").ScriptRunner()
        runner.initialize_scripts(is_img2img)
        return runner

    def patch_torch_load(self) -> bool:
        """A1111 only: ``torch.load`` -> the restricted unpickler of modules/safe.py (undone after the test)."""
        return self.module("safe").install()

    def add_checkpoint(self, name: str, data: bytes = b"\0" * 16) -> Path:
        """Create ``models/Stable-diffusion/<name>`` and rescan the registry (``sd_models.list_models()``)."""
        path = self.checkpoints_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.module("sd_models").list_models()
        return path


GRADIO_MAJORS_OF: dict[str, frozenset[int]] = {
    "a1111": frozenset({3}),
    "forge": frozenset({4}),
    "neo": frozenset({3, 4}),
}
"""The gradio major versions each WebUI runs on: A1111 v1.10.1 3.41.2 (requirements_versions.txt), Forge 4.40.0
(requirements_versions.txt), Neo 4.40.0 (``GRADIO_PACKAGE`` in its launch_utils.py) and 3.43.2 (the neo test
environment; docs/webui-contract.md §12). A flavour is skipped on any other gradio."""


def installed_gradio_major() -> int | None:
    """Major version of the gradio installed here, or None without gradio."""
    import importlib.metadata

    try:
        return int(importlib.metadata.version("gradio").split(".")[0])
    except Exception:
        return None


def skip_impossible_pair(flavour: str) -> None:
    """Skip the test when ``flavour`` never runs on this environment's gradio (Forge on 3.x, A1111 on 4.x, Neo on
    5.x and later)."""
    major = installed_gradio_major()
    if major is not None and major not in GRADIO_MAJORS_OF[flavour]:
        shipped = "/".join(f"{m}.x" for m in sorted(GRADIO_MAJORS_OF[flavour]))
        pytest.skip(f"{flavour} never runs on gradio {major}.x (it runs on gradio {shipped})")


@pytest.fixture
def webui(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StubWebUI]:
    """The WebUI stand-in for one test: the environment's WebUI (a1111 env: A1111, forge env: Forge, neo env: Neo)
    unless parametrized indirectly with ``"a1111"``/``"forge"``/``"neo"`` (skipped where that WebUI never runs on
    this gradio)."""
    flavour = getattr(request, "param", None)
    if flavour is not None:
        skip_impossible_pair(flavour)
    stub = StubWebUI(tmp_path / "webui", flavour)
    stub.activate()
    try:
        yield stub
    finally:
        stub.deactivate()


@pytest.fixture(params=FLAVOURS)
def each_webui(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StubWebUI]:
    """The WebUI stand-in, once as A1111, once as Forge and once as Neo; a pair that never exists with this
    environment's gradio (Forge on 3.x, A1111 on 4.x) is skipped (Neo runs on gradio 3.x and 4.x)."""
    skip_impossible_pair(request.param)
    stub = StubWebUI(tmp_path / "webui", request.param)
    stub.activate()
    try:
        yield stub
    finally:
        stub.deactivate()
