"""README.md is a contract: every command block in it runs here, as a user runs it, in subprocesses.

The fenced ``bash`` blocks are taken from README.md by mktestdocs' ``grab_code_blocks`` (a kept library; it only
extracts, which is all we need: the blocks are shell, and mktestdocs/sybil/pytest-markdown-docs run Python blocks).
Each block is matched to one entry of :data:`RUNNERS` by the start of its first command; a block with no entry, or an
entry whose block is gone, fails :func:`test_every_block_has_a_runner`. So a new or edited README command must run.

Where they run: a copy of the repository (the folder a user installs from) holding the files the commands name
(``photo.jpg``, ``inputs/``, ``cat.png`` …, and the tiny random-weight models under the README's file names, with
``REIMAGINE_CONFIG_ROOT`` pointing at their tiny configs). What is changed before a command runs, and why:

* ``python``/``python3``/``pip`` are this test environment's (a ``bin/`` of wrappers first on ``PATH``);
* ``pip install`` gets ``--no-index --no-build-isolation`` and ``python3 -m venv .venv`` makes the new venv see this
  environment's packages (a ``.pth`` file): tests never download, and every dependency is already installed here.
  Where this environment is itself inconsistent by design (``pip check`` fails: Forge Neo installs gradio 3.43.2 and
  then numpy 2 / Pillow 12 over its bounds), pip cannot resolve against it, so ``--no-deps`` is added there;
* ``127.0.0.1:7860`` (a WebUI started with ``--api``) is the WebUI stand-in served by :mod:`tests.readme_webui`;
* ``serve`` runs in the background on a free ``--port``, is probed over HTTP, then stopped with SIGINT;
* Ray examples (only where Ray is installed): ``ray start --head`` with logical CPUs/GPUs stands for the multi-GPU
  machine and the cluster, and ``s3://bucket/`` is a local ``file://`` folder.
* benchmarks (``bench/*.py``) run at a toy size (fewer images and actors, a short simulated wait): that they run
  and report is checked here, their figures are measured by hand;
* ``python3 -m nox`` commands are not run inside the suite they start; the test command is checked to be exactly what
  ``.ci/run`` runs, and the sessions they name to exist; the ``.nox/<session>/bin/python`` one runs here.

Every subprocess runs offline (``HF_HUB_OFFLINE=1``) with tests/netguard_site on ``PYTHONPATH``: any non-loopback
connection fails and is logged, and the test fails on the log.
"""

from __future__ import annotations

import ast
import base64
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from extension.cli.ray_engine import SINGLE_NODE_ENV

mktestdocs = pytest.importorskip("mktestdocs")

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".nox", ".gl", ".whl", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", "*.egg-info",
    "build", "outputs", "artifacts", ".venv",
)  # fmt: skip
TIMEOUT = 600
# Ray's own calls home, blocked like any other attempt but not a download of ours: the cloud's instance-metadata
# address at every node start, to find TPUs (ray/_private/accelerators/tpu.py, GCE_TPU_ACCELERATOR_ENDPOINT), and a
# name lookup of its usage-stats server by a `ray start` head although RAY_USAGE_STATS_ENABLED=0 is set
RAY_OWN_PROBES = re.compile(r"'169\.254\.169\.254'|'metadata\.google\.internal'|'usage-stats\.ray\.io'")


def bash_blocks() -> list[str]:
    return [block.strip() for block in mktestdocs.grab_code_blocks(README.read_text(encoding="utf-8"), lang="bash")]


