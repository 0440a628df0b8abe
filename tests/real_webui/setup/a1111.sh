#!/bin/bash
# Build an unmodified AUTOMATIC1111 WebUI v1.10.1 that runs offline on the CPU, with a random SD 1.5 base checkpoint
# and this project's tiny unCLIP-H / SDXL refiner: $A1111_DIR/{webui,venv,pwvenv,hf-home,tiny,webui.env,logs}.
# Idempotent (kept: webui/ at the pin, a working venv, built models). Start it with setup/webui.sh start a1111.
# Environment (see common.sh and docs/real-webuis.md): A1111_DIR, SRC_DIR, WEBUI_SRC, ASSETS_SRC,
# STABLEDIFFUSION_SRC, GENERATIVE_MODELS_SRC, K_DIFFUSION_SRC, BLIP_SRC, PYTHON, A1111_TORCH (torch===2.13.0),
# A1111_TORCHVISION (torchvision==0.28.0), A1111_SETUPTOOLS (setuptools==77.0.3), MAKE_MODELS (1), WITH_BROWSER (1).
set -euo pipefail
source "$(dirname "$0")/common.sh"
webui_vars a1111
TORCH=${A1111_TORCH:-torch===2.13.0}  # '===': the plain release, never a local '+cpu' build without its torchvision
TORCHVISION=${A1111_TORCHVISION:-torchvision==0.28.0}
SETUPTOOLS=${A1111_SETUPTOOLS:-setuptools==77.0.3}  # the WebUI pins 69.5.1; torch 2.13 needs >= 77.0.3
mkdir -p "$DIR/logs" && cd "$DIR"
SECONDS=0

say "1/4 sources (the commits v1.10.1's launch_utils.py pins)"
# resolved first: a missing source stops the build here (set -e does not see a failure inside an argument)
S_WEBUI=$(src_of WEBUI_SRC AUTOMATIC1111/stable-diffusion-webui)
S_ASSETS=$(src_of ASSETS_SRC AUTOMATIC1111/stable-diffusion-webui-assets)
S_SD=$(src_of STABLEDIFFUSION_SRC Stability-AI/stablediffusion)
S_SGM=$(src_of GENERATIVE_MODELS_SRC Stability-AI/generative-models)
S_KD=$(src_of K_DIFFUSION_SRC crowsonkb/k-diffusion)
S_BLIP=$(src_of BLIP_SRC salesforce/BLIP)
R=webui/repositories
checkout_at "$S_WEBUI" webui 82a973c04367123ae98bd9abdf80d9eda9b910e2 AUTOMATIC1111/stable-diffusion-webui
mkdir -p $R
checkout_at "$S_ASSETS" $R/stable-diffusion-webui-assets 6f7db241d2f8ba7457bac5ca9753331f0c266917 \
  AUTOMATIC1111/stable-diffusion-webui-assets
checkout_at "$S_SD" $R/stable-diffusion-stability-ai cf1d67a6fd5ea1aa600c4df58e5b47da45f6bdbf Stability-AI/stablediffusion
checkout_at "$S_SGM" $R/generative-models 45c443b316737a4ab6e40413d7794a7f5657c19f Stability-AI/generative-models
checkout_at "$S_KD" $R/k-diffusion ab527a9a6d347f364e3d185ba6d714e22d80cb3c crowsonkb/k-diffusion
checkout_at "$S_BLIP" $R/BLIP 48211a1594f1321b00f14c9f7a5b4813144b2fb9 salesforce/BLIP

say "2/4 venv (the WebUI's pins; start passes this file as REQS_FILE, so the WebUI never runs pip itself)"
pinned_requirements webui/requirements_versions.txt requirements.txt "$SETUPTOOLS" "$TORCH" "$TORCHVISION"
if ! venv/bin/python -c 'import torch, torchvision, gradio, clip' 2>/dev/null; then
  [[ -x venv/bin/python ]] || "$PYTHON" -m venv venv
  venv/bin/pip install -q -r requirements.txt
  # the WebUI would otherwise pip-install openai/CLIP as a zip from GitHub
  venv/bin/pip install -q --no-deps openai-clip==1.0.1
fi
venv/bin/pip check || true
echo "  $(venv/bin/python -c 'import torch, gradio; print("torch", torch.__version__, "gradio", gradio.__version__)')"

say "3/4 browser venv"
[[ ${WITH_BROWSER:-1} == 1 ]] && build_browser_venv "$DIR"

say "4/4 models and the offline CLIP-L tokenizer"
if [[ ${MAKE_MODELS:-1} == 1 ]]; then
  build_models "$DIR" "$DIR/venv/bin/python"
  # the page loads the default checkpoint at its first view: make it the SD 1.5, not the first file by name
  echo '{"sd_model_checkpoint": "random-sd15.safetensors"}' > config.initial.json
  [[ -f webui/config.json ]] || cp config.initial.json webui/config.json
fi
say "A1111 v1.10.1 ready in $DIR after $SECONDS s ($(du -sh "$DIR" | cut -f1))"
