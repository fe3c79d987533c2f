"""The JSON API (/api/v1) with the Flask client: every operation, every error class, roles on every
route, tokens (revoked, unknown), rate limits, no national ID echoed, and schemathesis against the
served OpenAPI document."""
import datetime as dt
import json
import re
from collections import Counter

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from tawasul import api_tokens, booking, tickets
from tawasul.models import (
    ApiToken, AppointmentKind, AuditEntry, GovernorSchedule, OutboxMessage, Role, Ticket, TicketKind, WaitlistEntry,
)
from tawasul.validation import make_national_id
from web import limiter

NID = make_national_id("1", "12121212")
OTHER_NID = make_national_id("2", "34343434")
SUNDAY = "2030-01-06"            # a session day (Sunday) in Riyadh
SLOT = "2030-01-06T09:00:00+03:00"
SLOT2 = "2030-01-06T09:20:00+03:00"
MONDAY_SLOT = "2030-01-07T09:40:00+03:00"


@pytest.fixture
def db(web_app):
    return web_app.extensions["tawasul.db"]


@pytest.fixture
def tokens(db):
    """role name -> bearer token; plus 'revoked'."""
    made = {}
    with db.write() as session:
        for role in Role:
            _row, made[role.value] = api_tokens.create(session, f"test-{role.value}", role)
        row, made["revoked"] = api_tokens.create(session, "old", Role.STAFF)
        row.revoked = True
    return made


@pytest.fixture
def api(client, tokens):
    """api(method, path, role="staff", **kwargs): a request with that role's bearer token."""
    def call(method, path, role="staff", **kwargs):
        headers = dict(kwargs.pop("headers", {}))
        if role:
            headers["Authorization"] = f"Bearer {tokens[role]}"
        return client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)
    return call


def booking_body(**overrides):
    body = {"national_id": NID, "name": "فهد الحربي", "mobile": "0551234567", "home_governorate": "BDR",
            "kind": "video", "at": SLOT, "subject": "طلب", "language": "en"}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def book(api, **overrides):
    response = api("POST", "/appointments", json=booking_body(**overrides))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def assert_error(response, status, field=None):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.is_json
    body = response.get_json()
    assert set(body["error"]) == {"field", "message"} and body["error"]["message"]
    if field is not None:
        assert body["error"]["field"] == field, body
    return body


# ----------------------------------------------------------------------------------- the document

def test_the_openapi_document_is_served_and_names_every_api_route(web_app, client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": document["components"]["securitySchemes"]["bearer"][
            "description"]}
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    served = set()
    for rule in web_app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule[len("/api/v1"):])
            served |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == documented
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation["responses"], (path, method)
            for code, answer in operation["responses"].items():
                if code.startswith("4"):
                    assert answer == {"$ref": f"#/components/responses/E{code}"}


# ------------------------------------------------------------------------------- tokens and roles

def _api_routes(app):
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if rule.rule.startswith("/api/v1/") and hasattr(view, "api_roles"):
            url = re.sub(r"<(?:\w+:)?[^>]+>", "A-0000-0000-0000", rule.rule)
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                yield url, method, view.api_roles, view.api_public


def test_every_api_route_checks_the_tokens_role(web_app, client, tokens):
    checked = 0
    for url, method, roles, public in _api_routes(web_app):
        kwargs = {"json": {}} if method in ("POST", "PATCH") else {}
        anonymous = client.open(url, method=method, **kwargs)
        if public:
            assert anonymous.status_code != 401, (url, method)
        else:
            assert_error(anonymous, 401)
            assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
        for bad in ("revoked", "unknown", "malformed", "basic"):
            header = {"revoked": f"Bearer {tokens['revoked']}", "unknown": "Bearer tws_" + "x" * 43,
                      "malformed": "Bearer", "basic": "Basic c3RhZmY6eA=="}[bad]
            assert_error(client.open(url, method=method, headers={"Authorization": header}, **kwargs), 401)
        for role in Role:
            status = client.open(url, method=method, headers={"Authorization": f"Bearer {tokens[role.value]}"},
                                 **kwargs).status_code
            if role in roles:
                assert status not in (401, 403), (url, method, role)
            else:
                assert status == 403, (url, method, role, status)
            checked += 1
    assert checked >= 10 * len(Role)


