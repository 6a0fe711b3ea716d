"""`GET /openapi.json` documents every route of the app (the fuzz stage, tests/e2e/test_fuzz_openapi.py,
tests only what it documents), secures exactly the admin routes, and is a valid OpenAPI 3 document."""

from __future__ import annotations

import re
from typing import Any

from tests.http.conftest import Env

#: Verbs every route answers without documenting them.
_IMPLICIT = {"HEAD", "OPTIONS"}


def _documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(verb.upper(), path) for path, item in doc["paths"].items() for verb in item}


def test_every_route_is_documented(shared_env: Env) -> None:
    doc = shared_env.client.get("/openapi.json").get_json()
    routes = {
        (verb, re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule))
        for rule in shared_env.app.url_map.iter_rules()
        if rule.endpoint != "static"
        for verb in (rule.methods or set()) - _IMPLICIT
    }
    assert routes - _documented(doc) == set()
    assert _documented(doc) - routes == {
        ("POST", f"/models/{name}/methods/{method}")
        for name, loaded in shared_env.registry.snapshot().items()
        for method in loaded.contract.method_names()
    }


def test_admin_routes_are_secured_by_the_bearer_scheme(shared_env: Env) -> None:
    doc = shared_env.client.get("/openapi.json").get_json()
    assert doc["components"]["securitySchemes"] == {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "description": doc["components"]["securitySchemes"]["bearerAuth"]["description"],
        }
    }
    secured = {
        (verb.upper(), path)
        for path, item in doc["paths"].items()
        for verb, op in item.items()
        if op.get("security") == [{"bearerAuth": []}]
    }
    admin = {
        (verb, re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule))
        for rule in shared_env.app.url_map.iter_rules()
        if rule.endpoint.startswith("admin.")
        for verb in (rule.methods or set()) - _IMPLICIT
    }
    assert (
        secured
        == admin
        == {
            ("PUT", "/models/{name}"),
            ("PUT", "/models/{name}/proto"),
            ("POST", "/models/{name}/rollback"),
            ("DELETE", "/models/{name}"),
            ("PUT", "/model"),
            ("PUT", "/proto"),
            ("PUT", "/model/configuration"),
        }
    )
    for verb, path in secured:
        op = doc["paths"][path][verb.lower()]
        assert {"401", "403"} <= set(op["responses"]), (verb, path)
    # and they do answer 401 without a token, whatever else the request says
    for verb, path in secured:
        r = shared_env.client.open(path.replace("{name}", "iris"), method=verb, data=b"x")
        assert r.status_code == 401 and r.get_json()["error"]["kind"] == "unauthenticated", (verb, path)


def test_the_document_is_valid_openapi_with_the_contracts_schemas(shared_env: Env) -> None:
    import schemathesis  # the test extra: the fuzz stage's own loader

    doc = shared_env.client.get("/openapi.json").get_json()
    schema = schemathesis.openapi.from_dict(doc)
    assert len(list(schema.get_all_operations())) == sum(len(item) for item in doc["paths"].values())
    classify = doc["paths"]["/models/iris/methods/Classify"]["post"]
    assert "sepal_length" in classify["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert doc["paths"]["/models/{name}"]["get"]["parameters"][0] == {"$ref": "#/components/parameters/Name"}
    examples = doc["components"]["parameters"]["Name"]["examples"]
    assert set(examples) == set(shared_env.registry.snapshot())
    # errors everywhere are the one error object; under /v2 the protocol's own
    infer = doc["paths"]["/v2/models/{name}/infer"]["post"]["responses"]
    assert infer["400"] == {"$ref": "#/components/responses/V400"}
    assert doc["components"]["schemas"]["V2Error"]["properties"] == {"error": {"type": "string"}}
