"""The OpenAPI description of the JSON API (``GET /api/v1/openapi.json``): valid OpenAPI 3.1, naming
exactly the routes the gateway serves under /api/ and /freebusy/ with their methods, and answers the
gateway really gives match the schemas it documents."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
from aiohttp import encode_basic_auth
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from gateway.app import create_app
from tests.web.gateway_support import admin_headers, make_config, make_services

H = admin_headers()
DOCUMENTED_PREFIXES = ("/api/", "/freebusy/")
METHODS = (
    "get",
    "put",
    "post",
    "delete",
    "patch",
    "options",
    "head",
    "trace",
)  # a path item's other keys aren't


async def _spec(gateway: TestClient) -> dict[str, Any]:
    response = await gateway.get("/api/v1/openapi.json")  # no credentials needed
    assert response.status == 200 and response.content_type == "application/json"
    return await response.json()


def _served_routes(gateway: TestClient) -> set[tuple[str, str]]:
    """(path template, method) of every route the app registers under the documented prefixes."""
    return {
        (route.resource.canonical, route.method.lower())
        for route in gateway.server.app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith(DOCUMENTED_PREFIXES)
        and route.method != "HEAD"  # aiohttp adds HEAD to every GET
    }


def _operation(spec: dict[str, Any], method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The documented operation a concrete request path matches, and its template."""
    for template, item in spec["paths"].items():
        pattern = "^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return template, item[method.lower()]
    raise AssertionError(f"{method} {path} is not documented")


