#!/usr/bin/env bash
# Run the function app on this machine: `make run` (extra arguments go to the host).
#
# Two hosts; RUN_LOCAL_HOST=func or RUN_LOCAL_HOST=embedded asks for one, else:
#   func      Azure Functions Core Tools v4 (`func start`) when `func` is installed and a Service
#             Bus is usable: the one named in local.settings.json, or the emulator from
#             docker-compose.yml with Docker running (left running: `docker compose down`).
#             Azurite (in memory) from node_modules, stopped when this script exits.
#   embedded  otherwise: `python -m connector serve` (connector/app/local/serve.py) runs
#             function_app.py itself with a file-backed queue and its own Azurite, data kept in
#             .local-run/; nothing but Python and Node.
#
# Order: local.settings.json first (so that it exists to edit whatever fails next); then every
# system prerequisite, checked before anything is installed and reported at once with a fix for
# this machine; then `make install`; then the host.
#
# Knobs (environment): RUN_LOCAL_HOST, PYTHON (python3), RUN_LOCAL_PORT (Host.LocalHttpPort, else
# 7071), SERVICEBUS_EMULATOR_HEALTH_URL, SERVICEBUS_EMULATOR_TIMEOUT (s), AZURITE_TABLE_PORT
# (default 10002, must match AzureWebJobsStorage), AZURITE_TIMEOUT (s).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

venv_python=.venv/bin/python
azurite_bin=node_modules/.bin/azurite
settings=local.settings.json
sample=local.settings.sample.json
system_python=${PYTHON:-python3}
wanted_host=${RUN_LOCAL_HOST:-auto}
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

# --- 2. What this machine has -------------------------------------------------------------------
# A fix that works here: the package manager this machine has, else the download page.
fix() {
  local what=$1
  if [[ ${OSTYPE:-} == darwin* ]] && command -v brew >/dev/null 2>&1; then
    case $what in
      python) echo "brew install python@3.12" ;;
      node) echo "brew install node" ;;
      make) echo "xcode-select --install" ;;
      docker-start) echo "open -a Docker (Docker Desktop)" ;;
      docker) echo "brew install --cask docker, then open -a Docker" ;;
      compose) echo "Docker Desktop includes it: update Docker Desktop" ;;
    esac
  elif command -v apt-get >/dev/null 2>&1; then
    case $what in
      python) echo "sudo apt-get install python3 python3-venv (3.11 or later)" ;;
      node) echo "sudo apt-get install nodejs npm (20 or later; older releases: https://nodejs.org/en/download)" ;;
      make) echo "sudo apt-get install make" ;;
      docker-start) echo "sudo systemctl start docker" ;;
      docker) echo "sudo apt-get install docker.io docker-compose-v2 (or https://docs.docker.com/engine/install/)" ;;
      compose) echo "sudo apt-get install docker-compose-v2 (or docker-compose-plugin from Docker's repository)" ;;
    esac
  elif command -v dnf >/dev/null 2>&1; then
    case $what in
      python) echo "sudo dnf install python3.11" ;;
      node) echo "sudo dnf install nodejs npm" ;;
      make) echo "sudo dnf install make" ;;
      docker-start) echo "sudo systemctl start docker" ;;
      docker) echo "see https://docs.docker.com/engine/install/fedora/" ;;
      compose) echo "sudo dnf install docker-compose-plugin" ;;
    esac
  else
    case $what in
      python) echo "install Python 3.11+ with venv from https://www.python.org/downloads/" ;;
      node) echo "install Node.js 20+ (with npm) from https://nodejs.org/en/download" ;;
      make) echo "install GNU make with your package manager" ;;
      docker-start) echo "start the Docker daemon (Docker Desktop, or: sudo systemctl start docker)" ;;
      docker) echo "https://docs.docker.com/get-docker/" ;;
      compose) echo "https://docs.docker.com/compose/install/" ;;
    esac
  fi
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

missing=()
have_python=0
if ! command -v "$system_python" >/dev/null 2>&1; then
  missing+=("Python 3.11 or later ($system_python) is not on PATH. Fix: $(fix python)")
elif ! "$system_python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  missing+=("$("$system_python" --version 2>&1) is too old: 3.11 or later is needed. Fix: $(fix python), then PYTHON=python3.11 make run")
elif [[ ! -x $venv_python ]] && ! "$system_python" -c 'import ensurepip, venv' 2>/dev/null; then
  missing+=("Python's venv module is missing (needed to create .venv). Fix: $(fix python)")
else
  have_python=1
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=("Node.js and npm (20 or later) are not on PATH; Azurite runs on Node. Fix: $(fix node)")
else
  node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  ((node_major >= 20)) || missing+=(
    "Node.js $node_major is too old: 20 or later is needed (Azurite). Fix: $(fix node)")
fi
command -v "${RUN_LOCAL_MAKE:-make}" >/dev/null 2>&1 || missing+=(
  "make is not on PATH (it installs the dependencies). Fix: $(fix make)")

