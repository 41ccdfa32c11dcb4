"""Names that travel everywhere, rule by rule: origin names (cluster, environment) and the parts
of an object reference. Kubernetes' limits: object names are DNS-1123 subdomains of at most 253
characters (apimachinery `validation.DNS1123SubdomainMaxLength`) and may not contain '/'
(apimachinery `path.IsValidPathSegmentName`)."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from connector.core.names import ORIGIN_NAME, ObjectPart, parse_object_reference

PART = TypeAdapter(ObjectPart)


@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        ("aks-dev-1", True),
        ("A", True),
        ("0", True),
        ("prod.eu_west-2", True),
        ("x" * 63, True),
        ("x" * 64, False),  # 63 like a DNS label: it ends up in session ids and table keys
        ("", False),
        ("-dev", False),
        (".dev", False),
        ("_dev", False),
        ("dev 1", False),
        ("dev/1", False),
        ("dév", False),
    ],
)
def test_origin_names(name, accepted):
    assert (ORIGIN_NAME.fullmatch(name) is not None) == accepted


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("Kustomization/flux-system/apps", ("Kustomization", "flux-system", "apps")),
        ("Application/argocd/guest book", ("Application", "argocd", "guest book")),
        (f"K/n/{'x' * 253}", ("K", "n", "x" * 253)),
        ("K/n/a\xa0b", ("K", "n", "a\xa0b")),  # past the C1 controls: allowed
    ],
)
def test_object_references_accepted(text, parts):
    assert parse_object_reference(text) == parts


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Kustomization/apps", "must be Kind/namespace/name"),
        ("K/n/a/b", "must be Kind/namespace/name"),
        ("K//apps", "Kind, namespace and name must be 1-253 characters"),
        ("/n/apps", "Kind, namespace and name must be 1-253 characters"),
        (f"K/n/{'x' * 254}", "Kind, namespace and name must be 1-253 characters"),
        ("K/n/a\x00b", "must not contain '/' or control characters"),
        ("K/n\x1f/a", "must not contain '/' or control characters"),
        ("K\x7f/n/a", "must not contain '/' or control characters"),
        ("K/n/a\x9f", "must not contain '/' or control characters"),
    ],
)
def test_object_references_refused_with_the_rule_broken(text, problem):
    with pytest.raises(ValueError, match="^" + problem.replace("'", ".") + "$"):
        parse_object_reference(text)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "at least 1 character"),
        ("x" * 254, "at most 253 characters"),
        ("apps/x", "must not contain '/' or control characters"),
        ("a\nb", "must not contain '/' or control characters"),
    ],
)
def test_an_object_part_in_a_model_names_the_rule_broken(value, problem):
    with pytest.raises(ValidationError) as caught:
        PART.validate_python(value)
    assert problem in caught.value.errors()[0]["msg"]


def test_an_object_part_at_the_limit_is_kept_as_it_is():
    assert PART.validate_python("x" * 253) == "x" * 253
    assert PART.validate_python(" a ") == " a "
