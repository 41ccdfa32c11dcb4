"""One list of settings in four places: the README table, `local.settings.sample.json`,
`connector/settings.py` and the Bicep app settings (parsed as in tests/unit/test_infra.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from connector.settings import HOST_SETTINGS, setting_names
from tests.unit.test_infra import HOST_READ, LOCAL_ONLY, app_settings

ROOT = Path(__file__).resolve().parents[2]
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


# --- the docs agree with each other and with the code (issue 27's fresh read, kept fixed) -------

DOCS = [
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "deploy").rglob("*.md")),
    *sorted((ROOT / "deploy").rglob("*.yaml")),
    *sorted((ROOT / "infra").rglob("*.bicep")),
    ROOT / "infra" / "main.bicepparam",
    ROOT / "azure.yaml",
    ROOT / "scripts" / "run-local.sh",
]
_PATH = re.compile(
    r"(?<![\w./-])((?:connector|tests|docs|infra|deploy|scripts|bench|pipelines|\.ci)/[\w./-]*"
    r"\.(?:py|md|json|bicepparam|bicep|sh|yml|yaml))"
)
# Named as the user's own copy, or a file of another project's repository, named as such.
YOUR_COPIES = {"infra/prod.bicepparam"}
OTHER_PROJECTS = re.compile(r"(?:Argo CD|Flux|notification-controller|fluxcd/pkg) $")
# The rule since per-cluster keys (connector/sources/origins.py): the key decides the cluster.
ORIGIN_RULE = (
    "`FLUX_CLUSTER_KEYS`",
    "`ENVIRONMENTS` lists",
    "`DEFAULT_ENV`",
    "403",
)


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _flat(path: Path) -> str:
    """The text with line breaks (and a Markdown list's indentation) as single spaces."""
    return " ".join(_text(path).split())


def test_every_repository_path_the_docs_name_exists() -> None:
    missing = []
    for doc in DOCS:
        text = _text(doc)
        for found in _PATH.finditer(text):
            path = found.group(1).rstrip(".")
            if OTHER_PROJECTS.search(text[max(0, found.start() - 30) : found.start()]):
                continue
            if path not in YOUR_COPIES and not (ROOT / path).exists():
                missing.append(f"{doc.relative_to(ROOT)}: {path}")
    assert missing == []


def test_no_doc_cites_a_file_outside_the_repository() -> None:
    outside = re.compile(r"shared/reference|/work/|\.\./\.\./")
    assert [str(d.relative_to(ROOT)) for d in DOCS if outside.search(_text(d))] == []


def test_pipelines_doc_lists_the_routes_keyless_auth_excludes() -> None:
    bicep = _text(ROOT / "infra" / "modules" / "pipeline-auth.bicep")
    excluded = re.search(r"param excludedPaths array = \[(.*?)\]", bicep, re.DOTALL)
    assert excluded
    paths = set(re.findall(r"'(/api/[^']+)'", excluded.group(1)))
    doc = _flat(ROOT / "docs" / "pipelines.md")
    sentence = doc.split("for every route except", 1)[1].split(", admitting", 1)[0]
    assert set(re.findall(r"`(/api/[^`]+)`", sentence)) == paths


def test_deploy_doc_names_the_one_connection_string_app_setting() -> None:
    connection_strings = {n for n in app_settings() if "CONNECTION_STRING" in n.upper()}
    doc = _text(ROOT / "docs" / "deploy.md")
    assert "No connection string, key or secret is in an app setting" not in doc
    assert all(f"`{name}`" in doc for name in connection_strings)


def test_the_parameters_file_azd_deploys_does_not_say_do_not_edit() -> None:
    assert "main.bicepparam" in _text(ROOT / "azure.yaml")
    assert "do not edit" not in _text(ROOT / "infra" / "main.bicepparam").lower()
    assert "`azd up`" in _text(ROOT / "docs" / "deploy.md")


def test_every_doc_gives_the_same_rule_for_cluster_and_environment() -> None:
    for doc in (
        ROOT / "README.md",
        ROOT / "docs" / "walkthrough.md",
        ROOT / "deploy/flux/README.md",
    ):
        text = _flat(doc)
        assert all(part in text for part in ORIGIN_RULE), doc.name
        assert "Events without `cluster`/`env` are rejected" not in text


def test_section_references_name_existing_sections() -> None:
    for doc in sorted((ROOT / "docs").glob("*.md")):
        text = _text(doc)
        headings = {h.strip() for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}
        for ref in re.findall(r'[Ss]ee "([^"]+)" (?:above|below)', text):
            assert ref in headings, f"{doc.name}: no section {ref!r}"


def test_one_set_of_example_cluster_names() -> None:
    walkthrough = _text(ROOT / "docs" / "walkthrough.md")
    row = re.search(r"^\| Alert `spec\.eventMetadata\.cluster` \|(.+)$", walkthrough, re.MULTILINE)
    assert row
    clusters = set(re.findall(r"`([^`]+)`", row.group(1)))
    bicepparam = _text(ROOT / "infra" / "main.bicepparam").split("param environments", 1)[1]
    listed = set(re.findall(r"'([^']+)'", bicepparam.split("\n}\n", 1)[0]))
    assert listed == clusters
    for doc in (ROOT / "README.md", ROOT / "docs" / "deploy.md"):
        named = re.findall(r"(?:\{cluster: |CLUSTER=\")([\w-]+)", _text(doc))
        assert named
        assert set(named) <= clusters, doc.name
    pipelines = _text(ROOT / "pipelines" / "azure-pipelines.yml")
    assert all(c in pipelines for c in clusters)


def test_the_azurite_endpoint_is_given_with_its_account_path() -> None:
    readme = _flat(ROOT / "README.md")
    assert "`AZURITE_TABLE_ENDPOINT`" in readme
    assert "`http://127.0.0.1:10002/devstoreaccount1`" in readme


def test_quick_start_names_the_system_prerequisites_and_promises_no_safety() -> None:
    quick = _flat(ROOT / "README.md").split("## Quick start", 1)[1].split("## Endpoints", 1)[0]
    for needed in ("make", "Python 3.11+", "`python3-venv`", "Node.js 20+", "Compose", "7071"):
        assert needed in quick, needed
    assert "safely" not in quick
    assert "public" in quick  # the sample key is
    assert "after `make install`" in _flat(ROOT / "docs" / "deploy.md")


def test_run_local_says_core_tools_download_at_install() -> None:
    script = _text(ROOT / "scripts" / "run-local.sh")
    assert "on first use" not in script
    assert "its install downloads the host" in script
