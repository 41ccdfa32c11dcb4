#!/usr/bin/env bash
# Run the function app on this machine: `make run` (extra arguments go to `func start`).
#
#   Azurite       from the project's own node_modules (npm ci), stopped when this script exits
#   Service Bus   the namespace/connection in local.settings.json if it names a real one,
#                 else the emulator from docker-compose.yml (left running: `docker compose down`)
#   Functions     Azure Functions Core Tools v4 (`func start`) with .venv active
#
# Missing Core Tools are installed with npm into .tools/core-tools (RUN_LOCAL_INSTALL_CORE_TOOLS=0
# turns that off). Every other missing prerequisite is reported, all at once, with its remedy.
#
# Knobs (environment): SERVICEBUS_EMULATOR_HEALTH_URL, SERVICEBUS_EMULATOR_TIMEOUT (s),
# AZURITE_TABLE_PORT (default 10002, must match AzureWebJobsStorage), AZURITE_TIMEOUT (s).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

venv_python=.venv/bin/python
azurite_bin=node_modules/.bin/azurite
settings=local.settings.json
sample=local.settings.sample.json
table_port=${AZURITE_TABLE_PORT:-10002}
emulator_health_url=${SERVICEBUS_EMULATOR_HEALTH_URL:-http://localhost:5300/health}
emulator_timeout=${SERVICEBUS_EMULATOR_TIMEOUT:-180}
azurite_timeout=${AZURITE_TIMEOUT:-30}
core_tools_dir=.tools/core-tools

say() { printf 'run-local: %s\n' "$*" >&2; }
die() { printf 'run-local: error: %s\n' "$*" >&2; exit 1; }

# --- 1. local.settings.json, first: whatever is missing below, the file exists to be edited ----
if [[ -e $settings ]]; then
  say "using the existing $settings"
elif [[ -f $sample ]]; then
  cp "$sample" "$settings"
  say "created $settings from $sample (it is git-ignored: put your own values there)"
fi

# Which Service Bus does local.settings.json name? namespace | connection | emulator | conflict
servicebus_mode() {
  "$1" - "$settings" <<'PY'
import json
import sys

try:
    with open(sys.argv[1], encoding="utf-8") as f:
        values = json.load(f).get("Values") or {}
except (OSError, ValueError, AttributeError) as exc:
    sys.exit(f"run-local: error: {sys.argv[1]} is not a valid settings file: {exc}")
conn = str(values.get("ServiceBusConnection") or "").strip()
namespace = str(values.get("ServiceBusConnection__fullyQualifiedNamespace") or "").strip()
emulator = "usedevelopmentemulator=true" in conn.replace(" ", "").lower()
if namespace:
    # The Functions host prefers a connection string over the namespace, so the emulator's
    # string would silently win.
    print("conflict" if conn else "namespace")
elif conn and not emulator:
    print("connection")
else:
    print("emulator")
PY
}

docker_running() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

# Core Tools through npm into .tools/ (git-ignored), not package.json: `npm ci` in CI would run
# its postinstall, which downloads the host from a CDN that CI may not reach.
install_core_tools() {
  [[ ${RUN_LOCAL_INSTALL_CORE_TOOLS:-1} == 1 ]] && command -v npm >/dev/null 2>&1 || return 1
  say "Core Tools ('func') not found: installing azure-functions-core-tools@4 into $core_tools_dir"
  npm install --prefix "$core_tools_dir" --no-audit --no-fund --loglevel=error \
    azure-functions-core-tools@4 >&2 || return 1
  [[ -x $core_tools_dir/node_modules/.bin/func ]]
}

# --- 2. Prerequisites: check all of them, then report everything missing at once -----------------
[[ -x $core_tools_dir/node_modules/.bin/func ]] && PATH="$root/$core_tools_dir/node_modules/.bin:$PATH"
missing=()
[[ -f $settings ]] || missing+=(
  "$sample is missing, so $settings cannot be created. Restore it: git checkout -- $sample")
if ! command -v func >/dev/null 2>&1; then
  if install_core_tools; then
    PATH="$root/$core_tools_dir/node_modules/.bin:$PATH"
  else
    missing+=(
  "Azure Functions Core Tools v4 ('func') is not on PATH and could not be installed through npm
  here (no npm, no network, or RUN_LOCAL_INSTALL_CORE_TOOLS=0). Install it with
    npm i -g azure-functions-core-tools@4
  or Microsoft's package (https://learn.microsoft.com/azure/azure-functions/functions-run-local).
  It downloads its host and extension bundle from cdn.functions.azure.com on first use.")
  fi
fi
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing+=(
  "Node.js and npm (20 or later) are not on PATH; Azurite runs on Node. Install them
  (https://nodejs.org/), then run: npm ci")
[[ -x $azurite_bin ]] || missing+=(
  "Azurite is not installed in the project ($azurite_bin). Run: npm ci")
python=""
if [[ -x $venv_python && -f .venv/bin/activate ]]; then
  python=$venv_python
else
  missing+=("The Python virtual environment .venv is missing. Run: make install")
fi
mode=unknown
if [[ -n $python && -f $settings ]]; then
  if ! mode=$(servicebus_mode "$python" 2>&1); then
    missing+=("${mode#run-local: error: }")
    mode=unknown
  fi
fi
case $mode in
  conflict) missing+=(
  "$settings sets ServiceBusConnection__fullyQualifiedNamespace and also ServiceBusConnection,
  which the Functions host would use instead. To use the namespace, set ServiceBusConnection to \"\"") ;;
  emulator) docker_running || missing+=(
  "No Service Bus to use. Either
  - install Docker (and start it) so the Service Bus emulator can run from docker-compose.yml, or
  - put a real Service Bus in $settings: ServiceBusConnection (a connection string) or
    ServiceBusConnection__fullyQualifiedNamespace (with ServiceBusConnection set to \"\").
    Its queue (SERVICEBUS_QUEUE, default flux-events) must have sessions and duplicate detection
    enabled (Standard tier or above).") ;;
esac
if ((${#missing[@]})); then
  printf 'run-local: cannot start, %d prerequisite(s) missing:\n' "${#missing[@]}" >&2
  printf -- '- %s\n' "${missing[@]}" >&2
  exit 1
fi
servicebus_mode=$mode

# --- 3. Service Bus (before Azurite: the likeliest reason to stop) ----------------------------
emulator_healthy() {
  "$venv_python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "$emulator_health_url" >/dev/null 2>&1
}

case $servicebus_mode in
  namespace)
    say "Service Bus: the namespace in $settings (your az login needs the Service Bus data roles)" ;;
  connection)
    say "Service Bus: the connection string in $settings" ;;
  emulator)
    say "Service Bus: starting the emulator (docker compose up -d; first start pulls the images)"
    docker compose -f "$root/docker-compose.yml" up -d
    deadline=$((SECONDS + emulator_timeout))
    until emulator_healthy; do
      ((SECONDS < deadline)) ||
        die "the Service Bus emulator is not healthy after ${emulator_timeout}s ($emulator_health_url).
  See: docker compose logs servicebus-emulator"
      sleep 1
    done
    say "Service Bus emulator is healthy (it keeps running after this script: docker compose down)" ;;
esac

# --- 4. Azurite -------------------------------------------------------------------------------
azurite_pid=""
cleanup() {
  local pid
  trap - EXIT INT TERM
  for pid in ${func_pid:-} $azurite_pid; do
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in {1..50}; do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  [[ -z $azurite_pid ]] || say "stopped Azurite"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if listening "$table_port"; then
  say "something already listens on 127.0.0.1:$table_port: using it as Azurite, not starting one"
else
  say "starting Azurite (in memory) on 127.0.0.1: blob 10000, queue 10001, table $table_port"
  "$azurite_bin" --silent --disableTelemetry --inMemoryPersistence --skipApiVersionCheck \
    --blobHost 127.0.0.1 --queueHost 127.0.0.1 --tableHost 127.0.0.1 --tablePort "$table_port" &
  azurite_pid=$!
  deadline=$((SECONDS + azurite_timeout))
  until listening "$table_port"; do
    if ! kill -0 "$azurite_pid" 2>/dev/null; then
      azurite_pid=""
      die "Azurite exited while starting (ports 10000-10001 taken by another program?)"
    fi
    ((SECONDS < deadline)) ||
      die "Azurite did not listen on 127.0.0.1:$table_port within ${azurite_timeout}s"
    sleep 0.1
  done
fi

# --- 5. Functions host ------------------------------------------------------------------------
# Core Tools runs the worker with the active python.
# shellcheck disable=SC1091
source .venv/bin/activate
say "starting: func start $*"
func start "$@" &
func_pid=$!
wait "$func_pid"