def test_tokens_are_stored_as_hashes_and_stamped_when_used(db, api, tokens):
    with db.read() as session:
        rows = session.scalars(sa.select(ApiToken)).all()
        assert all(len(r.token_hash) == 64 and r.token_hash not in tokens.values() for r in rows)
        assert {api_tokens.digest(t) for t in tokens.values()} == {r.token_hash for r in rows}
        assert all(r.last_used_at is None for r in rows)
    assert api("GET", f"/slots?date={SUNDAY}").status_code == 200
    with db.read() as session:
        used = session.scalars(sa.select(ApiToken).where(ApiToken.last_used_at.is_not(None))).all()
        assert [r.name for r in used] == ["test-staff"]


def test_the_cli_creates_lists_and_revokes_tokens(settings, web_app, client):
    from tawasul.cli import main

    runner = CliRunner()
    run = lambda *args: runner.invoke(main, ["--state-dir", str(settings.state_dir), *args], catch_exceptions=False)
    created = run("api-token", "create", "crm-1", "--role", "governor_office")
    assert created.exit_code == 0, created.output
    token = created.output.strip().splitlines()[-1]
    assert token.startswith("tws_") and len(token) == 47
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/api/v1/slots?date={SUNDAY}", headers=headers).status_code == 200
    listed = run("api-token", "list")
    assert "crm-1" in listed.output and "governor_office" in listed.output and "active" in listed.output
    assert token not in listed.output and api_tokens.digest(token) not in listed.output
    assert run("api-token", "create", "bad name!", "--role", "staff").exit_code == 2
    assert run("api-token", "create", "x", "--role", "root").exit_code == 2
    assert run("api-token", "revoke", "crm-1").exit_code == 0
    assert "revoked" in run("api-token", "list").output
    assert_error(client.get(f"/api/v1/slots?date={SUNDAY}", headers=headers), 401)
    again = run("api-token", "revoke", "crm-1")
    assert again.exit_code == 2 and "no active token" in again.output


# ----------------------------------------------------------------------------------------- slots

def test_slots_of_a_day(api):
    body = api("GET", f"/slots?date={SUNDAY}").get_json()
    assert body["session_day"] and not body["full"] and body["timezone"] == "Asia/Riyadh"
    assert body["slots"][0] == {"start": "2030-01-06T06:00:00+00:00", "end": "2030-01-06T06:15:00+00:00",
                                "local_time": "09:00", "seats_left": 1}
    assert len(body["slots"]) == 9
    book(api)
    after = api("GET", f"/slots?date={SUNDAY}", role="governor_office").get_json()
    assert [s["local_time"] for s in after["slots"]][:2] == ["09:20", "09:40"]
    in_person = api("GET", f"/slots?date={SUNDAY}&kind=in_person").get_json()
    assert in_person["slots"] == [{"start": "2030-01-06T10:00:00+00:00", "end": None, "local_time": "13:00",
                                   "seats_left": 30}]
    friday = api("GET", "/slots?date=2030-01-04").get_json()
    assert not friday["session_day"] and friday["slots"] == [] and not friday["full"]


@pytest.mark.parametrize("query, status, field", [
    ("", 400, "date"), ("?date=06/01/2030", 400, "date"), ("?date=20300106", 400, "date"),
    ("?date=2030-02-30", 400, "date"), (f"?date={SUNDAY}&kind=phone", 400, "kind"),
    ("?date=2001-01-01", 422, "date"),
])
def test_slots_refuse_bad_queries(api, query, status, field):
    assert_error(api("GET", f"/slots{query}"), status, field)


# --------------------------------------------------------------------------------------- booking

def test_book_a_video_session_at_the_nearest_centre(db, api):
    answer = book(api)
    assert answer["status"] == "booked" and answer["kind"] == "video" and answer["seat"] == 1
    assert answer["centre"]["code"] == "BDR" and answer["location_choice"] == "nearest_centre"
    assert answer["local_start"] == SLOT and answer["citizen_name"] == "فهد الحربي"
    assert re.fullmatch(r"\d{6}", answer["checkin_code"])
    assert answer["reference"] in answer["sms"] and "check-in code" in answer["sms"]  # in English, as asked
    with db.read() as session:
        assert session.scalar(sa.select(sa.func.count(OutboxMessage.id))) == 1
        actors = set(session.scalars(sa.select(AuditEntry.actor).where(AuditEntry.action == "appointment.book")))
        assert actors == {"api:test-staff"}


