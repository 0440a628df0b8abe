"""The extension inside a WebUI process: the core loads under its own name and never collides with other extensions.

A1111 runs ``scripts/reimagine.py`` with ``spec_from_file_location("reimagine.py", path)``, the extension root on
``sys.path`` only while the file runs, and the module kept out of ``sys.modules`` (docs/webui-contract.md §2); Forge leaves
every extension root on ``sys.path``. Another extension may already have imported a top-level ``extension`` or
``utils``.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from tests.webui_stub import fixture as webui_fixture
from tests.webui_stub.fixture import REPO_ROOT, WEBUI_ROOT, StubWebUI

webui = webui_fixture.webui  # fixtures (tests/conftest.py may re-export them too)
each_webui = webui_fixture.each_webui

CORE = "sd_webui_reimagine"


@pytest.fixture
def foreign_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    """Another extension's top-level ``extension`` package and ``utils`` module, already imported."""
    other = tmp_path / "other-extension"
    (other / "extension").mkdir(parents=True)
    (other / "extension" / "__init__.py").write_text("OWNER = 'other-extension'\n", encoding="utf-8")
    (other / "extension" / "errors.py").write_text("OWNER = 'other-extension'\n", encoding="utf-8")
    (other / "utils.py").write_text("OWNER = 'other-extension'\n", encoding="utf-8")
    modules = {}
    for name, path, search in (
        ("extension", other / "extension" / "__init__.py", [str(other / "extension")]),
        ("extension.errors", other / "extension" / "errors.py", None),
        ("utils", other / "utils.py", None),
    ):
        spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=search)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        monkeypatch.setitem(sys.modules, name, module)
        modules[name] = module
    return modules