# Which Service Bus does local.settings.json name? namespace | connection | emulator | conflict
servicebus_mode() {
  "$system_python" - "$settings" <<'PY'
import json
import sys

try:
    with open(sys.argv[1], encoding="utf-8") as f:
        doc = json.load(f)
    values = doc.get("Values") or {}
    port = (doc.get("Host") or {}).get("LocalHttpPort") or 7071
except (OSError, ValueError, AttributeError) as exc:
    sys.exit(f"run-local: error: {sys.argv[1]} is not a valid settings file: {exc}")
conn = str(values.get("ServiceBusConnection") or "").strip()
namespace = str(values.get("ServiceBusConnection__fullyQualifiedNamespace") or "").strip()
emulator = "usedevelopmentemulator=true" in conn.replace(" ", "").lower()
if namespace:
    # The Functions host prefers a connection string over the namespace, so the emulator's
    # string would silently win.
    mode = "conflict" if conn else "namespace"
elif conn and not emulator:
    mode = "connection"
else:
    mode = "emulator"
print(mode, port)
PY
}

mode=unknown
port=7071
if ((have_python)) && [[ -f $settings ]]; then
  if answer=$(servicebus_mode 2>&1); then
    read -r mode port <<<"$answer"
  else
    missing+=("${answer#run-local: error: }")
  fi
fi
[[ -f $settings ]] || missing+=(
  "$sample is missing, so $settings cannot be created. Restore it: git checkout -- $sample")
port=${RUN_LOCAL_PORT:-$port}

# The Functions host needs `func` and a Service Bus; each reason it cannot run is kept, so that
# the embedded host can say why it runs instead (or RUN_LOCAL_HOST=func can list them all).
[[ -x $core_tools_dir/node_modules/.bin/func ]] && PATH="$root/$core_tools_dir/node_modules/.bin:$PATH"
func_blockers=()
command -v func >/dev/null 2>&1 || func_blockers+=(
  "Azure Functions Core Tools v4 ('func') is not installed. Fix: npm i -g azure-functions-core-tools@4
  (its install downloads the host, about 200 MB) or https://learn.microsoft.com/azure/azure-functions/functions-run-local")
case $mode in
  conflict) func_blockers+=(
  "$settings sets ServiceBusConnection__fullyQualifiedNamespace and also ServiceBusConnection,
  which the Functions host would use instead. To use the namespace, set ServiceBusConnection to \"\"") ;;
  emulator)
    if ! command -v docker >/dev/null 2>&1; then
      func_blockers+=("Docker is not installed (the Service Bus emulator runs in it). Fix: $(fix docker);
  or put a real Service Bus in $settings: ServiceBusConnection (a connection string) or
  ServiceBusConnection__fullyQualifiedNamespace (with ServiceBusConnection set to \"\"), its queue
  with sessions and duplicate detection enabled (Standard tier or above)")
    elif ! docker info >/dev/null 2>&1; then
      func_blockers+=("Docker is installed but its daemon is not running (or not reachable by you).
  Fix: $(fix docker-start); or put a real Service Bus in $settings (ServiceBusConnection or
  ServiceBusConnection__fullyQualifiedNamespace; sessions and duplicate detection enabled)")
    elif ! docker compose version >/dev/null 2>&1; then
      func_blockers+=("Docker runs, but its Compose plugin ('docker compose') is missing. Fix: $(fix compose)")
    fi ;;
esac

case $wanted_host in
  func) host=func; missing+=("${func_blockers[@]}") ;;
  embedded) host=embedded ;;
  auto) if ((${#func_blockers[@]})); then host=embedded; else host=func; fi ;;
  *) missing+=("RUN_LOCAL_HOST is '$wanted_host': use func, embedded or leave it unset") ;;
esac
if [[ $mode != unknown ]] && listening "$port"; then
  missing+=("Port $port is in use by another program (another make run?). Stop it, or use
  RUN_LOCAL_PORT=<port> (the embedded host) / Host.LocalHttpPort in $settings")
fi

if ((${#missing[@]})); then
  printf 'run-local: cannot start, %d prerequisite(s) missing:\n' "${#missing[@]}" >&2
  printf -- '- %s\n' "${missing[@]}" >&2
  exit 1
fi

# --- 3. Install (a no-op when up to date) -------------------------------------------------------
say "installing the dependencies (make install: .venv and node_modules)"
"${RUN_LOCAL_MAKE:-make}" --no-print-directory install >&2 || die "make install failed (see above)"
[[ -x $venv_python ]] || die "make install did not create $venv_python"
[[ -x $azurite_bin ]] || die "make install did not install Azurite ($azurite_bin): run npm ci"

# --- 4a. The embedded host ----------------------------------------------------------------------
if [[ $host == embedded ]]; then
  if [[ $wanted_host == auto ]]; then
    say "not using Azure Functions Core Tools, because:"
    printf '  - %s\n' "${func_blockers[@]}" >&2
  fi
  say "starting the embedded host: python -m connector serve (function_app.py on 127.0.0.1:$port)"
  exec "$venv_python" -m connector serve --settings "$settings" --port "$port" "$@"
fi

# --- 4b. Core Tools: Service Bus (before Azurite: the likeliest reason to stop) ----------------
emulator_healthy() {
  "$venv_python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "$emulator_health_url" >/dev/null 2>&1
}

case $mode in
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

# --- 5. Azurite -------------------------------------------------------------------------------
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

# --- 6. Functions host ------------------------------------------------------------------------
# Core Tools runs the worker with the active python. It listens on every interface: trial mode
# and the sample key only ever belong on a trusted network.
# shellcheck disable=SC1091
source .venv/bin/activate
say "starting: func start $*"
func start "$@" &
func_pid=$!
wait "$func_pid"
