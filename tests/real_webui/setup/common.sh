# Shared by the real-WebUI scripts of this folder (sourced, never run). Documented in docs/real-webuis.md.
# Every location is an environment variable with a default; nothing here is fixed to one machine.
#   REAL_WEBUI_ROOT  where the WebUIs are built (default: $HOME/real-webuis); A1111_DIR / FORGE_DIR override one each
#   SRC_DIR          folder holding the source checkouts (default: $HOME/src); see src_of below
#   PYTHON           python for the venvs (default: python3.11)
#   A1111_PORT (7860), FORGE_PORT (7875)
SETUP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT_ROOT=$(cd "$SETUP_DIR/../../.." && pwd)
REAL_WEBUI_ROOT=${REAL_WEBUI_ROOT:-$HOME/real-webuis}
SRC_DIR=${SRC_DIR:-$HOME/src}
PYTHON=${PYTHON:-python3.11}
EXT_NAME=sd-webui-reimagine

say() { printf '== [%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# webui_vars a1111|forge: sets W, DIR, PORT, URL, LOG for one WebUI
webui_vars() {
  W=$1
  case $W in
    a1111) DIR=${A1111_DIR:-$REAL_WEBUI_ROOT/a1111}; PORT=${A1111_PORT:-7860} ;;
    forge) DIR=${FORGE_DIR:-$REAL_WEBUI_ROOT/forge}; PORT=${FORGE_PORT:-7875} ;;
    *) die "unknown WebUI '$W' (a1111 or forge)" ;;
  esac
  URL=http://127.0.0.1:$PORT
  LOG=$DIR/logs/webui.log
}

# src_of VAR OWNER/NAME: the source for OWNER/NAME. $VAR if set (a normal or bare repository, or a git URL), else the
# first of $SRC_DIR/NAME, $SRC_DIR/OWNER+NAME/repo, $SRC_DIR/OWNER+NAME that exists.
src_of() {
  local var=$1 full=$2 name=${2#*/} owner=${2%%/*} c
  if [[ -n ${!var:-} ]]; then echo "${!var}"; return; fi
  for c in "$SRC_DIR/$name" "$SRC_DIR/$owner+$name/repo" "$SRC_DIR/$owner+$name"; do
    [[ -d $c ]] && { echo "$c"; return; }
  done
  die "no source for github:$full: set $var to a git repository (or URL) that holds the pinned commit, or put one at $SRC_DIR/$name"
}

# checkout_at SRC DEST COMMIT OWNER/NAME: DEST at COMMIT, its origin pointing at GitHub. The WebUIs compare each
# repository's HEAD with their pin and only then skip `git fetch`, so this is what keeps their start offline.
checkout_at() {
  local src=$1 dest=$2 commit=$3 full=$4
  if [[ -d $dest/.git ]]; then
    [[ $(git -C "$dest" rev-parse HEAD) == "$commit" ]] || die "$dest exists but is not at $commit"
    return 0
  fi
  [[ -e $dest ]] && die "$dest exists but is not a git checkout: move it away"
  git clone -q --no-checkout "$src" "$dest"
  # mirrors without their large binaries (sample PNGs, BLIP.gif) report the missing blobs here; nothing reads them
  git -C "$dest" -c advice.detachedHead=false checkout -q "$commit" 2>&1 \
    | grep -v -E '^error: (unable to read sha1|invalid object)' || true
  [[ $(git -C "$dest" rev-parse HEAD) == "$commit" ]] || die "could not check out $commit in $dest"
  git -C "$dest" remote set-url origin "https://github.com/$full.git"
  echo "  $dest @ ${commit:0:10}"
}

# pinned_requirements IN OUT SETUPTOOLS TORCH TORCHVISION: the WebUI's requirements_versions.txt with setuptools and
# torch pinned (torchvision added). No comment-only line: the WebUIs re-run pip when their parser trips on one.
pinned_requirements() {
  tr -d '\r' < "$1" | sed -E -e 's/[[:space:]]*#.*$//' -e '/^$/d' \
    -e "s/^setuptools==.*/$3/" -e "s/^torch\$/$4\n$5/" > "$2"
}

# build_browser_venv DIR: DIR/pwvenv with Playwright and pytest, kept apart from the WebUI's own venv.
# Chromium itself is the system's (Debian: apt-get install chromium fonts-noto-color-emoji).
build_browser_venv() {
  local d=$1/pwvenv
  if ! "$d/bin/python" -c 'import playwright, pytest' 2>/dev/null; then
    [[ -x $d/bin/python ]] || "$PYTHON" -m venv "$d"
    "$d/bin/pip" install -q playwright pytest
  fi
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null \
    || echo "note: no chromium on PATH; install Debian's chromium and fonts-noto-color-emoji (or set CHROMIUM)" >&2
}

# build_models DIR PY: a random SD 1.5 (original layout) as the base checkpoint and the project's tiny unCLIP-H and
# SDXL refiner, copied into DIR/webui/models/Stable-diffusion; DIR/webui.env names the tiny configs
# (REIMAGINE_CONFIG_ROOT) for the start script. PY: a python with torch, transformers and open_clip; diffusers is
# taken from DIR/tools (pip --target, no deps) when PY lacks it, so the WebUI's venv stays as the WebUI made it.
build_models() {
  local dir=$1 py=$2 models=$1/webui/models/Stable-diffusion pypath=
  mkdir -p "$models"
  if ! "$py" -c 'import diffusers' 2>/dev/null; then
    "$py" -m pip install -q --no-deps --target "$dir/tools" "diffusers==${TOOLS_DIFFUSERS:-0.31.0}"
    pypath=$dir/tools
  fi
  local run=(env PYTHONPATH="$pypath" HF_HUB_OFFLINE=1 "$py" "$SETUP_DIR/make_models.py")
  [[ -f $models/random-sd15.safetensors ]] || "${run[@]}" sd15 "$models/random-sd15.safetensors"
  local root
  root=$("${run[@]}" tiny "$dir/tiny" | tail -1)
  # a build per version of tests/tiny_models.py and of the libraries: drop the older ones
  find "$dir/tiny" -mindepth 1 -maxdepth 1 -name 'tiny-*' ! -path "$root" -exec rm -rf {} +
  # copies, not links: the extension names a linked model after the link's target
  cp -f "$root/single/unclip-h.safetensors" "$models/sd21-unclip-h-tiny.safetensors"
  cp -f "$root/single/sdxl-refiner.safetensors" "$models/sd_xl_refiner-tiny.safetensors"
  printf 'REIMAGINE_CONFIG_ROOT=%s\n' "$root/configs" > "$dir/webui.env"
  # the IP-Adapter steps: ip-adapter_sd15 (full size, random) for the SD 1.5 base, an encoder in models/clip_vision,
  # the sd1 config next to the tiny ones (tests/real_webui/walk_ipadapter.py)
  [[ -f $dir/webui/models/ipadapter/ip-adapter_sd15.safetensors && -f $root/configs/sd1/model_index.json ]] \
    || env PYTHONPATH="$pypath" HF_HUB_OFFLINE=1 "$py" "$SETUP_DIR/../walk_ipadapter.py" place "$dir/webui" "$root/configs"
  "${run[@]}" clip-l-cache "$dir/hf-home"
}