def load_like_a1111(script: Path) -> ModuleType:
    """What A1111's load_scripts does for one extension file, written out (scripts.py:487-530)."""
    from modules import scripts

    syspath = sys.path
    try:
        sys.path = [str(script.parent.parent), *sys.path]
        scripts.current_basedir = str(script.parent.parent)
        spec = importlib.util.spec_from_file_location(os.path.basename(script), script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path = syspath
        scripts.current_basedir = scripts.paths.script_path


def test_core_loads_under_its_own_name_next_to_a_foreign_extension_package(
    webui: StubWebUI, foreign_packages: dict[str, ModuleType]
) -> None:
    path_before = list(sys.path)
    script = load_like_a1111(webui.extension_dir / "scripts" / "reimagine.py")

    core = sys.modules[CORE]
    assert core.__name__ == CORE
    assert Path(core.__file__).resolve() == REPO_ROOT / "extension" / "__init__.py"
    assert core.__path__ == [str(webui.extension_dir / "extension")]
    assert script.core is core
    # the foreign packages are untouched and still what `import extension` / `import utils` give
    for name, module in foreign_packages.items():
        assert sys.modules[name] is module
    import utils

    import extension

    assert extension.OWNER == utils.OWNER == "other-extension"
    # our submodules resolve inside our core, theirs inside theirs
    ours = importlib.import_module(f"{CORE}.errors")
    assert ours.__file__.endswith(os.path.join("extension", "errors.py"))
    assert hasattr(ours, "ReimagineError")
    assert sys.modules["extension.errors"] is foreign_packages["extension.errors"]
    assert sys.modules[f"{CORE}.webui"] is script.webui
    # the script module itself is not in sys.modules, and sys.path is as before
    assert "reimagine.py" not in sys.modules
    assert sys.path == path_before


def test_all_core_modules_use_relative_imports(webui: StubWebUI, foreign_packages: dict[str, ModuleType]) -> None:
    """No core module imports ``extension`` by its bare name (not even lazily), and each one imports under the unique
    name with a foreign ``extension`` present, binding nothing from the foreign package."""
    core_dir = REPO_ROOT / "extension"
    absolute = []
    for path in sorted(core_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            absolute += [
                f"{path.relative_to(REPO_ROOT)}:{node.lineno}" for n in names if n.split(".")[0] == "extension"
            ]
    assert absolute == [], "absolute imports of `extension` (use relative imports): " + ", ".join(absolute)

    load_like_a1111(webui.extension_dir / "scripts" / "reimagine.py")
    for path in sorted(core_dir.rglob("*.py")):
        relative = path.relative_to(core_dir).with_suffix("")
        if relative.name == "__main__" or "configs" in relative.parts:
            continue
        name = ".".join([CORE, *(p for p in relative.parts if p != "__init__")])
        try:
            module = importlib.import_module(name)
        except ImportError as error:  # only a missing third-party dependency is acceptable here
            assert (error.name or "").split(".")[0] not in ("", "extension", CORE), f"{name}: {error!r}"
            continue
        assert module.__name__ == name
        for attr, value in vars(module).items():
            origin = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
            assert not (isinstance(origin, str) and origin.split(".")[0] == "extension"), f"{name}.{attr} from {origin}"
    assert sys.modules["extension"] is foreign_packages["extension"]


def test_webui_loader_registers_callbacks_and_reload_ui_reregisters_without_reimport(
    each_webui: StubWebUI, foreign_packages: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    from modules import errors, script_callbacks

    path_before = list(sys.path)
    (script,) = each_webui.load_scripts()
    assert errors.reported == []  # the fresh extension folder loads without errors
    core = sys.modules[CORE]
    core.loaded_marker = object()  # a re-import would create a fresh module without it
    first = {
        category: len(each_webui.callbacks(category)) for category in ("script_unloaded", "ui_tabs", "ui_settings")
    }
    assert first["script_unloaded"] == 1
    (callback,) = each_webui.callbacks("script_unloaded")
    assert callback.name == "sd-webui-reimagine/reimagine.py/script_unloaded/reimagine"

    host = core.webui.host.shared_host()
    cleared = []
    real_clear = type(host.cache).clear
    monkeypatch.setattr(type(host.cache), "clear", lambda cache: cleared.append(cache) or real_clear(cache))
    (script_again,) = each_webui.reload_ui()

    assert cleared == [host.cache]  # on_script_unloaded released the pipelines before the reload
    assert script_again is not script  # the file ran again ...
    assert sys.modules[CORE] is core and hasattr(core, "loaded_marker")  # ... but the core was not re-imported
    assert script_again.webui is script.webui
    again = {category: len(each_webui.callbacks(category)) for category in first}
    assert again == first  # registered again, not twice
    assert sys.modules["extension"] is foreign_packages["extension"]
    if each_webui.flavour == "a1111":
        assert sys.path == path_before  # A1111: the root was on sys.path only during the load
    else:
        assert str(each_webui.extension_dir) in sys.path  # Forge: script basedirs stay on sys.path
    # an error while releasing is reported, not propagated
    monkeypatch.setattr(type(host.cache), "clear", lambda cache: 1 / 0)
    script_callbacks.script_unloaded_callback()


def test_loading_the_script_imports_nothing_heavy(tmp_path: Path) -> None:
    """In a fresh interpreter: loading scripts/reimagine.py through the WebUI loader imports no torch/diffusers/gradio."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from tests.webui_stub.fixture import StubWebUI
        stub = StubWebUI({str(tmp_path / "webui")!r})
        stub.activate()
        from modules import script_loading

        def heavy():
            return sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "diffusers", "transformers", "gradio"))

        after = {{}}
        load_module = script_loading.load_module

        def recording_load(path):  # what was imported once each script file had loaded (the WebUI's built-in
            module = load_module(path)  # scripts, loaded after ours, import gradio themselves: Neo's Refiner)
            after[path] = heavy()
            return module

        script_loading.load_module = recording_load
        (script,) = stub.load_scripts()
        assert "{CORE}" in sys.modules, "core not loaded"
        print("HEAVY:", after[next(path for path in after if path.endswith("reimagine.py"))])
        print("REPORTED:", __import__("modules.errors").errors.reported)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "HEAVY: []" in done.stdout, done.stdout
    assert "REPORTED: []" in done.stdout, done.stdout


def test_stub_is_removed_after_a_test() -> None:
    """The fixture leaves nothing behind (runs after the tests above in file order)."""
    assert "modules" not in sys.modules
    assert CORE not in sys.modules
    assert str(WEBUI_ROOT) not in sys.path


# ---------------------------------------------------------------------------------------------------------------------
# The import graph, read from the source (AST), relative imports resolved: the layering README "How it is built" states.
# Every module of extension/ is a node (top-level modules such as params.py too); function-level imports count.

PACKAGES = ("device", "engine", "loading", "runtime", "cli", "ui", "webui")
LINE_LIMIT = 600  # lines per .py file in extension/, scripts/, tests/

# What each layer must not import (README "How it is built"): the engines and the device policy know nothing of the
# runtime, the UI, the WebUI or the CLI; the device policy knows nothing of the engines or the loaders either.
FORBIDDEN = {
    "device": ("engine", "loading", "runtime", "ui", "webui", "cli", "api", "rest", "app"),
    "engine": ("runtime", "ui", "webui", "cli", "api", "rest", "app"),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, names)`` for every import in the file (function-level ones too), relative ones made absolute."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.append((module, [alias.name for alias in node.names]))
    return found


def _core_files() -> list[Path]:
    return sorted(path for path in (REPO_ROOT / "extension").rglob("*.py") if "configs" not in path.parts)


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "extension" and len(parts) > 1 and parts[1] in PACKAGES else None


def _unit_of(module: str) -> str:
    """The package (``extension.engine``) or top-level module (``extension.params``) a module belongs to."""
    return ".".join(module.split(".")[:2])


def import_graph(files: list[Path]) -> dict[str, set[str]]:
    """Module → the modules of ``files`` it imports (``from .engine import unclip`` → ``extension.engine.unclip``;
    ``from .engine import Result`` → ``extension.engine``). A package's ``__init__`` runs before its submodules, but
    that implicit edge is left out: an ``__init__`` that lazily imports its own submodules is no loop."""
    known = {_module_name(path) for path in files}
    graph: dict[str, set[str]] = {}
    for path in files:
        source = _module_name(path)
        targets = graph.setdefault(source, set())
        for module, names in _imports(path):
            submodules = {f"{module}.{name}" for name in names} & known
            if submodules:
                targets |= submodules
            if module in known and (not names or len(submodules) < len(names)):
                targets.add(module)
        targets.discard(source)
    return graph


def unit_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same graph between packages and top-level modules."""
    units: dict[str, set[str]] = {}
    for source, targets in graph.items():
        units.setdefault(_unit_of(source), set()).update(
            _unit_of(t) for t in targets if _unit_of(t) != _unit_of(source)
        )
    return units


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``a -> b -> a``) per strongly connected component of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(_cycle_in(graph, set(component)))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path from the component's first node back to itself (breadth-first, inside the component)."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph.get(node, set()) & component):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"no cycle through {start}")


def test_no_import_cycle_between_any_modules_nor_between_the_packages_and_top_level_modules() -> None:
    graph = import_graph(_core_files())
    assert len(graph) > 60 and "extension.params" in graph and "extension.engine.unclip" in graph  # all read
    found = [" -> ".join(cycle) for cycle in cycles(graph) + cycles(unit_graph(graph))]
    assert not found, "import cycles: " + "; ".join(found)


def test_the_engines_and_the_device_policy_import_no_layer_above_them() -> None:
    graph = import_graph(_core_files())
    offenders = [
        f"{source} imports {target}"
        for source, targets in sorted(graph.items())
        for target in sorted(targets)
        if _unit_of(target).split(".")[-1] in FORBIDDEN.get(_package_of(source) or "", ())
    ]
    assert not offenders, offenders


def test_only_the_webui_adapter_imports_modules_and_the_core_layers_no_gradio() -> None:
    for path in _core_files():
        name = _module_name(path)
        top = {module.split(".")[0] for module, _ in _imports(path)}
        if _package_of(name) != "webui":
            assert "modules" not in top, f"{name} imports the WebUI's modules"
        if _package_of(name) in ("device", "engine", "loading", "runtime", "cli"):
            assert "gradio" not in top, f"{name} imports gradio"


def test_no_module_imports_a_private_name_of_another() -> None:
    offenders = [
        f"{_module_name(path)}: from {module} import {name}"
        for path in _core_files()
        for module, names in _imports(path)
        if module.startswith("extension")
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert not offenders, offenders


def test_no_python_file_is_over_the_line_limit() -> None:
    files = sorted(path for folder in ("extension", "scripts", "tests") for path in (REPO_ROOT / folder).rglob("*.py"))
    assert len(files) > 100
    long = {
        str(path.relative_to(REPO_ROOT)): count
        for path in files
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > LINE_LIMIT
    }
    assert not long, f"over {LINE_LIMIT} lines: {long}"


def test_the_graph_reader_resolves_relative_imports_and_finds_cycles(tmp_path: Path) -> None:
    """The reader itself, on known imports: ``from ..engine import x`` in ``extension/cli/vary.py``; and the cycle
    finder on a hand-made graph."""
    found = dict(_imports(REPO_ROOT / "extension" / "cli" / "vary.py"))
    assert "extension.cli.common" in found and "extension.errors" in found, found
    graph = import_graph(_core_files())
    assert {"extension.engine.samplers", "extension.params"} <= graph["extension.engine.refiner"], graph
    hand_made = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cycles(hand_made) == [["a", "b", "c", "a"]]
    assert unit_graph(
        {"extension.params": {"extension.engine.samplers"}, "extension.engine.unclip": {"extension.params"}}
    ) == {
        "extension.params": {"extension.engine"},
        "extension.engine": {"extension.params"},
    }
