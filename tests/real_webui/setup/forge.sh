#!/bin/bash
# Build an unmodified Stable Diffusion WebUI Forge (commit dfdcbab6, gradio 4.40) that runs offline on the CPU, with a
# random SD 1.5 base checkpoint and this project's tiny unCLIP-H / SDXL refiner:
# $FORGE_DIR/{webui,venv,pwvenv,hf-home,tiny,webui.env,logs}. Idempotent. Start: setup/webui.sh start forge.
# Environment (see common.sh and docs/real-webuis.md): FORGE_DIR, SRC_DIR, FORGE_SRC, ASSETS_SRC, HF_GUESS_SRC,
# BLIP_SRC, PYTHON, FORGE_TORCH (torch==2.14.1), FORGE_TORCHVISION (torchvision==0.29.1), FORGE_SETUPTOOLS
# (setuptools==77.0.3), MAKE_MODELS (1), WITH_BROWSER (1).
set -euo pipefail
source "$(dirname "$0")/common.sh"
webui_vars forge
TORCH=${FORGE_TORCH:-torch==2.14.1}
TORCHVISION=${FORGE_TORCHVISION:-torchvision==0.29.1}
SETUPTOOLS=${FORGE_SETUPTOOLS:-setuptools==77.0.3}  # Forge pins 69.5.1; torch 2.14 needs >= 77.0.3
mkdir -p "$DIR/logs" && cd "$DIR"
SECONDS=0

say "1/4 sources (the only repositories Forge's prepare_environment() clones at this commit)"
S_FORGE=$(src_of FORGE_SRC lllyasviel/stable-diffusion-webui-forge)
S_ASSETS=$(src_of ASSETS_SRC AUTOMATIC1111/stable-diffusion-webui-assets)
S_GUESS=$(src_of HF_GUESS_SRC lllyasviel/huggingface_guess)
S_BLIP=$(src_of BLIP_SRC salesforce/BLIP)
R=webui/repositories
checkout_at "$S_FORGE" webui dfdcbab685e57677014f05a3309b48cc87383167 lllyasviel/stable-diffusion-webui-forge
mkdir -p $R
checkout_at "$S_ASSETS" $R/stable-diffusion-webui-assets 6f7db241d2f8ba7457bac5ca9753331f0c266917 \
  AUTOMATIC1111/stable-diffusion-webui-assets
checkout_at "$S_GUESS" $R/huggingface_guess 84826248b49bb7ca754c73293299c4d4e23a548d lllyasviel/huggingface_guess
checkout_at "$S_BLIP" $R/BLIP 48211a1594f1321b00f14c9f7a5b4813144b2fb9 salesforce/BLIP

say "2/4 venv (Forge's pins; start passes this file as REQS_FILE, so Forge never re-runs pip -r)"
pinned_requirements webui/requirements_versions.txt requirements.txt "$SETUPTOOLS" "$TORCH" "$TORCHVISION"
if [[ ! -f venv/.complete ]]; then
  [[ -x venv/bin/python ]] || "$PYTHON" -m venv venv
  # Forge's built-in forge_legacy_preprocessors pip-install fvcore, mediapipe, onnxruntime and svglib, unpinned, at
  # the first start; alone, the newest mediapipe pulls numpy 2 and Forge dies importing skimage. Resolved together
  # with Forge's pins, numpy stays 1.26.2. joblib: soft_inpainting.py imports it, Forge does not pin it.
  venv/bin/pip install -q -r requirements.txt fvcore mediapipe onnxruntime svglib joblib
  venv/bin/pip install -q --no-deps openai-clip==1.0.1  # else Forge pip-installs openai/CLIP from a GitHub zip
  venv/bin/pip check
  touch venv/.complete
fi
echo "  $(venv/bin/python -c 'import torch, gradio; print("torch", torch.__version__, "gradio", gradio.__version__)')"

say "3/4 browser venv"
[[ ${WITH_BROWSER:-1} == 1 ]] && build_browser_venv "$DIR"

say "4/4 models and the offline CLIP-L tokenizer"
# Forge picks the first checkpoint by name without a config.json: random-sd15 sorts before the tiny ones
[[ ${MAKE_MODELS:-1} == 1 ]] && build_models "$DIR" "$DIR/venv/bin/python"
say "Forge ready in $DIR after $SECONDS s ($(du -sh "$DIR" | cut -f1))"
