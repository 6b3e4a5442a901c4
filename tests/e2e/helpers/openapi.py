"""Validation of conkerd's real answers against docs/openapi.yaml (OpenAPI 3.1, whose schemas are
JSON Schema 2020-12), with Debian's python3-jsonschema and python3-yaml."""

import re
from pathlib import Path

import jsonschema
import yaml

SPEC_PATH = Path(__file__).resolve().parents[3] / "docs" / "openapi.yaml"
PREFIX = "/sw/api/v1"


class OpenApi:
    def __init__(self, path: Path = SPEC_PATH):
        with open(path) as f:
            self.doc = yaml.safe_load(f)
        self.resolver = jsonschema.RefResolver.from_schema(self.doc)
        self.seen: set[tuple[str, str]] = set()
        # Path templates as regular expressions, literal paths first (/container/cancel must not
        # match /container/{id}).
        self.paths = sorted(self.doc["paths"], key=lambda p: ("{" in p, p))
        self.patterns = [(p, re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$")) for p in self.paths]

    def check_document(self):
        """The document's own structure: version, every schema valid under JSON Schema 2020-12,
        every operation with a 200 and a default (error) answer, every $ref resolvable."""
        assert self.doc["openapi"].startswith("3.1"), self.doc["openapi"]
        for name, schema in self.doc["components"]["schemas"].items():
            jsonschema.Draft202012Validator.check_schema(schema)
        for path, item in self.doc["paths"].items():
            for method, op in item.items():
                if method in ("parameters", "servers"):
                    continue
                assert "200" in op["responses"] and "default" in op["responses"], (path, method)
                for code, resp in op["responses"].items():
                    self.response_schema(path, method, code)

        def walk(node):
            if isinstance(node, dict):
                if "$ref" in node:
                    self.resolver.resolve(node["$ref"])
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)
        walk(self.doc)

    def template(self, url_path: str) -> str | None:
        # The one path outside the prefix (its own `servers` entry in the document).
        if url_path.split("?")[0] == "/metrics":
            return "/metrics"
        rest = url_path[len(PREFIX):].split("?")[0] if url_path.startswith(PREFIX) else None
        for p, rx in self.patterns:
            if rest is not None and rx.match(rest):
                return p
        return None

    def response_schema(self, path: str, method: str, code) -> tuple[str, dict]:
        op = self.doc["paths"][path][method.lower()]
        resp = op["responses"].get(str(code)) or op["responses"]["default"]
        if "$ref" in resp:
            resp = self.resolver.resolve(resp["$ref"])[1]
        (ctype, media), = resp["content"].items()
        return ctype, media["schema"]

    def validate_instance(self, schema: dict, instance):
        jsonschema.Draft202012Validator(schema, resolver=self.resolver).validate(instance)

    def validate_component(self, name: str, instance):
        self.validate_instance({"$ref": f"#/components/schemas/{name}"}, instance)

    def validate(self, method: str, url_path: str, response):
        """One real answer (a requests.Response) against the document; records the operation."""
        path = self.template(url_path)
        if path is None or method.lower() not in self.doc["paths"][path]:
            # Not an operation of the document: it must be refused (404 no such route, 405 with
            # Allow, or 401 before either) with the error envelope.
            assert response.status_code in (401, 404, 405), (method, url_path, response.status_code)
            body = response.json()
            assert body["code"] == response.status_code, body
            self.validate_component("ErrorEnvelope", body)
            return
        ctype, schema = self.response_schema(path, method, response.status_code)
        got = response.headers.get("Content-Type", "").split(";")[0].strip()
        assert got == ctype, f"{method} {url_path}: Content-Type {got!r}, documented {ctype!r}"
        if ctype == "application/json":
            body = response.json()
            assert body["code"] == response.status_code, body
            self.validate_instance(schema, body)
        else:
            self.validate_instance(schema, response.text)
        self.seen.add((method.lower(), path))

    def operations(self) -> set[tuple[str, str]]:
        return {(m, p) for p, item in self.doc["paths"].items() for m in item if m not in ("parameters", "servers")}
