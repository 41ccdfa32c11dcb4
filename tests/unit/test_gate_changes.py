"""A stored gate changes only by a named transition of `connector.core.gate_transitions`: no
`GateStore.update` in the gates package is given an ad-hoc function, and no module there edits
a gate with `dataclasses.replace` (registration builds new gates, and may)."""

from __future__ import annotations

import ast
from pathlib import Path

import connector.gates
from connector.core import gate_transitions

GATES = Path(connector.gates.__file__).parent
BUILDS_NEW_GATES = {"registration.py"}


def modules() -> list[tuple[str, ast.Module]]:
    return [(p.name, ast.parse(p.read_text(encoding="utf-8"))) for p in sorted(GATES.glob("*.py"))]


def updates(tree: ast.Module) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "update"
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr == "_gates"
    ]


def test_every_store_update_applies_a_named_transition():
    applied = set()
    for name, tree in modules():
        for call in updates(tree):
            transition = call.args[1]
            assert isinstance(transition, ast.Attribute), f"{name}:{call.lineno}"
            assert isinstance(transition.value, ast.Name), f"{name}:{call.lineno}"
            assert transition.value.id == "transitions", f"{name}:{call.lineno}"
            assert callable(getattr(gate_transitions, transition.attr)), transition.attr
            applied.add(transition.attr)
    # Every transition of a stored gate is applied somewhere (`register`: by `GateStore.add`).
    assert applied == {
        "claim",
        "reclaim",
        "release_claim",
        "count_post",
        "throttled",
        "finish",
        "reopen_after_trial",
        "record_progress",
        "record_log_id",
        "see_descendant",
        "learn_commit",
        "learn_hld_commit",
        "learn_link",
        "record_link_problem",
    }


def test_no_gate_is_edited_outside_the_transitions():
    for name, tree in modules():
        if name in BUILDS_NEW_GATES:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                assert node.id != "replace", f"{name}:{node.lineno}"