async def conforms(spec: dict[str, Any], response: Any) -> Any:
    """Checks a response against the description: its status is documented for the operation, and a
    JSON body validates against the documented schema. Returns the body."""
    request = response.request_info
    template, operation = _operation(spec, request.method, request.url.path)
    documented = operation["responses"].get(str(response.status))
    assert documented is not None, f"{request.method} {template} answered {response.status}, undocumented"
    if "$ref" in documented:
        documented = spec["components"]["responses"][documented["$ref"].rsplit("/", 1)[-1]]
    if response.status == 204:
        assert "content" not in documented
        return None
    if response.content_type != "application/json":
        assert response.content_type in documented["content"], (template, response.content_type)
        return await response.text()
    body = await response.json()
    schema = documented["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({**schema, "components": spec["components"]}).validate(body)
    return body


async def test_the_description_is_valid_openapi_3_1(gateway: TestClient) -> None:
    spec = await _spec(gateway)
    validate(spec)
    assert spec["openapi"].startswith("3.1.")
    assert spec["servers"] == [{"url": str(gateway.make_url("")).rstrip("/")}]


async def test_every_route_is_documented_and_every_documented_route_exists(gateway: TestClient) -> None:
    spec = await _spec(gateway)
    documented = {
        (path, method) for path, item in spec["paths"].items() for method in item if method in METHODS
    }
    served = _served_routes(gateway)
    assert ("/api/v1/freebusy", "get") in served and ("/api/v1/admin/users", "post") in served
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"


async def test_each_operation_says_which_credentials_it_takes(gateway: TestClient) -> None:
    spec = await _spec(gateway)
    schemes = spec["components"]["securitySchemes"]
    assert (schemes["adminToken"]["type"], schemes["adminToken"]["scheme"]) == ("http", "bearer")
    assert (schemes["appPassword"]["type"], schemes["appPassword"]["scheme"]) == ("http", "basic")
    assert (schemes["bookingToken"]["type"], schemes["bookingToken"]["scheme"]) == ("http", "bearer")
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            if path.startswith("/api/v1/admin/"):
                expected = [{"adminToken": []}]
            elif path == "/api/v1/openapi.json":
                expected = []
            elif path.startswith(("/api/v1/users/", "/api/v1/freebusy", "/freebusy/")):
                expected = [{"appPassword": []}, {"bookingToken": []}]  # an API token too
            else:
                expected = [{"appPassword": []}]
            assert operation.get("security") == expected, (method, path)
            assert operation.get("summary") and operation.get("responses"), (method, path)


async def test_admin_answers_match_their_schemas(gateway: TestClient, emulator: Any) -> None:
    spec = await _spec(gateway)
    admin = "/api/v1/admin/users"
    await conforms(spec, await gateway.get(admin))  # 401 without the token
    await conforms(spec, await gateway.post(admin, json=[1], headers=H))  # 400 invalid_json
    user = await conforms(
        spec, await gateway.post(admin, json={"username": "ann", "password": "pw"}, headers=H)
    )
    await conforms(spec, await gateway.post(admin, json={"username": "ann"}, headers=H))  # 400 taken
    await conforms(spec, await gateway.get(admin, headers=H))
    base = f"{admin}/{user['user_id']}"
    await conforms(spec, await gateway.get(base, headers=H))
    await conforms(spec, await gateway.get(f"{admin}/nobody", headers=H))  # 404
    failed = await gateway.post(
        f"{base}/accounts", json={"email": "alice@example.com", "password": "wrong"}, headers=H
    )
    assert (await conforms(spec, failed))["error"] == "auth_failed"
    account = await conforms(
        spec,
        await gateway.post(
            f"{base}/accounts", json={"email": "alice@example.com", "password": "alice-pw"}, headers=H
        ),
    )
    await conforms(spec, await gateway.get(f"{base}/accounts", headers=H))
    acc = f"{base}/accounts/{account['account_id']}"
    await conforms(spec, await gateway.get(acc, headers=H))
    await conforms(spec, await gateway.patch(acc, json={"working_elsewhere": "BUSY"}, headers=H))
    await conforms(spec, await gateway.patch(acc, json={"working_elsewhere": "maybe"}, headers=H))  # 400
    calendars = await conforms(spec, await gateway.get(f"{base}/calendars", headers=H))
    ids = [c["calendar_id"] for c in calendars["calendars"]]
    assert len(ids) == 2 and ids[0] == f"{account['account_id']}-calendar"
    await conforms(spec, await gateway.get(f"{base}/settings", headers=H))
    await conforms(
        spec, await gateway.put(f"{base}/settings", json={"conflict_calendar_ids": ids}, headers=H)
    )
    refused = await gateway.put(f"{base}/settings", json={"add_events_calendar_id": "x"}, headers=H)
    assert (await conforms(spec, refused))["error"] == "unknown_calendar"
    created = await conforms(
        spec, await gateway.post(f"{base}/app-passwords", json={"label": "phone"}, headers=H)
    )
    await conforms(spec, await gateway.get(f"{base}/app-passwords", headers=H))

    # The free/busy JSON and the Internet Free/Busy URL, with the app password just made.
    auth = {"Authorization": encode_basic_auth("ann", created["password"])}
    fb = "/api/v1/freebusy?attendee=bob@example.com&attendee=nobody@example.com"
    await conforms(spec, await gateway.get(fb))  # 401
    answer = await conforms(spec, await gateway.get(fb, headers=auth))
    assert [a["no_data"] for a in answer["attendees"]] == [False, True]
    await conforms(spec, await gateway.get("/api/v1/freebusy", headers=auth))  # 400: no attendee
    await conforms(spec, await gateway.get("/freebusy/bob@example.com.vfb", headers=auth))
    await conforms(spec, await gateway.get("/freebusy/nobody@example.com.vfb", headers=auth))  # 404

    await conforms(
        spec, await gateway.delete(f"{base}/app-passwords/{created['app_password_id']}", headers=H)
    )
    await conforms(spec, await gateway.delete(acc, headers=H))
    await conforms(spec, await gateway.delete(base, headers=H))


async def test_exchange_failing_while_calendars_are_listed_is_a_documented_503(
    aiohttp_client: Any, tmp_path: Path, emulator: Any, secret_key: str
) -> None:
    config = make_config(tmp_path, emulator)
    config = dataclasses.replace(config, ews=dataclasses.replace(config.ews, retry_budget_seconds=0.5))
    gateway = await aiohttp_client(create_app(config, services=make_services(config, secret_key)))
    spec = await _spec(gateway)
    user = await (await gateway.post("/api/v1/admin/users", json={"username": "ann"}, headers=H)).json()
    base = f"/api/v1/admin/users/{user['user_id']}"
    connected = await gateway.post(
        f"{base}/accounts", json={"email": "alice@example.com", "password": "alice-pw"}, headers=H
    )
    assert connected.status == 201
    emulator.set_faults(rules=[{"kind": "http_503", "operation": "FindFolder"}])
    for response in (
        await gateway.get(f"{base}/calendars", headers=H),
        await gateway.put(f"{base}/settings", json={"add_events_calendar_id": "x"}, headers=H),
    ):
        assert response.status == 503
        error = await conforms(spec, response)
        assert error["error"] == "calendars_unavailable" and "could not be listed" in error["message"]


async def test_booking_answers_match_their_schemas(gateway: TestClient, emulator: Any) -> None:
    """Slots, a booking, its replay, a refused second booking, bad input and the cancellation."""
    spec = await _spec(gateway)
    user = await (await gateway.post("/api/v1/admin/users", json={"username": "ann"}, headers=H)).json()
    base = f"/api/v1/admin/users/{user['user_id']}"
    account = {"email": "alice@example.com", "password": "alice-pw"}
    assert (await gateway.post(f"{base}/accounts", json=account, headers=H)).status == 201
    created = await (await gateway.post(f"{base}/app-passwords", json={"label": "tool"}, headers=H)).json()
    auth = {"Authorization": encode_basic_auth("ann", created["password"])}
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    window = {"start": start.isoformat(), "end": (start + timedelta(days=14)).isoformat(), "duration": "30"}
    url = "/api/v1/users/ann/slots"
    await conforms(spec, await gateway.get(url, params=window))  # 401
    answer = await conforms(
        spec, await gateway.get(url, params={**window, "tz": "Europe/Berlin"}, headers=auth)
    )
    await conforms(spec, await gateway.get(url, params={**window, "duration": "x"}, headers=auth))  # 400
    await conforms(spec, await gateway.get(url, params={**window, "duration": "0"}, headers=auth))  # 422
    await conforms(spec, await gateway.get("/api/v1/users/bob/slots", params=window, headers=auth))  # 404

    bookings = "/api/v1/users/ann/bookings"
    slot = answer["slots"][0]
    body = {"start": slot["start"], "end": slot["end"], "invitee": {"email": "bob@example.com"}}
    keyed = {**auth, "Idempotency-Key": "k1"}
    made = await conforms(spec, await gateway.post(bookings, json=body, headers=keyed))  # 201
    assert await conforms(spec, await gateway.post(bookings, json=body, headers=keyed)) == made
    refused = await conforms(spec, await gateway.post(bookings, json=body, headers=auth))  # 409
    assert refused["error"] == "not_free"
    reused = await conforms(spec, await gateway.post(bookings, json={**body, "title": "x"}, headers=keyed))
    assert reused["error"] == "key_reused"  # 422
    await conforms(spec, await gateway.post(bookings, json={"start": slot["start"]}, headers=auth))  # 400
    await conforms(spec, await gateway.delete(f"{bookings}/{made['id']}", headers=auth))  # 204
    await conforms(spec, await gateway.delete(f"{bookings}/nothing", headers=auth))  # 404
