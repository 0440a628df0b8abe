#!/bin/bash
# Start, stop or query a real WebUI built by a1111.sh / forge.sh.
# usage: webui.sh start|stop|status a1111|forge [extra launch.py arguments for start]
#   start: runs launch.py in the background (own process group, log $DIR/logs/webui.log, appended) inside the same
#          relaunch loop as the WebUI's webui.sh (SD_WEBUI_RESTART), so Extensions > "Apply and restart UI" restarts
#          it; returns once a NEW "Startup time:" line is logged (extension routes exist from then on) and
#          /sdapi/v1/options answers. CPU only, offline (HF_HUB_OFFLINE...), 127.0.0.1:$PORT, --api.
#          Refuses while the other WebUI answers (one at a time: RAM). $DIR/webui.env (written by the build) is
#          exported first: REIMAGINE_CONFIG_ROOT, the tiny models' configs.
#   stop:  TERM to the process group recorded in $DIR/logs/webui.pgid, KILL after 30 s.
# Environment: see common.sh (REAL_WEBUI_ROOT, A1111_DIR, FORGE_DIR, A1111_PORT, FORGE_PORT); WEBUI_WAIT (900 s).
set -u
source "$(dirname "$0")/common.sh"
cmd=${1:-}; [[ $# -ge 2 ]] || die "usage: webui.sh start|stop|status a1111|forge"
other=forge; [[ $2 == forge ]] && other=a1111
webui_vars "$other"; OTHER_URL=$URL
webui_vars "$2"; shift 2
PGID_FILE=$DIR/logs/webui.pgid

api_up() { [[ $(curl -s -o /dev/null -w '%{http_code}' "$1/sdapi/v1/options") == 200 ]]; }
running() { local g; g=$(cat "$PGID_FILE" 2>/dev/null) && [[ -n $g ]] && kill -0 -- "-$g" 2>/dev/null; }
count_startups() { grep -c '^Startup time:' "$LOG" 2>/dev/null || true; }

case $cmd in
status)
  if running; then echo "$W running (process group $(cat "$PGID_FILE")), API $(api_up "$URL" && echo up || echo down) at $URL"
  else echo "$W stopped"; fi ;;
stop)
  rm -f "$DIR/webui/tmp/restart"
  if ! running; then rm -f "$PGID_FILE"; echo "$W not running"; exit 0; fi
  g=$(cat "$PGID_FILE")
  kill -TERM -- "-$g"
  for _ in $(seq 60); do kill -0 -- "-$g" 2>/dev/null || break; sleep 0.5; done
  kill -0 -- "-$g" 2>/dev/null && { kill -KILL -- "-$g"; echo "killed process group $g"; }
  rm -f "$PGID_FILE"; echo "$W stopped" ;;
start)
  [[ -x $DIR/venv/bin/python ]] || die "$DIR has no venv: run setup/$W.sh first"
  running && api_up "$URL" && { echo "$W already up at $URL"; exit 0; }
  api_up "$OTHER_URL" && die "another WebUI answers at $OTHER_URL: stop it first (one at a time)"
  if [[ $W == a1111 ]]; then
    ARGS=(--skip-torch-cuda-test --use-cpu all --no-half --precision full)
  else
    ARGS=(--skip-torch-cuda-test --always-cpu)
  fi
  ARGS+=(--no-download-sd-model --api --port "$PORT" --skip-version-check "$@")
  cd "$DIR/webui" && mkdir -p tmp "$DIR/logs"
  set -a; [[ -f $DIR/webui.env ]] && source "$DIR/webui.env"; set +a
  # PIP_RETRIES=0: Forge's built-in legacy preprocessors try three GitHub wheels at every start; offline they then
  # fail at once instead of after minutes of retries
  export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DIFFUSERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False \
    HF_HOME=$DIR/hf-home REQS_FILE=$DIR/requirements.txt SD_WEBUI_RESTART=tmp/restart PYTHONUNBUFFERED=1 PIP_RETRIES=0
  n0=$(count_startups)
  printf '\n===== %s start %s: launch.py %s\n' "$W" "$(date -u -Is)" "${ARGS[*]}" >> "$LOG"
  setsid bash -c 'echo $$ > "$0"; while :; do "$1" -u launch.py "${@:2}"; rc=$?
      echo "===== launch.py exited $rc"; [[ -f tmp/restart ]] || exit $rc; echo "===== relaunch (tmp/restart)"; done' \
    "$PGID_FILE" "$DIR/venv/bin/python" "${ARGS[@]}" >> "$LOG" 2>&1 < /dev/null &
  SECONDS=0
  while (( SECONDS < ${WEBUI_WAIT:-900} )); do
    sleep 2
    if (( $(count_startups) > n0 )) && api_up "$URL"; then echo "$W up at $URL after $SECONDS s"; exit 0; fi
    running || { echo "$W exited during start; end of $LOG:"; tail -40 "$LOG"; exit 1; }
  done
  echo "$W not up after $SECONDS s; see $LOG"; exit 1 ;;
*) die "usage: webui.sh start|stop|status a1111|forge" ;;
esac