def test_book_at_another_centre_and_in_person(api):
    other = book(api, centre="ULA", home_governorate=None)
    assert other["centre"]["code"] == "ULA" and other["location_choice"] == "centre_on_date"
    in_person = book(api, kind="in_person", at="2030-01-06T13:00:00+03:00", centre="ULA")
    assert in_person["centre"] is None and in_person["location_choice"] is None
    assert in_person["local_start"] == "2030-01-06T13:00:00+03:00"


def test_a_taken_slot_is_a_conflict_and_nothing_is_written(db, api):
    book(api)
    with db.read() as session:
        before = session.scalar(sa.select(sa.func.count(AuditEntry.id)))
    assert_error(api("POST", "/appointments", json=booking_body(national_id=OTHER_NID, mobile="0561234567")),
                 409, "slot")
    with db.read() as session:
        assert session.scalar(sa.select(sa.func.count(AuditEntry.id))) == before  # no citizen registered either


@pytest.mark.parametrize("overrides, status, field", [
    ({"national_id": "1234567890"}, 422, "national_id"),
    ({"national_id": "12345"}, 422, "national_id"),
    ({"national_id": "3000000000"}, 422, "national_id"),
    ({"mobile": "0112345678"}, 422, "mobile"),
    ({"mobile": "hello"}, 422, "mobile"),
    ({"name": " "}, 422, "name"),
    ({"at": "2030-01-06T09:05:00+03:00"}, 422, "at"),
    ({"at": "2001-01-07T09:00:00+03:00"}, 422, "at"),
    ({"at": "2030-01-06T09:00:00"}, 400, "at"),
    ({"at": "tomorrow"}, 400, "at"),
    ({"at": 1893909600}, 400, "at"),
    ({"kind": "phone"}, 400, "kind"),
    ({"national_id": None}, 400, "national_id"),
    ({"national_id": 1000000008}, 400, "national_id"),
    ({"centre": "ZZZ", "location_choice": "centre_on_date"}, 422, "centre"),
    ({"location_choice": "centre_on_date"}, 422, "centre"),
    ({"centre": "ULA", "location_choice": "nearest_centre"}, 422, "centre"),
    ({"home_governorate": None}, 422, "centre"),  # nearest centre of an unknown home
    ({"home_governorate": "XXX"}, 422, "home_governorate"),
    ({"language": "fr"}, 400, "language"),
    ({"subject": "x" * 501}, 400, "subject"),
])
def test_booking_refuses_what_a_clerk_could_type(api, overrides, status, field):
    assert_error(api("POST", "/appointments", json=booking_body(**overrides)), status, field)


def test_several_bad_citizen_fields_are_all_reported(api):
    body = assert_error(api("POST", "/appointments", json=booking_body(national_id="1", mobile="x")), 422)
    assert {e["field"] for e in body["errors"]} == {"national_id", "mobile"}


@pytest.mark.parametrize("data, content_type", [
    ("not json", "application/json"), ("[1, 2]", "application/json"), ('{"a": 1}', "text/plain"), ("", None),
])
def test_a_body_that_is_not_a_json_object_is_a_bad_request(api, data, content_type):
    assert_error(api("POST", "/appointments", data=data, content_type=content_type), 400)


def test_unknown_api_paths_and_methods_answer_json(api, client):
    assert_error(client.get("/api/v1/nothing"), 404)
    assert_error(api("DELETE", "/slots"), 405)
    assert client.get("/nothing").content_type.startswith("text/html")  # the web keeps its pages


# ----------------------------------------------------------------- an appointment: get and change

def test_get_cancel_reschedule_and_check_in_by_reference(db, api):
    reference = book(api)["reference"]
    got = api("GET", f"/appointments/{reference.lower()}", role="governor_office")
    assert got.status_code == 200 and got.get_json()["reference"] == reference
    moved = api("POST", f"/appointments/{reference}/reschedule", json={"at": MONDAY_SLOT})
    assert moved.status_code == 200 and moved.get_json()["local_start"] == MONDAY_SLOT
    assert "has moved" in moved.get_json()["sms"]
    checked = api("POST", f"/appointments/{reference}/check-in")
    assert checked.status_code == 200 and checked.get_json()["status"] == "checked_in"
    assert checked.get_json()["checked_in_at"]
    assert_error(api("POST", f"/appointments/{reference}/check-in"), 409, "status")
    assert_error(api("POST", f"/appointments/{reference}/cancel", json={"reason": "  "}), 422, "reason")
    assert_error(api("POST", f"/appointments/{reference}/cancel", json={}), 400, "reason")
    cancelled = api("POST", f"/appointments/{reference}/cancel", json={"reason": "the citizen asked"})
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    assert cancelled.get_json()["cancel_reason"] == "the citizen asked"
    assert_error(api("POST", f"/appointments/{reference}/cancel", json={"reason": "again"}), 409, "status")
    assert_error(api("POST", f"/appointments/{reference}/reschedule", json={"at": SLOT2}), 409, "status")


