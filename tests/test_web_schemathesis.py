"""The OpenAPI description validates, and schemathesis finds no server error and no answer
that breaks it (every operation, bounded examples, against the app in process).

Needs schemathesis 4 (``schemathesis.pytest.from_fixture``) and openapi-spec-validator.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
import web_store
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from portradar.store.duckdb_store import Store
from portradar.web.app import WebSettings, create_app

#: Examples per operation (about 20 operations; schemathesis adds its coverage cases).
MAX_EXAMPLES = 8


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    store = Store.open(web_store.fresh_copy(tmp_path_factory, "schemathesis"))
    yield create_app(store, settings=WebSettings())
    store.close()


@pytest.fixture(scope="module")
def web_schema(app: Any) -> Any:
    return schemathesis.openapi.from_asgi("/api/openapi.json", app)


def test_openapi_description_validates(app: Any) -> None:
    validator = pytest.importorskip("openapi_spec_validator",
                                    reason="pip install openapi-spec-validator")
    validate = validator.validate

    spec = TestClient(app).get("/api/openapi.json").json()
    validate(spec)
    paths = set(spec["paths"])
    for path in ("/api/v1/overview", "/api/v1/ports", "/api/v1/ports/{proto}/{port}",
                 "/api/v1/spikes", "/api/v1/scanners", "/api/v1/scanners/{address}",
                 "/api/v1/campaigns", "/api/v1/campaigns/{campaign_id}", "/api/v1/alerts",
                 "/api/v1/alerts/{alert_id}", "/api/v1/alerts/{alert_id}/ack",
                 "/api/v1/assessment", "/api/v1/rules/{proto}/{port}", "/api/v1/sensors",
                 "/api/v1/status"):
        assert path in paths, path
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "basic"}


def test_openapi_30_for_swagger_ui_validates_and_says_the_same(app: Any) -> None:
    """The 3.0 rewrite Swagger UI 4 reads (portradar.web.api_docs) is a valid OpenAPI 3.0
    description of the same operations, parameters and security."""
    validator = pytest.importorskip("openapi_spec_validator",
                                    reason="pip install openapi-spec-validator")
    client = TestClient(app)
    spec = client.get("/api/openapi.json").json()
    spec30 = client.get("/api/docs/openapi-3.0.json").json()
    assert spec["openapi"].startswith("3.1") and spec30["openapi"] == "3.0.3"
    validator.validate(spec30, cls=validator.OpenAPIV30SpecValidator)
    assert '"type": "null"' not in str(spec30).replace("'", '"')
    assert spec30["security"] == spec["security"]
    assert spec30["components"]["securitySchemes"] == spec["components"]["securitySchemes"]

    def operations(s: dict[str, Any]) -> dict[tuple[str, str], list[tuple[str, str, bool]]]:
        return {(path, method): sorted((p["name"], p["in"], p.get("required", False))
                                       for p in op.get("parameters", []))
                for path, ops in s["paths"].items() for method, op in ops.items()}

    assert operations(spec30) == operations(spec)
    assert len(operations(spec)) >= 17
    # an optional 3.1 'X or null' became a nullable X
    since = next(p for p in spec30["paths"]["/api/v1/overview"]["get"]["parameters"]
                 if p["name"] == "since")
    assert since["schema"].get("nullable") is True and since["schema"]["type"] == "string"
    # the docs are not part of the described API
    assert not any(path.startswith("/api/docs") for path in spec["paths"])


schema = schemathesis.pytest.from_fixture("web_schema")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_error_and_answers_match_the_schema(case: Any) -> None:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    case.call_and_validate(checks=[not_a_server_error, status_code_conformance,
                                   content_type_conformance, response_schema_conformance])
