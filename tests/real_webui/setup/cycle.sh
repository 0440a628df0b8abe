#!/bin/bash
# One clean end-to-end run against a real WebUI: stop it, remove extensions/sd-webui-reimagine, reset the WebUI's
# config, clone REPO at HEAD, start the WebUI, install the clone through the page (install_extension.py), run the
# clone's tests/real_webui/walk.py, stop. Exit status: the walk's (0 when every step passed).
# usage: cycle.sh a1111|forge [REPO (default: this checkout; only COMMITTED content is installed)]
# Environment (besides common.sh's): RUNS_DIR (default $REAL_WEBUI_ROOT/runs) for results; KEEP_RUNNING=1 leaves
# the WebUI up; REAL_WEBUI_LOCK=FILE holds flock(1) on FILE from start to stop (machines shared by several users).
set -u
source "$(dirname "$0")/common.sh"
[[ $# -ge 1 ]] || die "usage: cycle.sh a1111|forge [REPO]"
if [[ -n ${REAL_WEBUI_LOCK:-} && -z ${CYCLE_LOCKED:-} ]]; then
  CYCLE_LOCKED=1 exec flock "$REAL_WEBUI_LOCK" "$0" "$@"
fi
webui_vars "$1"
REPO=${2:-$PROJECT_ROOT}
WEBUI_SH=$SETUP_DIR/webui.sh
PY=$DIR/pwvenv/bin/python
commit=$(git -C "$REPO" rev-parse --short HEAD) || die "$REPO is not a git repository"
OUT=${RUNS_DIR:-$REAL_WEBUI_ROOT/runs}/$W-$(date -u +%Y%m%dT%H%M%SZ)-$commit
CLONE=$OUT/clone
mkdir -p "$OUT"
say "$W: $REPO @ $commit -> $OUT"

say "stop, remove the old copy, reset config"
"$WEBUI_SH" stop "$W"
rm -rf "$DIR/webui/extensions/$EXT_NAME"
# every start stores each component's default in ui-config.json: a kept file would pin an older version's defaults.
# Apply and restart UI writes config.json. A1111 loads sd_model_checkpoint at the first page view.
rm -f "$DIR/webui/ui-config.json" "$DIR/webui/config.json"
[[ -f $DIR/config.initial.json ]] && cp "$DIR/config.initial.json" "$DIR/webui/config.json"

say "clean clone, start, install through the page"
git clone -q "$REPO" "$CLONE" || die "clone of $REPO failed"
"$WEBUI_SH" start "$W" || exit 1
finish() { [[ ${KEEP_RUNNING:-0} == 1 ]] || "$WEBUI_SH" stop "$W"; }
"$PY" "$SETUP_DIR/install_extension.py" "$CLONE" --name "$EXT_NAME" --url "$URL" --log "$LOG" --shots "$OUT/install" \
  2>&1 | tee "$OUT/install.log"
if [[ ${PIPESTATUS[0]} != 0 ]]; then finish; die "install through the page failed (see $OUT/install.log)"; fi
curl -s "$URL/reimagine/v1/models" | head -c 600; echo

say "walk"
nice -n 5 "$PY" "$CLONE/tests/real_webui/walk.py" --url "$URL" --name "$W" --log "$LOG" --shots "$OUT" \
  --json "$OUT/results.json" 2>&1 | tee "$OUT/walk.log"
rc=${PIPESTATUS[0]}
finish
say "walk exit status $rc; results in $OUT"
exit "$rc"