def test_reschedule_into_a_taken_slot_is_a_conflict(api):
    first = book(api)["reference"]
    book(api, national_id=OTHER_NID, mobile="0561234567", at=SLOT2)
    assert_error(api("POST", f"/appointments/{first}/reschedule", json={"at": SLOT2}), 409, "slot")
    assert_error(api("POST", f"/appointments/{first}/reschedule", json={"at": "2030-01-06T09:01:00+03:00"}),
                 422, "at")


def test_a_cancellation_offers_the_slot_to_the_waitlist(db, api):
    reference = book(api)["reference"]
    with db.write() as session:
        session.scalars(sa.select(GovernorSchedule)).one().video_end = dt.time(9, 15)  # one slot a day: full
        waiting = booking.find_or_register_citizen(session, OTHER_NID, "سعد", "0561234567")
        from tawasul import waitlist
        waitlist.join(session, citizen=waiting, kind=AppointmentKind.VIDEO, day=dt.date(2030, 1, 6),
                      centre=booking.centre_by_code(session, "BDR"), actor="test")
    api("POST", f"/appointments/{reference}/cancel", json={"reason": "ill"})
    with db.read() as session:
        assert session.scalars(sa.select(WaitlistEntry.status)).one().value == "offered"


@pytest.mark.parametrize("method, suffix, body", [
    ("GET", "", None), ("POST", "/cancel", {"reason": "x"}), ("POST", "/reschedule", {"at": SLOT}),
    ("POST", "/check-in", None),
])
def test_an_unknown_reference_is_not_found(api, method, suffix, body):
    assert_error(api(method, f"/appointments/A-0000-0000-0000{suffix}", json=body), 404, "reference")


# --------------------------------------------------------------------------------------- tickets

def complaint(**overrides):
    body = {"kind": "complaint", "category": "roads", "subject": "حفرة في الطريق", "body": "أمام المدرسة",
            "mobile": "0551234567"}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def test_the_public_files_a_complaint_without_a_token(db, client):
    response = client.post("/api/v1/tickets", json=complaint(national_id=NID))
    assert response.status_code == 201
    answer = response.get_json()
    assert answer["reference"].startswith("C-") and answer["status"] == "received"
    assert answer["department"] == "TRN" and answer["due_date"] and not answer["overdue"]
    assert NID not in response.get_data(as_text=True) and "Location" not in response.headers
    with db.read() as session:
        ticket = session.scalars(sa.select(Ticket)).one()
        assert ticket.contact_mobile == "+966551234567" and ticket.history[0].actor == "api:public"


def test_the_public_form_is_rate_limited_per_address_but_staff_tokens_are_not(client, tokens):
    statuses = [client.post("/api/v1/tickets", json=complaint()).status_code for _ in range(12)]
    assert statuses[:10] == [201] * 10 and statuses[10:] == [429, 429]
    assert_error(client.post("/api/v1/tickets", json=complaint()), 429)
    staff = client.post("/api/v1/tickets", json=complaint(), headers={"Authorization": f"Bearer {tokens['staff']}"})
    assert staff.status_code == 201


def test_staff_route_and_date_a_ticket_and_the_public_may_not(api, client):
    filed = api("POST", "/tickets", json=complaint(department="HLT", due_date="2030-02-01"))
    assert filed.status_code == 201 and filed.headers["Location"].startswith("/api/v1/tickets/")
    assert filed.get_json()["department"] == "HLT" and filed.get_json()["due_date"] == "2030-02-01"
    assert_error(client.post("/api/v1/tickets", json=complaint(department="HLT")), 403, "department")
    assert_error(client.post("/api/v1/tickets", json=complaint(due_date="2030-02-01")), 403, "due_date")
    assert_error(api("POST", "/tickets", json=complaint(department="XXX")), 422, "department")
    assert_error(api("POST", "/tickets", json=complaint(due_date="2001-01-01")), 422, "due_date")
    assert_error(api("POST", "/tickets", role="governor_office", json=complaint()), 403)


