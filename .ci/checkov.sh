#!/usr/bin/env bash
# Static analysis of the Bicep templates in infra/ with checkov.
#
# checkov pins many packages (pycep-parser, boto3, ...), so it lives in its own venv,
# .venv-checkov, installed from its lock requirements-checkov.txt (exact versions, hashes
# checked; `make lock` writes it from requirements-checkov.in) and installed again whenever that
# lock changes. Runs offline (--skip-download: no calls to the guidelines API).
#
# Fails (exit 1) when a check fails, when a file cannot be parsed (checkov itself still exits 0
# on parse errors) or when nothing was scanned. Checks we deliberately do not satisfy are skipped
# inside the resource body with `// checkov:skip=CKV_...: reason`, never on the command line,
# so every exception sits next to the code it excuses.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=${CHECKOV_VENV:-.venv-checkov}
PYTHON=${PYTHON:-python3}
INFRA_DIR=${INFRA_DIR:-infra}
LOCK=requirements-checkov.txt

# The marker holds the hash of the lock it was installed from.
wanted=$(sha256sum "$LOCK" | cut -d' ' -f1)
if [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$wanted" ]; then
  echo "checkov.sh: installing checkov into $VENV from $LOCK" >&2
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  install_log=$(mktemp)
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --require-hashes \
    -r "$LOCK" >"$install_log" 2>&1; then
    tail -n 40 "$install_log" >&2
    rm -f "$install_log"
    echo "checkov.sh: FAILED: could not install checkov into $VENV" >&2
    exit 1
  fi
  rm -f "$install_log"
  echo "$wanted" >"$VENV/.installed"
fi

report=$(mktemp)
errors=$(mktemp)
trap 'rm -f "$report" "$errors"' EXIT

# checkov exits 1 when a check fails; the verdict below is taken from the report instead.
set +e
"$VENV/bin/checkov" -d "$INFRA_DIR" --framework bicep --skip-download --compact -o json \
  >"$report" 2>"$errors"
checkov_rc=$?
set -e

"$VENV/bin/python" - "$report" "$errors" "$checkov_rc" <<'PY'
import json
import sys

report_path, errors_path, rc = sys.argv[1], sys.argv[2], int(sys.argv[3])


def fail(message: str) -> None:
    print(f"checkov.sh: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


try:
    with open(report_path, encoding="utf-8") as fh:
        data = json.load(fh)
except (OSError, ValueError) as exc:
    with open(errors_path, encoding="utf-8", errors="replace") as fh:
        sys.stderr.write(fh.read()[-4000:])
    fail(f"checkov produced no JSON report (exit code {rc}): {exc}")

# One framework -> one object; several -> a list. With nothing to scan checkov prints only
# the bare summary object.
reports = data if isinstance(data, list) else [data]
totals = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0, "resource_count": 0}
failed, parse_errors, skipped = [], [], []
for rep in reports:
    summary = rep.get("summary", rep)
    for key in totals:
        totals[key] += int(summary.get(key, 0) or 0)
    results = rep.get("results", {})
    failed += results.get("failed_checks", [])
    skipped += results.get("skipped_checks", [])
    parse_errors += results.get("parsing_errors", [])

for check in failed:
    where = f"{check.get('file_path')}:{'-'.join(map(str, check.get('file_line_range') or []))}"
    print(
        f"  FAILED {check.get('check_id')} {check.get('resource')} ({where}): "
        f"{check.get('check_name')}",
        file=sys.stderr,
    )
for path in parse_errors:
    print(f"  PARSING ERROR {path}", file=sys.stderr)
for check in skipped:
    reason = (check.get("check_result") or {}).get("suppress_comment", "")
    print(f"  skipped {check.get('check_id')} {check.get('resource')}: {reason}")

print(
    "checkov: passed={passed} failed={failed} skipped={skipped} "
    "parsing_errors={parsing_errors} resources={resource_count}".format(**totals)
)
if totals["parsing_errors"] > 0:
    fail(f"{totals['parsing_errors']} Bicep file(s) could not be parsed (see above)")
if totals["failed"] > 0:
    fail(f"{totals['failed']} check(s) failed; fix them or skip inside the resource with a reason")
if totals["resource_count"] == 0:
    fail("no Bicep resource was scanned")
print("checkov.sh: OK")
PY
