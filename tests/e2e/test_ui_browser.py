"""The on-call pages in a real browser: headless Chromium (Debian's, driven by playwright-core
from `tests/browser/ui.mjs`) after a dev → prod rollout processed for real into Azurite, served by
a loopback HTTP server that calls the registered `ui` function. What is asserted there: the text,
states, pending list and links a person sees, the refresh picking up a new event without a
reload, no console error, no CSP violation, no sideways scrolling on a phone. Screenshots (desktop
1440 px, phone 390 px) go to `artifacts/ui/` (the CI artifact folder, git-ignored).

Locally, without Chromium the test is skipped and says why; in CI (`CI=true`) it fails instead:
`.ci/run` installs Chromium before `make test`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.ui_scenario import NEW, next_event, rollout, serving

pytestmark = pytest.mark.azurite

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "ui"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
DRIVER = ROOT / "tests" / "browser" / "ui.mjs"


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)"
    if not (ROOT / "node_modules" / "playwright-core").exists():
        return "playwright-core not installed (npm ci)"
    if shutil.which("node") is None:
        return "node not found"
    return None


def test_pages_in_a_real_browser(world) -> None:
    missing = _missing()
    if missing is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the browser test: {missing}")
        pytest.skip(missing)
    node = shutil.which("node") or "node"
    rollout(world)
    with serving(lambda name: next_event(world) if name == "next" else None) as base:
        done = subprocess.run(  # noqa: S603 - our own driver, fixed arguments
            [node, str(DRIVER), base, NEW, str(ARTIFACTS)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("index-desktop", "index-phone", "commit-desktop", "commit-phone"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000, name
