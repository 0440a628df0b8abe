"""Sharp edges of issue #22 besides text parsing: no silent black image, the Origin's port, stale temp files,
gradio's temp folder, a local Ray on loopback with a one-line error when it cannot start, and the memory-plan line
naming Forge's own flags."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from extension import security
from extension.errors import NonFiniteError, ReimagineError
from extension.prompts import PromptError

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------------------------------------
# No silent black image


def test_conditioning_that_comes_out_nan_is_a_prompt_error() -> None:
    from extension.engine.text_encoding import encode_weighted

    class Tokenizer:
        bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

        def __call__(self, texts: list[str], **kwargs: Any) -> Any:
            return SimpleNamespace(input_ids=[[5] * len(text.split()) for text in texts])

        def get_vocab(self) -> dict[str, int]:
            return {}

    def zero_mean(ids: torch.Tensor) -> tuple[torch.Tensor, None]:  # a final layer norm without bias: mean 0
        z = torch.ones(1, ids.shape[1], 4)
        z[..., ::2] = -1.0
        return z, None

    with pytest.raises(PromptError, match="NaN or infinite"):
        encode_weighted(Tokenizer(), zero_mean, "(cat:0)", "cpu")


def test_nan_latents_are_reported_not_decoded() -> None:
    from extension.engine.unclip import decode
    from extension.engine.vae import decode_latents

    vae = SimpleNamespace(decode=lambda *a, **k: pytest.fail("decoded NaN latents"), config=None)
    pipe = SimpleNamespace(vae=vae, _execution_device="cpu")
    nan = torch.full((1, 4, 8, 8), float("nan"))
    for run in (decode, decode_latents):
        with pytest.raises(NonFiniteError, match="all-black image was not saved"):
            run(pipe, nan)


def test_the_webui_host_hands_nan_checks_to_the_webuis_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """In the WebUI, ``devices.test_for_nans`` decides (``--disable-nan-check`` turns it off), as for txt2img."""
    from extension.engine.text_encoding import check_latents

    calls = []
    pipe = SimpleNamespace(reimagine_nan_check=lambda latents, where: calls.append(where))
    check_latents(pipe, torch.full((1, 4, 8, 8), float("nan")))
    assert calls == ["UNet"]


@pytest.mark.slow
def test_nan_leaves_no_black_png(tiny: Any, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """An infinite weight, and NaN latents from the UNet: a one-line error each, no PNG written."""
    from PIL import Image

    from extension.cli import main

    source = tmp_path / "in.png"
    Image.new("RGB", (64, 64), (90, 20, 200)).save(source)
    out = tmp_path / "out"
    model = str(tiny.unclip_h.safetensors)
    common = ["--model", model, "--out", str(out), "--steps", "2", "--config-root", str(tiny.config_root)]
    assert main(["vary", str(source), *common, "--prompt", "(cat:" + "9" * 400 + ")"]) == 2
    assert "weight is inf" in capsys.readouterr().err and not list(out.glob("*.png"))
    from extension.engine import unclip

    sample = unclip.denoise
    monkeypatch.setattr(unclip, "denoise", lambda *args, **kwargs: sample(*args, **kwargs) * float("nan"))
    assert main(["vary", str(source), *common, "--prompt", "a cat"]) == 2  # as an fp16 UNet overflowing would
    assert "A tensor with NaNs was produced" in capsys.readouterr().err and not list(out.glob("*.png"))


# ---------------------------------------------------------------------------------------------------------------------
# Origin: scheme + host + port


def _refusal(host: str, origin: str | None) -> Any:
    guard = security.LocalOnly(None, security.allowed_host_names(), [])
    headers = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin else [])
    return guard.refusal({"type": "http", "path": "/reimagine/v1/interrupt", "headers": headers})


@pytest.mark.parametrize(
    ("host", "origin", "allowed"),
    [
        ("127.0.0.1:7861", "http://127.0.0.1:7861", True),
        ("127.0.0.1:7861", "http://127.0.0.1:9999", False),  # another local app's page
        ("localhost:7861", "http://localhost:9999", False),
        ("127.0.0.1:7861", "http://localhost:7861", False),  # another origin, though the same server
        ("[::1]:7861", "http://[::1]:7861", True),
        ("[::1]:7861", "http://[::1]:80", False),
        ("localhost", "http://localhost", True),  # default ports
        ("localhost", "http://localhost:80", True),
        ("localhost", "https://localhost:8443", False),
        ("127.0.0.1:7861", "null", False),
        ("127.0.0.1:7861", "http://127.0.0.1:99999", False),
        ("127.0.0.1:7861", None, True),
    ],
)
def test_origin_must_be_the_pages_own_scheme_host_and_port(host: str, origin: str | None, allowed: bool) -> None:
    refused = _refusal(host, origin)
    assert (refused is None) == allowed, refused
    if not allowed:
        assert refused[0] == 403


# ---------------------------------------------------------------------------------------------------------------------
# Leftovers: temp files after kill -9, gradio's temp folder

KILLED_WRITER = """
import sys, time
from pathlib import Path
from PIL import Image
from extension.outputs import save_png

