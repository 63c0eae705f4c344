"""The OpenAPI document is served and describes every API route and method."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient


def test_every_api_route_is_documented(client: FlaskClient, app: Flask) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    assert spec["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, item in spec["paths"].items() for method in item}
    served = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        served |= {(path, method) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == documented


def test_schema_references_resolve(client: FlaskClient) -> None:
    text = client.get("/api/v1/openapi.json").get_data(as_text=True)
    spec = client.get("/api/v1/openapi.json").get_json()
    for name in set(re.findall(r"#/components/schemas/(\w+)", text)):
        assert name in spec["components"]["schemas"], name


def test_job_types_params_and_results_come_from_the_declarations(client: FlaskClient) -> None:
    from core.jobtypes import JOB_TYPES
    from webapp.api.openapi import schema_name

    spec = client.get("/api/v1/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    body = spec["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert body["schema"]["properties"]["type"]["enum"] == sorted(JOB_TYPES)
    assert schemas["Job"]["properties"]["type"]["enum"] == sorted(JOB_TYPES)
    result_refs = {
        option.get("$ref", "").rsplit("/", 1)[-1]
        for option in schemas["Job"]["properties"]["result"]["anyOf"]
    }
    for job_type in JOB_TYPES.values():
        params = schemas[schema_name(job_type, "Params")]
        assert set(params["properties"]) == job_type.param_names
        assert params["additionalProperties"] is False
        result = schemas[schema_name(job_type, "Result")]
        assert result["properties"] == job_type.result_schema["properties"]
        assert schema_name(job_type, "Result") in result_refs
    # The result of every type is documented (two were missing when this was hand-written).
    assert {"SegmentationResult", "HeadCircumferenceResult"} <= result_refs


def test_error_responses_come_from_the_catalogue(client: FlaskClient) -> None:
    from core.error_codes import CATALOGUE, ERROR_CODES, describe

    spec = client.get("/api/v1/openapi.json").get_json()
    documented: set[tuple[str, int]] = set()
    for item in spec["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                codes = response["x-error-codes"]
                assert response["description"] == describe(codes)
                for code in codes:
                    assert int(status) in ERROR_CODES[code].http, (code, status)
                    documented.add((code, int(status)))
    expected = {
        (entry.code, status) for entry in CATALOGUE if not entry.generic for status in entry.http
    }
    assert expected - documented == set()
