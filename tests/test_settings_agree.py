"""One list of settings in four places: the README table, `local.settings.sample.json`,
`connector/settings.py` and the Bicep app settings (parsed as in tests/test_infra.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from connector.settings import HOST_SETTINGS, setting_names
from tests.test_infra import HOST_READ, LOCAL_ONLY, app_settings

ROOT = Path(__file__).resolve().parent.parent
# Set by Core Tools' own template and by the platform in Azure; nobody configures it by hand.
WORKER_RUNTIME = "FUNCTIONS_WORKER_RUNTIME"


def readme_settings() -> set[str]:
    """Names in the first column of the README's Configuration table. `(+ `__credential`)`
    extends the name before it: `X__a` (+ `__b`) means `X__a` and `X__b`."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first = line.split("|")[1]
        base = ""
        for name in re.findall(r"`([^`]+)`", first):
            if name.startswith("__"):
                names.add(base.split("__", 1)[0] + name)
            else:
                names.add(name)
                base = name
    return names


def sample_settings() -> set[str]:
    doc = json.loads((ROOT / "local.settings.sample.json").read_text(encoding="utf-8"))
    return set(doc["Values"])


def test_readme_table_lists_exactly_the_sample_settings() -> None:
    readme = readme_settings()
    sample = sample_settings() - {WORKER_RUNTIME}

    assert sorted(sample - readme) == [], "in the sample, missing from the README table"
    assert sorted(readme - sample) == [], "in the README table, missing from the sample"


def test_sample_holds_what_the_code_and_the_host_read() -> None:
    assert sample_settings() == setting_names() | set(HOST_SETTINGS)


def test_bicep_sets_only_documented_or_host_internal_settings() -> None:
    bicep = set(app_settings())

    undocumented = sorted(bicep - readme_settings() - set(HOST_READ))
    assert undocumented == [], "set in infra/ but not in the README table"
    not_in_azure = sorted(readme_settings() - bicep - set(LOCAL_ONLY))
    assert not_in_azure == [], "documented but neither set in infra/ nor local-only"