def first_command(block: str) -> str:
    return next(line.strip() for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def png_count(folder: Path) -> int:
    return len(list(folder.glob("*.png"))) if folder.is_dir() else 0


def infotext(path: Path) -> str:
    with Image.open(path) as image:
        return str(image.info.get("parameters", ""))


# --------------------------------------------------------------------------------------------------------------------
# The user's folder
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class UserDir:
    """A copy of the repository with the README's inputs and models, and how to run shell there."""

    root: Path
    env: dict[str, str]
    network_log: Path
    pip_extra: str = ""  # "--no-deps " where this environment fails `pip check` (see the module docstring)
    installed: bool = False

    def sh(self, script: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``script`` through bash (``set -euo pipefail``) in the folder, rewritten as the module docstring says."""
        done = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + rewrite(script, self)],
            cwd=self.root, env=self.env, capture_output=True, text=True, timeout=TIMEOUT,
        )  # fmt: skip
        if check:
            assert done.returncode == 0, f"{script}\n--- exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, done.stderr
        self.assert_offline()
        return done

    def assert_offline(self) -> None:
        lines = self.network_log.read_text(encoding="utf-8").splitlines() if self.network_log.exists() else []
        attempts = [line for line in lines if not RAY_OWN_PROBES.search(line)]
        assert not attempts, "network attempts:\n" + "\n".join(attempts)

    def install(self) -> None:
        """README's install line, once (the console-command variants need it)."""
        if not self.installed:
            self.sh(block_starting("python3 -m venv .venv"))
            self.installed = True


def rewrite(script: str, user: UserDir) -> str:
    """The changes listed in the module docstring (offline installs, the stand-in WebUI's port)."""
    script = script.replace("pip install ", f"pip install --no-index --no-build-isolation {user.pip_extra}")
    script = script.replace("python3 -m venv .venv", "python3 -m venv .venv && python3 .readme/see_site.py .venv")
    return script.replace("127.0.0.1:7860", f"127.0.0.1:{user.env.get('README_WEBUI_PORT', '7860')}")


SEE_SITE = """import pathlib, subprocess, sys  # a new venv sees the test environment's packages (offline install)
venv = pathlib.Path(sys.argv[1])
purelib = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
pathlib.Path(purelib, "_readme_test_site.pth").write_text("\\n".join(SITE_DIRS) + "\\n")
"""


def _image(path: Path, seed: int, size: tuple[int, int] = (96, 64)) -> None:
    pixels = np.random.RandomState(seed).randint(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


@pytest.fixture(scope="module")
def user(tiny, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UserDir]:
    work = tmp_path_factory.mktemp("readme")
    root = work / "sd-webui-reimagine"
    shutil.copytree(REPO, root, ignore=COPY_IGNORE, symlinks=True)
    for name, seed in (("photo.jpg", 1), ("cat.png", 2), ("dog.png", 3), ("a.png", 4), ("b.png", 5)):
        _image(root / name, seed)
    for folder, seed in (("inputs", 10), ("renders", 20)):
        for i in range(2):
            _image(root / folder / f"{folder}-{i}.png", seed + i, (64, 64))
    models = root / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    shutil.copy(tiny.unclip_h.ckpt, models / "sd21-unclip-h.ckpt")
    (root / "models" / "karlo").mkdir()
    shutil.copy(tiny.karlo_stats, root / "models" / "karlo" / "ViT-L-14_stats.th")
    shutil.copy(tiny.unclip_h.ckpt, root / "sd21-unclip-h.ckpt")
    shutil.copy(tiny.unclip_h.safetensors, root / "sd21-unclip-h.safetensors")
    shutil.copy(tiny.unclip_l.ckpt, root / "sd21-unclip-l.ckpt")
    shutil.copy(tiny.sdxl_refiner.safetensors, root / "sd_xl_refiner_1.0.safetensors")

    helpers = root / ".readme"
    (helpers / "bin").mkdir(parents=True)
    for name, command in (("python", ""), ("python3", ""), ("pip", " -m pip")):
        wrapper = helpers / "bin" / name
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}"{command} "$@"\n', encoding="utf-8")
        wrapper.chmod(0o755)
    site_dirs = list(
        dict.fromkeys([p for p in sys.path if p.endswith("-packages")] + [sysconfig.get_paths()["purelib"]])
    )
    (helpers / "see_site.py").write_text(SEE_SITE.replace("SITE_DIRS", repr(site_dirs)), encoding="utf-8")
    network_log = work / "network.log"
    env = {
        **os.environ,
        "PATH": f"{helpers / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO / "tests" / "netguard_site"),
        "REIMAGINE_NETWORK_LOG": str(network_log),
        "REIMAGINE_CONFIG_ROOT": str(tiny.config_root),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(work / "hf-home"),
        "PYTHONUNBUFFERED": "1",
        "RAY_USAGE_STATS_ENABLED": "0",  # Ray's documented switch: no cloud-metadata probe, no usage report
    }
    env.pop("REIMAGINE_MODELS", None)
    consistent = (
        subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, timeout=120).returncode == 0
    )
    yield UserDir(root, env, network_log, pip_extra="" if consistent else "--no-deps ")


def block_starting(prefix: str) -> str:
    (block,) = [b for b in bash_blocks() if first_command(b).startswith(prefix)]
    return block


# --------------------------------------------------------------------------------------------------------------------
# serve: started as a user starts it, probed, stopped with Ctrl+C
# --------------------------------------------------------------------------------------------------------------------
def probe_serve(user: UserDir, command: str) -> None:
    port = free_port()
    process = subprocess.Popen(
        ["bash", "-c", f"exec {rewrite(command, user)} --port {port}"],
        cwd=user.root, env=user.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    printed: list[str] = []  # the user opens the page once serve prints its address (its routes are all in by then)
    errors: list[str] = []  # drained too: a full stderr pipe would block the server (seen as a hang on Ctrl+C)
    readers = [
        threading.Thread(target=lambda: printed.extend(iter(process.stdout.readline, "")), daemon=True),
        threading.Thread(target=lambda: errors.extend(iter(process.stderr.readline, "")), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + 240
        while True:
            assert process.poll() is None, f"serve exited {process.returncode}: {printed} {errors}"
            if not any(f"open {url}" in line for line in printed):
                assert time.monotonic() < deadline, f"serve printed no address in 240 s: {printed}"
                time.sleep(0.5)
                continue
            try:
                with urllib.request.urlopen(url + "/", timeout=5) as page:
                    assert page.status == 200 and b"Reimagine" in page.read()
                break
            except OSError:
                assert time.monotonic() < deadline, "serve did not answer in 240 s"
                time.sleep(0.5)
        with urllib.request.urlopen(url + "/reimagine/v1/models", timeout=30) as answer:
            models = json.load(answer)
        assert [(m["name"], m["kind"]) for m in models] == [("sd21-unclip-h.ckpt", "unclip-h")]
        buffer = io.BytesIO()
        Image.open(user.root / "photo.jpg").save(buffer, format="PNG")
        body = {"images": [base64.b64encode(buffer.getvalue()).decode()], "model": "sd21-unclip-h.ckpt"}
        body |= {"steps": 2, "seed": 7, "width": 64, "height": 64}
        request = urllib.request.Request(
            url + "/reimagine/v1/variations", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=300) as answer:
            result = json.load(answer)
        assert len(result["images"]) == 1 and json.loads(result["info"])["all_seeds"] == [7]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail("serve did not stop on SIGINT within 60 s")
        for reader in readers:
            reader.join(10)
        out, err = "".join(printed), "".join(errors)
    assert process.returncode == 0, f"exit {process.returncode}\n{out}\n{err}"
    assert "Traceback" not in err, err
    assert f"open {url}" in out, out
    user.assert_offline()


# --------------------------------------------------------------------------------------------------------------------
# The runners, one per README block
# --------------------------------------------------------------------------------------------------------------------
CONSOLE = ".venv/bin/sd-reimagine"


def run_install(user: UserDir, block: str) -> None:
    user.install()
    written = sorted((user.root / "out").glob("photo-*.png"))
    assert written and all("Noise level" in infotext(path) for path in written)


def run_help(user: UserDir, block: str) -> None:
    user.install()
    done = user.sh(block)
    for command in ("vary", "interpolate", "refine", "serve"):
        assert command in done.stdout


def cli_variants(block: str) -> list[str]:
    """The block as written (``python -m extension``) and through the installed console command."""
    return [block, block.replace("python -m extension", CONSOLE)]


def run_cli(user: UserDir, block: str) -> None:
    user.install()
    lines = [line for line in block.splitlines() if " serve" not in line]
    serve = [line.strip() for line in block.splitlines() if " serve" in line and not line.lstrip().startswith("#")]
    for variant in cli_variants("\n".join(lines)):
        shutil.rmtree(user.root / "out", ignore_errors=True)
        for folder in ("strip", "refined", "kept"):
            shutil.rmtree(user.root / folder, ignore_errors=True)
        user.sh(variant)
        out = user.root / "out"
        assert len(list(out.glob("photo-*.png"))) == 4  # --n 4
        assert len(list(out.glob("inputs-*.png"))) >= 2  # every image of the folder
        mixed = [p for p in out.glob("*.png") if "cat" in p.name]
        assert mixed and "0.7" in infotext(mixed[0])  # the 70/30 mix is recorded
        assert png_count(user.root / "strip") == 8
        assert "Keep composition: 0.5" in infotext(next((user.root / "kept").glob("photo-*.png")))
        assert png_count(user.root / "refined") == png_count(user.root / "renders")
        assert "Refiner post-pass" in infotext(next((user.root / "refined").glob("*.png")))
    assert serve, "the CLI block shows serve"
    for command in serve:
        for variant in cli_variants(command):
            probe_serve(user, variant)


def run_text_diff(user: UserDir, block: str) -> None:
    user.install()
    for variant in cli_variants(block):
        shutil.rmtree(user.root / "strip-anime", ignore_errors=True)
        user.sh(variant)
        edited = [p for p in (user.root / "out").glob("cat-*.png") if "Text diff to" in infotext(p)]
        assert edited and "an anime drawing of a cat" in infotext(edited[0])
        assert png_count(user.root / "strip-anime") == 8


@pytest.fixture(scope="module")
def stand_in_webui(user: UserDir, tiny) -> Iterator[None]:
    """README's ``--api`` WebUI on 127.0.0.1:7860: the stand-in (tests/readme_webui.py) with the README's files."""
    root = user.root.parent / "webui"
    models = root / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    shutil.copy(tiny.sdxl_refiner.safetensors, models / "sd_xl_refiner_1.0.safetensors")
    shutil.copy(tiny.unclip_h.ckpt, models / "sd21-unclip-h.ckpt")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.readme_webui", str(root), str(port)],
        cwd=REPO, env=user.env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "listening"
        user.env["README_WEBUI_PORT"] = str(port)
        yield
    finally:
        user.env.pop("README_WEBUI_PORT", None)
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def run_txt2img_curl(user: UserDir, block: str) -> None:
    done = user.sh(block)
    assert "Refiner post-pass: sd_xl_refiner_1.0" in done.stdout, done.stdout


def run_variations_curl(user: UserDir, block: str) -> None:
    for old in user.root.glob("out-*.png"):
        old.unlink()
    user.sh(block)
    written = sorted(user.root.glob("out-*.png"))
    assert [p.name for p in written] == ["out-0.png", "out-1.png"]  # "batch_size": 2
    assert "Seed: 42" in infotext(written[0])


def _ray_or_skip() -> None:
    pytest.importorskip("ray", reason="the [ray] extra is not installed in this environment")


def run_ray_pip(user: UserDir, block: str) -> None:
    _ray_or_skip()
    done = user.sh(block)
    assert "already satisfied" in done.stdout  # the documented specifiers accept the tested Ray/pyarrow


def run_ray(user: UserDir, block: str) -> None:
    _ray_or_skip()
    port = free_port()
    ray = [sys.executable, "-m", "ray.scripts.scripts"]
    # a short session folder: Ray's unix sockets live in it, and nox's TMPDIR (.nox/<session>/tmp) can push their paths
    # past the 107-byte limit, after which the workers never connect (as tests/cli/test_ray.py's fixture does)
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    head = [*ray, "start", "--head", f"--port={port}", "--num-cpus=8", "--num-gpus=8", "--node-ip-address=127.0.0.1"]
    head.append(f"--temp-dir={temp_dir}")
    user.env[SINGLE_NODE_ENV] = "0"  # the head listens on loopback only, as start_ray makes a local Ray do
    subprocess.run([*head, "--include-dashboard=false"], env=user.env, check=True, capture_output=True, timeout=180)
    try:
        # what `ray start` prints to connect to it; RAY_AUTH_MODE as README says for a cluster (its first command too)
        env = {**user.env, "RAY_ADDRESS": f"127.0.0.1:{port}", "RAY_AUTH_MODE": "token"}
        bucket = user.root / "bucket"
        shutil.copytree(user.root / "renders", bucket / "renders")
        script = block.replace("s3://bucket/", f"file://{bucket}/")
        shutil.rmtree(user.root / "out", ignore_errors=True)  # the CLI block wrote the same outputs: run them again
        done = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + rewrite(script, user)],
            cwd=user.root, env=env, capture_output=True, text=True, timeout=TIMEOUT,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert png_count(bucket / "refined") == png_count(bucket / "renders")
        user.assert_offline()
    finally:
        subprocess.run([*ray, "stop", "--force"], env=user.env, capture_output=True, timeout=120)


TOY_SIZE = (  # (pattern, replacement): a benchmark line at a size a test can afford
    (r"--images \d+", "--images 2"),
    (r"--simulate-gpu-ms \d+", "--simulate-gpu-ms 20"),
    (r"--workers [\d ]+", "--workers 1 "),
    (r"--profile \d+", "--profile 2"),
)


def run_ray_bench(user: UserDir, block: str) -> None:
    _ray_or_skip()
    for line in (line.split("#")[0].strip() for line in block.splitlines()):
        if not line:
            continue
        for pattern, replacement in TOY_SIZE:
            line = re.sub(pattern, replacement, line)
        done = user.sh(line)
        assert "images/s" in done.stdout or "cpu_ms_per_image" in done.stdout, done.stdout


def run_test_command(user: UserDir, block: str) -> None:
    """README's test command is what CI runs: .ci/run installs nox when missing and runs ``python3 -m nox``."""
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]
    assert commands == ["python3 -m pip install nox", "python3 -m nox"]
    assert re.search(r'"\$PYTHON" -m pip install [^\n]*"nox', ci) and re.search(r'"\$PYTHON" -m nox\n', ci)
    assert 'PYTHON="${PYTHON:-python3}"' in ci


def nox_sessions() -> set[str]:
    tree = ast.parse((REPO / "noxfile.py").read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and any("session" in ast.unparse(d) for d in node.decorator_list)
    }


def run_one_session(user: UserDir, block: str) -> None:
    """Each ``nox -s NAME -- ARGS`` names a session that exists and test paths that exist; the
    ``.nox/NAME/bin/python -m pytest ...`` line runs with this environment's interpreter (one of those sessions)."""
    for line in block.splitlines():
        command = line.split("#")[0].split()
        if command[:3] == ["python3", "-m", "nox"]:
            assert command[command.index("-s") + 1] in nox_sessions()
            paths = command[command.index("--") + 1 :] if "--" in command else []
        else:
            assert re.fullmatch(r"\.nox/(\w+)/bin/python", command[0]) and command[0].split("/")[1] in nox_sessions()
            done = subprocess.run(
                [sys.executable, *command[1:]], cwd=REPO, env=user.env, capture_output=True, text=True, timeout=600
            )
            assert done.returncode == 0, done.stdout + done.stderr
            paths = command[1:]
        for path in (p for p in paths if p.startswith("tests/")):
            assert (REPO / path).exists(), path


RUNNERS: dict[str, Callable[[UserDir, str], None]] = {
    "python3 -m venv .venv": run_install,
    ".venv/bin/sd-reimagine --help": run_help,
    "python -m extension vary photo.jpg": run_cli,
    "python -m extension vary cat.png --model sd21-unclip-h.safetensors": run_text_diff,
    "curl -s http://127.0.0.1:7860/sdapi/v1/txt2img": run_txt2img_curl,
    "curl -s -u user:password http://127.0.0.1:7860/reimagine/v1/variations": run_variations_curl,
    'pip install "ray[data]': run_ray_pip,
    "python -m extension vary inputs/ --model sd21-unclip-h.ckpt --out out/ --n 4 --engine ray": run_ray,
    "python bench/bench_ray.py --simulate-gpu-ms": run_ray_bench,
    "python3 -m pip install nox": run_test_command,
    "python3 -m nox -s forge": run_one_session,
}
NEEDS_WEBUI = {run_txt2img_curl, run_variations_curl}


def runner_for(block: str) -> Callable[[UserDir, str], None] | None:
    found = [runner for prefix, runner in RUNNERS.items() if first_command(block).startswith(prefix)]
    assert len(found) <= 1, f"two runners match {first_command(block)!r}"
    return found[0] if found else None


def test_every_block_has_a_runner() -> None:
    blocks = bash_blocks()
    assert len(blocks) >= len(RUNNERS)
    missing = [first_command(b) for b in blocks if runner_for(b) is None]
    assert not missing, f"README command blocks with no runner in tests/test_readme.py: {missing}"
    stale = [p for p in RUNNERS if not any(first_command(b).startswith(p) for b in blocks)]
    assert not stale, f"runners whose README block is gone: {stale}"


def test_no_command_outside_a_bash_block() -> None:
    """Commands shown as indented code (which the extraction would miss) are not allowed: use a ```bash block."""
    text = README.read_text(encoding="utf-8")
    indented = re.findall(r"^ {4}(?:python|pip|curl|\.venv|sd-reimagine)\b.*$", text, flags=re.M)
    assert not indented, indented


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a block runs several commands, each a fresh process that loads torch and a model
@pytest.mark.parametrize("block", bash_blocks(), ids=lambda b: first_command(b)[:60])
def test_readme_block_runs(block: str, user: UserDir, request: pytest.FixtureRequest) -> None:
    runner = runner_for(block)
    assert runner is not None
    if runner in NEEDS_WEBUI:
        request.getfixturevalue("stand_in_webui")
    runner(user, block)
