"""The WebUIs' requirement files (docs/webui-contract.md §8, §12), as files a stand-in WebUI root can carry.

A1111 v1.10.1: ``requirements_versions.txt`` at tag v1.10.1. Forge (2.0.1v1.10.1): the pins §8 lists ("same + ...");
entries the reference does not give are not invented. Forge Neo: ``requirements.txt`` (the name its launch_utils.py
reads), a verbatim copy in ``tests/fixtures/neo-requirements.txt`` (Haoming02/sd-webui-forge-classic, branch neo,
commit 1e8cfbc1d5982edb8e593cfad948ab4ccae7bfbe). ``INSTALLED_EXTRA`` lists what a real install has besides its pins
(dependencies installed by the WebUI's torch/requirements step).
"""

from __future__ import annotations

from pathlib import Path

A1111_REQUIREMENTS = """\
setuptools==69.5.1  # temp fix for compatibility with some old packages
GitPython==3.1.32
Pillow==9.5.0
accelerate==0.21.0
blendmodes==2022
clean-fid==0.1.35
diskcache==5.6.3
einops==0.4.1
facexlib==0.3.0
fastapi==0.94.0
gradio==3.41.2
httpcore==0.15
inflection==0.5.1
jsonmerge==1.9.0
kornia==0.6.7
lark==1.1.2
numpy==1.26.2
omegaconf==2.2.3
open-clip-torch==2.20.0
piexif==1.1.3
protobuf==3.20.0
psutil==5.9.5
pytorch_lightning==1.9.4
resize-right==0.0.2
safetensors==0.4.2
scikit-image==0.21.0
spandrel==0.3.4
spandrel-extra-arches==0.1.1
tomesd==0.1.3
torch
torchdiffeq==0.2.3
torchsde==0.2.6
transformers==4.30.2
httpx==0.24.1
pillow-avif-plugin==1.4.3
"""

FORGE_REQUIREMENTS = """\
setuptools==69.5.1
GitPython==3.1.32
Pillow==9.5.0
accelerate==0.31.0
diffusers==0.31.0
einops==0.4.1
fastapi==0.104.1
gradio==4.40.0
gradio_rangeslider==0.0.6
gradio_imageslider==0.0.20
httpcore==0.15
httpx==0.24.1
huggingface-hub==0.26.2
kornia==0.6.7
loadimg==0.1.2
numpy==1.26.2
omegaconf==2.2.3
open-clip-torch==2.20.0
peft==0.13.2
protobuf==3.20.0
pydantic==2.8.2
pytorch_lightning==1.9.4
safetensors==0.4.2
spandrel==0.3.4
tqdm==4.66.1
transformers==4.46.1
torch
"""

NEO_REQUIREMENTS_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "neo-requirements.txt"
NEO_REQUIREMENTS = NEO_REQUIREMENTS_PATH.read_text(encoding="utf-8")

REQUIREMENTS = {"a1111": A1111_REQUIREMENTS, "forge": FORGE_REQUIREMENTS, "neo": NEO_REQUIREMENTS}
REQUIREMENTS_FILE = {
    "a1111": "requirements_versions.txt",
    "forge": "requirements_versions.txt",
    "neo": "requirements.txt",
}
"""The file name each WebUI reads its pins from (``REQS_FILE`` overrides it in all three)."""

GRADIO_PACKAGE = {"a1111": "gradio==3.41.2", "forge": "gradio==4.40.0", "neo": "gradio==4.40.0"}
"""The gradio each WebUI installs: A1111 and Forge pin it in requirements_versions.txt; Neo's requirements.txt does
not, its launch_utils.py installs ``GRADIO_PACKAGE`` (``gradio==4.40.0 gradio_imageslider==0.0.20
gradio_rangeslider==0.0.6`` at commit a67a37decd6d66cb7b300a42b62681279bca59dc) before the requirements."""

# Installed in a real WebUI venv without being pinned ``==`` in the file (torch from TORCH_COMMAND, deps of pins).
INSTALLED_EXTRA = {
    "a1111": {"torch": "2.1.2", "torchvision": "0.16.2", "huggingface-hub": "0.24.5"},
    "forge": {"torch": "2.3.1", "torchvision": "0.18.1", "torchsde": "0.2.6"},
    "neo": {"torch": "2.14.1", "torchvision": "0.29.1", "gradio": "4.40.0"},
}


def pinned(flavour: str) -> dict[str, str]:
    """``{name: version}`` of the ``==`` lines of that WebUI's requirements file."""
    pins: dict[str, str] = {}
    for line in REQUIREMENTS[flavour].splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()  # Neo: audioop-lts==0.2.2;python_version>="3.13"
        if "==" in line:
            name, version = (part.strip() for part in line.split("==", 1))
            pins[name] = version
    return pins