@pytest.mark.parametrize("overrides, status, field", [
    ({"kind": "directive"}, 400, "kind"), ({"kind": None}, 400, "kind"),
    ({"category": "weather"}, 422, "category"), ({"subject": "  "}, 422, "subject"),
    ({"subject": "x" * 301}, 422, "subject"), ({"body": ""}, 422, "body"),
    ({"national_id": "1234567890"}, 422, "national_id"), ({"mobile": "123"}, 422, "mobile"),
    ({"subject": ["a"]}, 400, "subject"), ({"due_date": "soon"}, 400, "due_date"),
])
def test_a_complaint_refuses_bad_fields(client, overrides, status, field):
    assert_error(client.post("/api/v1/tickets", json=complaint(**overrides)), status, field)


def test_list_get_and_update_tickets(api):
    first = api("POST", "/tickets", json=complaint()).get_json()["reference"]
    api("POST", "/tickets", json=complaint(kind="suggestion", category="health"))
    listed = api("GET", "/tickets", role="governor_office").get_json()["tickets"]
    assert [t["kind"] for t in listed] == ["suggestion", "complaint"]
    assert [t["reference"] for t in api("GET", "/tickets?department=TRN").get_json()["tickets"]] == [first]
    assert len(api("GET", "/tickets?kind=suggestion&limit=1").get_json()["tickets"]) == 1
    updated = api("PATCH", f"/tickets/{first}", json={"status": "under_review", "note": "seen"})
    assert updated.status_code == 200 and updated.get_json()["status"] == "under_review"
    assert updated.get_json()["history"][-1] == {**updated.get_json()["history"][-1], "from_status": "received",
                                                 "to_status": "under_review", "note": "seen", "actor": "api:test-staff"}
    routed = api("PATCH", f"/tickets/{first}", json={"department": "MUN", "status": "referred"}).get_json()
    assert routed["department"] == "MUN" and routed["status"] == "referred"
    assert [t["reference"] for t in api("GET", "/tickets?status=referred&open=true").get_json()["tickets"]] == [first]
    assert_error(api("PATCH", f"/tickets/{first}", json={"status": "closed"}), 409, "status")
    assert_error(api("PATCH", f"/tickets/{first}", json={}), 422, "status")
    assert_error(api("PATCH", f"/tickets/{first}", json={"department": "XXX"}), 422, "department")
    assert_error(api("PATCH", f"/tickets/{first}", json={"status": "gone"}), 400, "status")
    assert_error(api("PATCH", "/tickets/C-0000-0000-0000", json={"note": "x"}), 404, "reference")
    detail = api("GET", f"/tickets/{first}", role="governor_office").get_json()
    assert [h["to_status"] for h in detail["history"]] == ["received", "under_review", "referred"]
    assert_error(api("GET", "/tickets/C-0000-0000-0000"), 404)


@pytest.mark.parametrize("query, status, field", [
    ("?status=lost", 400, "status"), ("?kind=x", 400, "kind"), ("?open=yes", 400, "open"),
    ("?limit=0", 400, "limit"), ("?limit=201", 400, "limit"), ("?limit=-1", 400, "limit"),
    ("?department=XXX", 422, "department"),
])
def test_ticket_lists_refuse_bad_filters(api, query, status, field):
    assert_error(api("GET", f"/tickets{query}"), status, field)


# -------------------------------------------------------------------------------------- tracking

def test_track_a_booking_by_national_id_or_mobile(api, client):
    reference = book(api)["reference"]
    for identity in (NID, "0551234567", "+966551234567"):
        response = client.post("/api/v1/track", json={"reference": reference.lower(), "identity": identity})
        assert response.status_code == 200
        body = response.get_json()
        assert body["status"] == "booked" and [s["status"] for s in body["steps"]] == ["booked"]
        assert body["centre"]["name_en"] == "Tawasul centre - Badr" and body["slot_start"]
        assert set(body) == {"reference", "kind", "status", "created_at", "steps", "slot_start", "centre",
                             "follow_ups"}  # nothing else: no name, no code, no staff
        assert NID not in response.get_data(as_text=True) or identity == NID


