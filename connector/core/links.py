"""What a manifests commit says it was rendered from, read from its message and files. Pure.

In the three-repository flow a generation pipeline renders the HLD repository into the manifests
repository that Flux pulls, so a gate waiting for an HLD change needs to know which HLD commit a
deployed manifests commit carries. A commit can say so in three ways, taken in this order:

1. a git trailer `HLD-Commit: <40-hex sha>` (and `HLD-Pull-Request: <n>`), in the message's
   trailer block as `git interpret-trailers` reads it: the last paragraph, keys matched
   case-insensitively (git-interpret-trailers(1));
2. pull-request claims anywhere in the message: Azure Repos' merge message `Merged PR N:` (which
   Bedrock's generation pipeline copies after `Updated k8s manifest files post commit: `),
   GitHub's `Merge pull request #N from`, and the configured `PR_NUMBER_PATTERNS`;
3. Argo CD's Source Hydrator: the `drySha` of the hydrated commit's root `hydrator.metadata`
   file (Argo CD user guide, "Source Hydrator", "Commit Tracing").

These are claims only: `devops.links` verifies each against Azure DevOps before anything may
rely on it, and records the verified result as a `Link`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

HLD_COMMIT_TRAILER: Final = "hld-commit"
HLD_PULL_REQUEST_TRAILER: Final = "hld-pull-request"
HYDRATOR_METADATA: Final = "/hydrator.metadata"  # at the root of the hydrated commit

_SHA = re.compile(r"^[0-9a-fA-F]{40}$")
# A trailer line: a token of letters, digits and hyphens, a colon, a value (git's default
# separator is ':'). A line starting with whitespace continues the previous trailer's value.
_TRAILER = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*?)\s*$")
# Claims recognised anywhere in a message, whatever the configuration: Azure Repos' default
# merge message ("Merged PR 42: <title>", also inside Bedrock's "Updated k8s manifest files
# post commit: Merged PR 42: …") and GitHub's ("Merge pull request #42 from owner/branch").
BUILT_IN_CLAIMS: Final = (
    re.compile(r"\bMerged PR (\d+):"),
    re.compile(r"\bMerge pull request #?(\d+) from\b"),
)


def trailers(message: str) -> dict[str, str]:
    """The message's trailers, keys lowercased (the last value of a repeated key wins).

    The trailer block is the last paragraph, and only when the message has a paragraph before it
    (a lone subject line is never trailers) and every line of it is a trailer or continues one:
    stricter than git, which also accepts a block that is a quarter trailers when one of them is
    git-generated. Stricter is safe here: a missed trailer leaves a gate waiting and says why; a
    false one could complete it.
    """
    paragraphs = [p for p in re.split(r"\n[ \t]*\n", message.strip().replace("\r\n", "\n")) if p]
    if len(paragraphs) < 2:
        return {}
    found: dict[str, str] = {}
    last: str | None = None
    for line in paragraphs[-1].split("\n"):
        if line[:1] in (" ", "\t") and last is not None:
            found[last] = f"{found[last]} {line.strip()}".strip()
            continue
        match = _TRAILER.match(line)
        if match is None:
            return {}
        last = match.group(1).lower()
        found[last] = match.group(2)
    return found


def trailer_commit(message: str) -> str | None:
    """The `HLD-Commit` trailer's SHA (lowercase), if the message has a well-formed one."""
    value = trailers(message).get(HLD_COMMIT_TRAILER, "")
    return value.lower() if _SHA.match(value) else None


def claimed_pull_requests(message: str, patterns: Iterable[re.Pattern[str]] = ()) -> set[int]:
    """PR numbers the message claims: the built-in merge messages, the configured patterns (group
    1 is the number) and an `HLD-Pull-Request` trailer."""
    claims = {
        int(match.group(1))
        for pattern in (*BUILT_IN_CLAIMS, *patterns)
        for match in pattern.finditer(message)
        if match.group(1).isdigit()
    }
    trailer = trailers(message).get(HLD_PULL_REQUEST_TRAILER, "").removeprefix("#")
    if trailer.isdigit():
        claims.add(int(trailer))
    return claims


def hydrator_dry_sha(text: str | None) -> str | None:
    """`drySha` of a `hydrator.metadata` file (JSON), lowercase; None if absent or malformed."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    value = data.get("drySha") if isinstance(data, dict) else None
    return value.lower() if isinstance(value, str) and _SHA.match(value) else None


@dataclass(frozen=True)
class Link:
    """What a manifests commit was verified to carry, as `devops.links` found it.

    `hld_commits`: commits of the change repository (the HLD repository; in a single-repository
    setup, the manifests repository itself) whose content the manifests commit carries: every
    ancestor of one of them is carried too. `pull_requests`: completed PRs, each with its merge
    commit, that the commit was verified to carry. `via`: how it was found ("trailer",
    "pull request", "hydrator"; "" when nothing links it). `problem`: for people, why nothing
    (or not everything) links, and how to add the link.
    """

    hld_commits: tuple[str, ...] = ()
    pull_requests: Mapping[int, str] | None = None  # PR id → merge commit
    via: str = ""
    problem: str = ""

    @property
    def merged(self) -> Mapping[int, str]:
        return self.pull_requests or {}

    @property
    def linked(self) -> bool:
        return bool(self.hld_commits)

    def to_json(self) -> dict[str, Any]:
        return {
            "hld": list(self.hld_commits),
            "prs": {str(pr): merge for pr, merge in sorted(self.merged.items())},
            "via": self.via,
            "problem": self.problem,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Link:
        prs = data.get("prs") or {}
        return cls(
            hld_commits=tuple(str(c) for c in data.get("hld") or ()),
            pull_requests={int(pr): str(merge) for pr, merge in prs.items()},
            via=str(data.get("via") or ""),
            problem=str(data.get("problem") or ""),
        )


def unlinked_problem(commit: str, claims: Sequence[str]) -> str:
    """Why a manifests commit links to nothing, and how to add the link (for people)."""
    tried = "; ".join(claims) if claims else "its message names no HLD commit or pull request"
    return (
        f"manifests commit {commit[:8]} is not linked to an HLD commit ({tried}): have the "
        f"generation pipeline add the trailer 'HLD-Commit: <HLD commit SHA>' to its commit "
        f"message (docs/three-repositories.md)"
    )
