"""Property-based API test over the exported OpenAPI document (issue 9): schemathesis generates
requests for every operation (valid and invalid); no response may be a 5xx or violate the
documented response schema. Bounded examples keep it in the suite's budget."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from feature_service.app import create_app
from feature_service.config import Settings

REPO = Path(__file__).resolve().parents[3]
KEY = "test-key"
schema = schemathesis.openapi.from_path(
    str(REPO / "specs" / "005-feature-service" / "contracts" / "openapi.json")
)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(
            Settings(
                _env_file=None,  # type: ignore[call-arg]
                data_dir=Path(data_dir),
                api_keys=[KEY],
                replay_enabled=False,
                intervals=[1],
            )
        )
        with TestClient(app, raise_server_exceptions=False) as tc:
            yield tc


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_5xx_and_every_response_matches_the_schema(case, client: TestClient) -> None:  # type: ignore[no-untyped-def]
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers={"X-API-Key": KEY})
    kwargs.pop("timeout", None)
    kwargs.pop("verify", None)
    kwargs.pop("allow_redirects", None)
    response = client.request(**kwargs)
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