def test_track_a_complaint(client):
    reference = client.post("/api/v1/tickets", json=complaint()).get_json()["reference"]
    body = client.post("/api/v1/track", json={"reference": reference, "identity": "0551234567"}).get_json()
    assert body["kind"] == "complaint" and body["status"] == "received" and body["centre"] is None


def test_a_wrong_pair_and_an_unknown_reference_get_the_same_answer(api, client):
    reference = book(api)["reference"]
    wrong = client.post("/api/v1/track", json={"reference": reference, "identity": OTHER_NID})
    unknown = client.post("/api/v1/track", json={"reference": "A-0000-0000-0000", "identity": NID})
    garbage = client.post("/api/v1/track", json={"reference": "nonsense", "identity": "x"})
    assert wrong.status_code == unknown.status_code == garbage.status_code == 404
    assert wrong.get_data() == unknown.get_data() == garbage.get_data()


def test_tracking_is_rate_limited_and_checks_its_fields(client):
    assert_error(client.post("/api/v1/track", json={"reference": "A-0000-0000-0000"}), 400, "identity")
    assert_error(client.post("/api/v1/track", json={"reference": "A" * 41, "identity": NID}), 400, "reference")
    statuses = [client.post("/api/v1/track", json={"reference": "A-0000-0000-0000", "identity": NID}).status_code
                for _ in range(10)]
    assert statuses[:8] == [404] * 8 and statuses[8:] == [429, 429]


def test_no_response_carries_a_national_id_the_caller_did_not_send(db, api, client):
    reference = book(api)["reference"]
    filed = client.post("/api/v1/tickets", json=complaint(national_id=NID)).get_json()["reference"]
    with db.write() as session:
        appointment = booking.by_reference(session, reference)
        tickets.issue_directive(session, appointment=appointment, text="متابعة", actor="test",
                                department=tickets.department_by_code(session, "SOC"),
                                due_date=dt.date(2030, 2, 1), today=dt.date(2026, 1, 1))
    bodies = [api("GET", f"/appointments/{reference}"), api("GET", "/tickets"), api("GET", f"/tickets/{filed}"),
              api("GET", f"/slots?date={SUNDAY}"),
              api("POST", f"/appointments/{reference}/check-in"),
              client.post("/api/v1/track", json={"reference": reference, "identity": "0551234567"})]
    for response in bodies:
        assert response.status_code == 200, response.get_json()
        assert NID not in response.get_data(as_text=True)
    tracked = bodies[-1].get_json()
    assert tracked["follow_ups"] and tracked["follow_ups"][0]["status"] == "referred"


# ------------------------------------------------------------------------- schemathesis, bounded

EXAMPLES_PER_OPERATION = 20


def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_document(web_app, db):
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import (
        content_type_conformance, not_a_server_error, response_schema_conformance, status_code_conformance,
    )

    with db.write() as session:  # the document's examples name these
        _row, token = api_tokens.create(session, "schemathesis", Role.STAFF)
        citizen = booking.find_or_register_citizen(session, "1000000008", "فهد الحربي", "0551234567")
        appointment = booking.book(session, citizen=citizen, kind=AppointmentKind.VIDEO,
                                   at=dt.datetime(2030, 1, 6, 6, 0, tzinfo=dt.timezone.utc),
                                   centre=booking.centre_by_code(session, "BDR"), actor="test")
        appointment.reference = "A-7KD4-X9M2-QAZ1"
        ticket = tickets.file_ticket(session, kind=TicketKind.COMPLAINT, subject="s", body="b", category="roads",
                                     mobile="0551234567", today=dt.date(2026, 1, 1), actor="test")
        ticket.reference = "C-7KD4-X9M2-QAZ1"
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", web_app)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    seen, operations = Counter(), 0

    def fuzz(operation):
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            limiter.reset()  # the public routes' limit would otherwise answer most cases with 429
            response = case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=checks)
            seen[(operation.method.upper(), operation.path, response.status_code)] += 1
        run()

    for result in schema.get_all_operations():
        fuzz(result.ok())
        operations += 1
    assert operations >= 11
    assert sum(seen.values()) <= 400  # bounded
    statuses = {status for (_m, _p, status) in seen}
    assert {200, 201}.issubset(statuses), seen  # the examples reached the real paths, not only refusals
    print(json.dumps({f"{m} {p} {s}": n for (m, p, s), n in sorted(seen.items())}, ensure_ascii=False, indent=1))
