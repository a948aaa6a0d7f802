"""The contract document and a checker of real exchanges against it (shared by the unit and integration tests)."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from paths import REPO

DOC_PATH = REPO / "reference_backend" / "openapi.yaml"
DOC = yaml.safe_load(DOC_PATH.read_text())
METHODS = ("get", "put", "post", "delete", "patch")


def deref(node: dict) -> dict:
    """Follow a local ``$ref`` (``#/components/...``) to what it names."""
    while isinstance(node, dict) and "$ref" in node and len(node) == 1:
        target: Any = DOC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


class Conformance:
    """Checks real exchanges against the document and remembers which ones it saw."""

    def __init__(self) -> None:
        self.routes = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"), template) for template in DOC["paths"]
        ]
        self.seen: set[tuple[str, str, int]] = set()

    def template(self, path: str) -> str | None:
        for regex, template in self.routes:
            if regex.match(path):
                return template
        return None

    def check(self, method: str, path: str, status: int, ctype: str, raw: bytes) -> None:
        template = self.template(path)
        assert template is not None, f"{path} is not a documented path (status {status})"
        item = DOC["paths"][template]
        operation = item.get(method.lower())
        if operation is None:  # a method the path does not have: its 405 is documented on the others
            assert status == 405, f"{method} {template} undocumented but answered {status}"
            for other in (m for m in METHODS if m in item):
                self.check(other, path, status, ctype, raw)
            return
        responses = operation["responses"]
        assert str(status) in responses, f"{method} {template} answered {status}, documented {sorted(responses)}"
        response = deref(responses[str(status)])
        media = ctype.split(";")[0].strip()
        assert media in response["content"], f"{method} {template} {status}: {media} not documented"
        if media == "application/json":
            schema = dict(deref(response["content"][media]["schema"]))
            validator = Draft202012Validator({**schema, "components": DOC["components"]})
            errors = sorted(validator.iter_errors(json.loads(raw)), key=str)
            assert not errors, f"{method} {path} {status}: {errors[0].message} in {raw[:300]!r}"
        self.seen.add((method.upper(), template, status))
