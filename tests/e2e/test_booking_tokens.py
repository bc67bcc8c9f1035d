"""Per-user API tokens scoped to free/busy and booking, end to end over HTTP: accepted as
``Authorization: Bearer`` by the booking API and the free/busy URLs, refused (401) by CalDAV and by
every other route, shown once, and refused at once when revoked."""

from __future__ import annotations

import requests

from tests.e2e.test_booking import choose_calendars, free_slot, two_weeks
from tests.e2e.test_freebusy import alice_ids


def make_token(stack, label: str = "booking page") -> tuple[str, str]:
    user_id, _ = alice_ids(stack)
    record, clear = stack.run(
        stack.stack.services.accounts.create_app_password(user_id, label, scope="booking")
    )
    assert record.scope == "booking"
    return record.app_password_id, clear


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_booking_token_books_and_reads_free_busy_and_nothing_else(stack, emulator):
    choose_calendars(stack)
    token_id, token = make_token(stack)
    base = stack.base_url
    start, end = two_weeks()
    window = {"start": start.isoformat(), "end": end.isoformat()}

    offered = requests.get(
        f"{base}/api/v1/users/alice/slots",
        params={**window, "duration": 30},
        headers=bearer(token),
        timeout=60,
    )
    assert offered.status_code == 200, offered.text
    moment = free_slot(stack)
    body = {"start": moment.isoformat(), "duration": 30, "invitee": {"email": "bob@example.com"}}
    made = requests.post(f"{base}/api/v1/users/alice/bookings", json=body, headers=bearer(token), timeout=60)
    assert made.status_code == 201, made.text
    fb = requests.get(
        f"{base}/api/v1/freebusy",
        params={**window, "attendee": "bob@example.com"},
        headers=bearer(token),
        timeout=60,
    )
    assert fb.status_code == 200, fb.text
    vfb = requests.get(
        f"{base}/freebusy/bob@example.com.vfb", params=window, headers=bearer(token), timeout=60
    )
    assert vfb.status_code == 200 and "BEGIN:VFREEBUSY" in vfb.text
    cancelled = requests.delete(
        f"{base}/api/v1/users/alice/bookings/{made.json()['id']}", headers=bearer(token), timeout=60
    )
    assert cancelled.status_code == 204

    # Not CalDAV, neither as Bearer nor as an app password in Basic; not the admin API or the pages.
    propfind = requests.request(
        "PROPFIND", f"{base}/dav/", headers={**bearer(token), "Depth": "0"}, timeout=30
    )
    assert propfind.status_code == 401
    basic = requests.request(
        "PROPFIND", f"{base}/dav/", auth=("alice", token), headers={"Depth": "0"}, timeout=30
    )
    assert basic.status_code == 401
    admin = requests.get(f"{base}/api/v1/admin/users", headers=bearer(token), timeout=30)
    assert admin.status_code in (401, 503)  # not the admin token (here the admin API is off anyway)
    # Another user's slots with alice's token: not found, as with her app password.
    other = requests.get(
        f"{base}/api/v1/users/bob/slots", params={**window, "duration": 30}, headers=bearer(token), timeout=30
    )
    assert other.status_code == 404

    # Revoked: refused at once (the verified-token cache forgets it).
    user_id, _ = alice_ids(stack)
    stack.run(stack.stack.services.accounts.revoke_app_password(user_id, token_id))
    refused = requests.get(
        f"{base}/api/v1/users/alice/slots",
        params={**window, "duration": 30},
        headers=bearer(token),
        timeout=30,
    )
    assert refused.status_code == 401 and "Bearer" in refused.headers["WWW-Authenticate"]
    assert (
        requests.get(
            f"{base}/api/v1/freebusy",
            params={**window, "attendee": "bob@example.com"},
            headers=bearer(token),
            timeout=30,
        ).status_code
        == 401
    )


def test_a_wrong_token_is_refused_with_a_sentence(stack):
    start, end = two_weeks()
    answer = requests.get(
        f"{stack.base_url}/api/v1/users/alice/slots",
        params={"start": start.isoformat(), "end": end.isoformat(), "duration": 30},
        headers=bearer("abcde-fghjk-mnpqr-stuvw"),
        timeout=30,
    )
    assert answer.status_code == 401
    assert "token" in answer.json()["message"]


def test_an_app_password_still_works_everywhere(stack):
    """An ordinary app password is not a booking token: Basic as before, and as Bearer it is refused."""
    start, end = two_weeks()
    params = {"start": start.isoformat(), "end": end.isoformat(), "duration": 30}
    url = f"{stack.base_url}/api/v1/users/alice/slots"
    assert requests.get(url, params=params, auth=("alice", stack.password), timeout=60).status_code == 200
    assert requests.get(url, params=params, headers=bearer(stack.password), timeout=60).status_code == 401
