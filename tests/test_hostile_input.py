"""No input gives a 500 or comes back in the answer: every route and every field of the
OpenAPI schema, with the values that used to (NaN, ±Infinity, 1e400, lone surrogates),
their siblings (duplicate keys, deep nesting, huge integers, NUL) and a property test of
random JSON. With and without a token: the body is judged before authentication."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.stack import TEST_SECRET, make_settings, serve_api, sign_up_and_log_in

# Raw JSON that Python's json module accepts and RFC 8259 does not, or that no route can
# store: each must be a 422 naming the field, never a 500.
REFUSED_AT_PARSE = {
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "1e400": "1e400",
    "-1e400": "-1e400",
    "lone high surrogate": '"\\ud800"',
    "lone low surrogate in text": '"ab\\udfffcd"',
    "integer beyond 64 bits": "9" * 30,
    "nested 40 deep": "[" * 40 + "]" * 40,
}
# Valid JSON of every kind in every field: whatever the answer, never a 5xx.
OTHER_VALUES = {
    "NUL": '"a\\u0000b"',
    "null": "null",
    "true": "true",
    "object": '{"x": 1}',
    "array": "[1, 2]",
    "negative": "-1",
    "huge float": "1e308",
    "tiny float": "5e-324",
    "4300 digits": "1" * 4300,
    "bidi override": '"\\u202eevil"',
    "long text": json.dumps("x" * 20000),
}


@pytest.fixture(scope="module")
def hostile_api(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str,
    redis_url: str,
    temporal_address: str,
) -> Iterator[str]:
    config = make_settings(
        tmp_path_factory.mktemp("hostile"),
        database_url=postgres_url,
        redis_url=redis_url,
        temporal_address=temporal_address,
        max_active_tasks=1000,
    )
    with serve_api(config) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def auth_headers(hostile_api: str) -> dict:
    with httpx.Client(base_url=hostile_api, timeout=30) as client:
        return sign_up_and_log_in(client, f"hostile-{uuid.uuid4().hex[:8]}")


def _openapi() -> dict[str, Any]:
    from api.main import create_app
    from fractal.settings import Settings

    offline = Settings(
        jwt_secret=TEST_SECRET,
        database_url="postgresql+psycopg://offline@127.0.0.1:1/x",
        redis_url="redis://127.0.0.1:1/0",
    )
    return create_app(offline).openapi()


OPENAPI = _openapi()


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = OPENAPI["components"]["schemas"][name]
    return schema


def json_fields() -> list[tuple[str, str, str]]:
    """(method, path, field) for every top-level field of every JSON request body."""
    found = []
    for path, operations in OPENAPI["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                schema = _resolve(content["application/json"]["schema"])
                found += [(method, path, field) for field in schema.get("properties", {})]
    return found


FIELDS = json_fields()


def test_every_json_route_is_covered() -> None:
    routes = {(method, path) for method, path, _ in FIELDS}
    assert {("post", "/v1/auth/signup"), ("post", "/v1/animations")} <= routes
    assert {("post", "/sign-up"), ("post", "/sign-in"), ("post", "/add")} <= routes


def _post_raw(
    client: httpx.Client, method: str, path: str, body: str, headers: dict
) -> httpx.Response:
    return client.request(
        method.upper(),
        path,
        content=body.encode("utf-8", "surrogatepass"),
        headers={**headers, "Content-Type": "application/json"},
    )


@pytest.mark.parametrize("authenticated", [False, True], ids=["no token", "token"])
@pytest.mark.parametrize(("method", "path", "field"), FIELDS)
def test_values_that_are_not_json_are_refused_naming_the_field(
    hostile_api: str, auth_headers: dict, method: str, path: str, field: str, authenticated: bool
) -> None:
    headers = auth_headers if authenticated else {}
    with httpx.Client(base_url=hostile_api, timeout=30) as client:
        for name, raw in REFUSED_AT_PARSE.items():
            response = _post_raw(client, method, path, f'{{"{field}": {raw}}}', headers)
            assert response.status_code == 422, (path, field, name, response.text[:300])
            detail = response.json()["detail"][0]
            assert detail["loc"][:2] == ["body", field], (path, field, name, detail)
            assert "input" not in detail and "ctx" not in detail
        for name, raw in OTHER_VALUES.items():
            response = _post_raw(client, method, path, f'{{"{field}": {raw}}}', headers)
            assert response.status_code < 500, (path, field, name, response.text[:300])


@pytest.mark.parametrize(("method", "path"), sorted({(m, p) for m, p, _ in FIELDS}))
def test_whole_bodies_that_are_not_json_are_refused(
    hostile_api: str, method: str, path: str
) -> None:
    with httpx.Client(base_url=hostile_api, timeout=30) as client:
        for raw in (*REFUSED_AT_PARSE.values(), '{"a": 1, "a": 2}', "{", "\ufeff{}", "{'a': 1}"):
            response = _post_raw(client, method, path, raw, {})
            assert response.status_code == 422, (path, raw[:40], response.text[:300])
        invalid_utf8 = client.request(
            method.upper(),
            path,
            content=b'{"a": "\xff"}',
            headers={"Content-Type": "application/json"},
        )
        assert invalid_utf8.status_code == 422
        duplicated = _post_raw(client, method, path, '{"a": 1, "a": 2}', {})
        assert duplicated.json()["detail"][0]["loc"] == ["body", "a"]


@pytest.mark.parametrize(("method", "path", "field"), FIELDS)
def test_a_long_value_never_comes_back(
    hostile_api: str, auth_headers: dict, method: str, path: str, field: str
) -> None:
    """60 kB in a field (the body limit is 64 KiB): the 422 names the field, in a few
    hundred bytes (a 10 MB password used to come back whole)."""
    marker = "Q" * 60_000
    with httpx.Client(base_url=hostile_api, timeout=30) as client:
        for value in (marker, {"re": marker}, [marker, 1]):
            response = client.request(
                method.upper(), path, json={field: value}, headers=auth_headers
            )
            assert response.status_code < 500, (path, field, response.text[:300])
            assert "Q" * 300 not in response.text
            if response.status_code == 422:
                assert len(response.content) < 4096
        # The key itself is the client's too: an unknown 60 kB key is cut short.
        response = client.request(method.upper(), path, json={marker: 1}, headers=auth_headers)
        assert response.status_code == 422 and len(response.content) < 4096


def test_path_and_query_parameters(hostile_api: str, auth_headers: dict) -> None:
    with httpx.Client(base_url=hostile_api, timeout=30) as client:
        for raw in ("NaN", "%ED%A0%80", "%00", "1e400", "-1", "9" * 40, "%FF%FE"):
            for url in (
                f"/v1/animations/{raw}",
                f"/v1/animations/{raw}/video",
                f"/task/{raw}",
                f"/v1/animations?limit={raw}",
                f"/v1/animations?cursor={raw}",
                f"/v1/animations?state={raw}",
                f"/v1/files/videos/{raw}.mp4?expires={raw}&signature={raw}",
                f"/v1/animations/{raw}/poster",
                f"/v1/animations/{raw}/events",
                f"/v1/preview?spec={raw}&frame={raw}&width={raw}",
                f"/v1/map/tiles/{raw}/{raw}/0.webp",
            ):
                response = client.get(url, headers=auth_headers)
                assert response.status_code < 500, (url, response.text[:300])


def test_json_in_a_query_parameter_is_held_to_the_same_rules(hostile_api: str) -> None:
    """The preview's spec in its URL is JSON that no body guard sees: NaN, 1e400, a lone
    surrogate or a duplicate key is a 422 naming the field, as in a body."""
    with httpx.Client(base_url=hostile_api, timeout=30) as client:
        for name, raw in {**REFUSED_AT_PARSE, "duplicate": '1, "scale": 2'}.items():
            spec = f'{{"scale": {raw}}}'
            response = client.get("/v1/preview", params={"spec": spec, "width": 64})
            assert response.status_code == 422, (name, response.text[:300])
            (detail,) = response.json()["detail"]
            assert detail["loc"][:3] == ["query", "spec", "scale"], (name, detail)
            assert "input" not in detail


# Any JSON value, with the non-JSON floats and any code point (surrogates included).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=st.dictionaries(st.sampled_from([*sorted({f for _, _, f in FIELDS}), "zz"]), json_values)
)
def test_no_json_body_gives_a_server_error(
    hostile_api: str, auth_headers: dict, body: dict
) -> None:
    raw = json.dumps(body, allow_nan=True)  # ensure_ascii writes surrogates as \\udxxx
    with httpx.Client(base_url=hostile_api, timeout=30) as client:
        for method, path in sorted({(m, p) for m, p, _ in FIELDS}):
            response = _post_raw(client, method, path, raw, auth_headers)
            assert response.status_code < 500, (path, raw[:200], response.text[:300])
            if response.status_code == 422:
                for detail in response.json()["detail"]:
                    assert set(detail) == {"loc", "msg", "type"}


def test_token_form_with_hostile_values(hostile_api: str) -> None:
    with httpx.Client(base_url=hostile_api, timeout=30) as client:
        for username, password in (
            ("a\x00b", "x"),
            ("x" * 5000, "y"),
            ("%ED%A0%80", "p"),
            ("NaN", "Infinity"),
        ):
            response = client.post(
                "/v1/auth/token", data={"username": username, "password": password}
            )
            assert response.status_code in (401, 422), response.text[:300]
        raw = b"username=%ED%A0%80&password=%FF%FE"
        response = client.post(
            "/v1/auth/token",
            content=raw,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code < 500
        multipart = client.post(
            "/v1/auth/token", files={"username": ("u", b"\xff\xfe"), "password": ("p", b"x")}
        )
        assert multipart.status_code < 500


def test_answers_say_nothing_of_the_server(hostile_api: str) -> None:
    with httpx.Client(base_url=hostile_api, timeout=30) as client:
        response = _post_raw(client, "post", "/v1/auth/signup", '{"username": NaN}', {})
        assert not re.search(r"Traceback|File \"", response.text)
        assert "server" not in response.headers