def hang(self, fp, *args, **kwargs):
    fp.write(b"half a png")
    fp.flush()
    print("writing", flush=True)
    time.sleep(600)

Image.Image.save = hang
save_png(Image.new("RGB", (8, 8)), Path(sys.argv[1]) / "00000-1.png", "a cat")
"""


def test_a_temp_file_left_by_kill_9_is_removed_on_resume(tmp_path: Path) -> None:
    from extension.cli.files import prepare_out

    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
        (left,) = [entry for entry in tmp_path.iterdir() if entry.name.endswith(".png.tmp")]
        assert left.name.startswith(f".00000-1-p{writer.pid}-")
        prepare_out(tmp_path)  # the writer still runs: its file is kept
        assert left.exists()
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    legacy = tmp_path / ".00000-2-abc_1234.png.tmp"  # named by an older version (no pid)
    other = tmp_path / ".notes.png.tmp.bak"
    legacy.write_bytes(b"x")
    other.write_bytes(b"x")
    prepare_out(tmp_path)
    assert not left.exists() and not legacy.exists() and other.exists()
    assert not list(tmp_path.glob("*.png"))  # and the image itself is redone by the resume rule


def test_an_old_temp_of_a_live_process_is_stale_too(tmp_path: Path) -> None:
    from extension.outputs import STALE_AGE_S, remove_stale_temps

    mine = tmp_path / f".a-p{os.getpid()}-abcd1234.png.tmp"
    mine.write_bytes(b"x")
    assert remove_stale_temps(tmp_path) == []
    old = time.time() - STALE_AGE_S - 60
    os.utime(mine, (old, old))
    assert remove_stale_temps(tmp_path) == [mine]


def test_the_apps_gradio_temp_folder_is_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    folder = security.private_temp_dir()
    try:
        shared = Path(tempfile.gettempdir()) / "gradio"
        assert folder.is_dir() and folder != shared and os.environ["GRADIO_TEMP_DIR"] == str(folder)
        if os.name == "posix":
            assert folder.stat().st_mode & 0o077 == 0  # no one else may list or read it
        from extension.ui.standalone import StandaloneHost

        roots = StandaloneHost([], models=[]).allowed_dirs()
        assert folder.resolve() in roots and shared.resolve() not in roots
        assert security.private_temp_dir() == folder  # one per process
    finally:
        folder.rmdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", "/somewhere/chosen")
    assert security.private_temp_dir() == Path("/somewhere/chosen")  # the user's own choice is kept


# ---------------------------------------------------------------------------------------------------------------------
# Memory plan line: the WebUI's own flag names


@pytest.mark.parametrize(
    ("cmd_opts", "forge_args", "flag", "mode"),
    [
        ({"use_cpu": ["all"]}, None, "--use-cpu", "cpu"),
        ({}, {"always_cpu": True}, "--always-cpu", "cpu"),
        ({"lowvram": True}, None, "--lowvram", "sequential_offload"),
        ({}, {"always_no_vram": True}, "--always-no-vram", "sequential_offload"),
        ({}, {"always_offload_from_vram": True}, "--always-offload-from-vram", "model_offload"),
        ({}, {"always_high_vram": True}, "--always-high-vram", "resident"),
        ({"medvram_sdxl": True}, None, "--medvram-sdxl", "model_offload"),
    ],
)
def test_the_memory_plan_names_the_flag_as_this_webui_spells_it(cmd_opts, forge_args, flag, mode) -> None:
    from extension.device.memory import GiB, Job, flags_from_args, plan

    forge = SimpleNamespace(**forge_args) if forge_args is not None else None
    flags = flags_from_args(SimpleNamespace(**cmd_opts), forge)
    line = plan(80 * GiB, 80 * GiB, flags, Job("refiner", 1024, 1024)).describe()
    assert line.startswith(mode) and line.endswith(f"({flag})"), line
    assert ("--use-cpu" in line) == (flag == "--use-cpu")


# ---------------------------------------------------------------------------------------------------------------------
# Ray: loopback only, one-line errors


def test_ray_refuses_to_start_with_pydantic_1_in_one_line() -> None:
    from extension.cli.ray_engine import check_can_start

    check_can_start("2.11.7")
    with pytest.raises(ReimagineError, match=r"pydantic 1\.10\.13 is installed and Ray needs pydantic 2") as caught:
        check_can_start("1.10.13")
    assert "\n" not in str(caught.value)


def test_a_local_ray_is_asked_for_loopback_and_a_failed_start_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from extension.cli import ray_engine

    monkeypatch.setattr(ray_engine, "check_can_start", lambda version: None)
    monkeypatch.delenv(ray_engine.SINGLE_NODE_ENV, raising=False)
    seen: dict[str, Any] = {}

    def init(**kwargs: Any) -> None:
        seen.update(kwargs, env=os.environ.get(ray_engine.SINGLE_NODE_ENV))
        raise RuntimeError("The current node timed out during startup. This could happen because ...\nmore")

    with pytest.raises(ReimagineError) as caught:
        ray_engine.start_ray(SimpleNamespace(init=init), None)
    assert seen["_node_ip_address"] == "127.0.0.1" and seen["env"] == "0" and seen["address"] is None
    assert str(caught.value).startswith("--engine ray could not start a local Ray: The current node timed out")
    assert "\n" not in str(caught.value)
    seen.clear()
    with pytest.raises(ReimagineError, match="join the Ray cluster at auto"):
        ray_engine.start_ray(SimpleNamespace(init=init), "auto")
    assert "_node_ip_address" not in seen  # a cluster's own addresses are the user's business


RAY_BIND = textwrap.dedent(
    """
    import ipaddress, psutil, ray
    from extension.cli.ray_engine import start_ray
    start_ray(ray, None)
    node = ray._private.worker.global_worker.node
    listening = set()
    for child in psutil.Process().children(recursive=True):
        try:
            listening |= {c.laddr.ip for c in child.net_connections("inet") if c.status == psutil.CONN_LISTEN}
        except psutil.Error:
            pass
    print(node.node_ip_address, node.gcs_address)
    print(" ".join(sorted(listening)))
    ray.shutdown()
    """
)


def test_a_local_ray_listens_on_loopback_only(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    pytest.importorskip("psutil")
    env = {**os.environ, "RAY_TMPDIR": tempfile.mkdtemp(prefix="ray-", dir="/tmp")}
    done = subprocess.run(
        [sys.executable, "-c", RAY_BIND], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    node, listening = done.stdout.strip().splitlines()[-2:]
    assert node.split()[0] == "127.0.0.1" and node.split()[1].startswith("127.0.0.1:")
    addresses = listening.split()
    assert addresses, "no listening socket found"
    for address in addresses:
        ip = ipaddress.ip_address(address)
        assert (getattr(ip, "ipv4_mapped", None) or ip).is_loopback, f"Ray listens on {address}"


def test_the_forge_stand_in_prints_forges_own_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Forge started with ``--always-cpu`` (its ``backend.args``): the printed plan names that flag, not A1111's."""
    from tests.webui_stub.fixture import StubWebUI, skip_impossible_pair

    skip_impossible_pair("forge")  # the Forge stand-in imports gradio 4 (the forge environment)
    stub = StubWebUI(tmp_path / "webui", "forge")
    stub.activate()
    try:
        import backend  # noqa: F401 - the stand-in's package, so that the module below is its child

        monkeypatch.setitem(sys.modules, "backend.args", SimpleNamespace(args=SimpleNamespace(always_cpu=True)))
        from extension.loading.discovery import ModelChoice
        from extension.webui.host import WebUIHost

        host = WebUIHost()
        choice = ModelChoice("m", "unclip-h", "m.safetensors", Path("/models/m.safetensors"))
        capsys.readouterr()
        host.memory_plan(choice, "unclip")
        (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("sd-webui-reimagine: memory")]
    finally:
        stub.deactivate()
    assert "(--always-cpu)" in line and "[flags: --always-cpu]" in line and "--use-cpu" not in line, line
