"""Public tracking: reference plus national ID or mobile, by POST; no enumeration; rate limited."""
import dataclasses
import datetime as dt
import re

import pytest
import sqlalchemy as sa

from tawasul import booking, references, tickets
from tawasul.models import AppointmentKind, Ticket, TicketStatus
from tawasul.validation import make_national_id
from tests.conftest import csrf_token
from tests.unit.test_web_tickets import NATIONAL_ID, db, file_one, update

OTHER_ID = make_national_id("2", "87654321")


def track(client, reference, identity, token=None):
    return client.post("/track/", data={"csrf_token": token or csrf_token(client, "/track/"),
                                        "reference": reference, "identity": identity})


def test_the_tracking_form_is_arabic_and_posts(client):
    page = client.get("/track/").get_data(as_text=True)
    assert 'method="post" action="/track/"' in page and "متابعة طلب" in page
    assert "معاملاتك دون تحمل عناء الوصول" in page


def test_the_right_pair_shows_status_and_dated_history_and_nothing_else(web_app, client, login):
    reference = file_one(client)
    staff = login("staff")
    with db(web_app).read() as session:
        ticket_id = session.scalars(sa.select(Ticket.id).where(Ticket.reference == reference)).one()
    update(staff, ticket_id, status="under_review", note="ملاحظة داخلية سرية")
    update(staff, ticket_id, note="ملاحظة أخرى دون تغيير")
    public = web_app.test_client()
    response = track(public, reference, NATIONAL_ID)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert re.findall(r'<span class="step">([^<]+)</span>', page) == ["تم الاستلام", "قيد الدراسة"]
    assert '<strong class="status">قيد الدراسة</strong>' in page and "هـ" in page  # Hijri dates too
    for secret in ("ملاحظة داخلية", "ملاحظة أخرى", "staff", "Reception staff", "حفرة كبيرة", NATIONAL_ID,
                   "0551234567", "+966551234567", "الطرق والنقل"):
        assert secret not in page, secret


@pytest.mark.parametrize("typed_reference, identity", [
    ("{ref}", "0551234567"),
    ("{ref}", "+966 55 123 4567"),
    ("{lower}", NATIONAL_ID),
    ("{nodash}", NATIONAL_ID),
    ("{o_for_0}", f" {NATIONAL_ID} "),
], ids=["mobile", "international mobile", "lower case", "no dashes", "O typed for 0"])
def test_typing_is_tolerated(web_app, client, monkeypatch, typed_reference, identity):
    # A reference with a 0 in it for the O case (two in three have none; filing until one came
    # would meet the public form's rate limit now and then).
    def with_a_zero(kind):
        made = references.new_reference(kind)
        return made[:2] + "0" + made[3:]

    monkeypatch.setattr(tickets, "new_reference", with_a_zero)
    reference = file_one(client)
    assert "0" in reference
    typed = typed_reference.format(ref=reference, lower=reference.lower(), nodash=reference.replace("-", ""),
                                   o_for_0=reference.replace("0", "O"))
    response = track(web_app.test_client(), typed, identity)
    assert response.status_code == 200 and reference in response.get_data(as_text=True)


def test_a_wrong_pair_and_an_unknown_reference_get_the_same_bytes(web_app, client):
    reference = file_one(client)
    answers = []
    for ref, identity in [(reference, OTHER_ID), (reference, "0559999999"),
                          ("C-ZZZZ-ZZZZ-ZZZZ", NATIONAL_ID), ("C-ZZZZ-ZZZZ-ZZZZ", OTHER_ID),
                          ("not a reference", NATIONAL_ID), (reference, "hello")]:
        response = track(web_app.test_client(), ref, identity)
        answers.append((response.status_code, response.data))
    assert len(set(answers)) == 1
    assert answers[0][0] == 404 and "لا يوجد طلب يطابق".encode() in answers[0][1]
    assert reference.encode() not in answers[0][1]


def test_a_suggestion_filed_without_contact_details_cannot_be_tracked(web_app, client):
    reference = file_one(client, national_id="", mobile="")
    unknown = track(web_app.test_client(), "C-ZZZZ-ZZZZ-ZZZZ", NATIONAL_ID)
    mine = track(web_app.test_client(), reference, NATIONAL_ID)
    assert (mine.status_code, mine.data) == (unknown.status_code, unknown.data)


@pytest.mark.parametrize("reference, identity, field", [
    ("", NATIONAL_ID, "reference"), ("C-1111-2222-3333", "", "identity"), ("C" * 41, NATIONAL_ID, "reference"),
], ids=["no reference", "no identity", "reference too long"])
def test_an_empty_or_overlong_field_is_a_field_error(client, reference, identity, field):
    response = track(client, reference, identity)
    errors = re.findall(r'<p class="error" id="([a-z_]+)-error">', response.get_data(as_text=True))
    assert response.status_code == 400 and errors == [field]


def test_tracking_needs_the_csrf_token_and_is_never_a_get_lookup(web_app, client):
    reference = file_one(client)
    assert client.post("/track/", data={"reference": reference, "identity": NATIONAL_ID}).status_code == 400
    page = client.get(f"/track/?reference={reference}&identity={NATIONAL_ID}").get_data(as_text=True)
    assert "قيد الدراسة" not in page and "تم الاستلام" not in page and 'name="reference"' in page


def test_tracking_is_rate_limited(web_app, client):
    token = csrf_token(client, "/track/")
    statuses = [track(client, "C-ZZZZ-ZZZZ-ZZZZ", NATIONAL_ID, token).status_code for _ in range(11)]
    assert statuses == [404] * 10 + [429]


def test_a_booking_and_its_directives_are_tracked(web_app, login):
    with db(web_app).write() as session:
        citizen = booking.find_or_register_citizen(session, NATIONAL_ID, "سالم الجهني", "0551234567")
        appointment = booking.book(session, citizen=citizen, kind=AppointmentKind.VIDEO,
                                   at=dt.datetime(2030, 1, 6, 6, 0, tzinfo=dt.timezone.utc),
                                   centre=booking.centre_by_code(session, "BDR"), actor="staff")
        directive = tickets.issue_directive(
            session, appointment=appointment, text="متابعة مطلبه واتخاذ اللازم",
            department=tickets.department_by_code(session, "MUN"), due_date=dt.date(2030, 2, 1),
            today=dt.date(2030, 1, 6), actor="governor_office")
        tickets.move(session, directive, TicketStatus.UNDER_REVIEW, "staff", "داخلي")
        booking_reference, directive_reference = appointment.reference, directive.reference
    public = web_app.test_client()
    page = track(public, booking_reference, NATIONAL_ID).get_data(as_text=True)
    assert "موعد مع سمو الأمير" in page and "مركز تواصل - محافظة بدر" in page
    assert re.findall(r'<span class="step">([^<]+)</span>', page) == ["محجوز"]
    assert directive_reference in page and "قيد الدراسة" in page and "سالم" not in page
    page = track(public, directive_reference, "0551234567").get_data(as_text=True)
    assert "توجيه سمو الأمير" in page
    assert re.findall(r'<span class="step">([^<]+)</span>', page) == ["أحيل إلى الإدارة المختصة", "قيد الدراسة"]
    assert "داخلي" not in page and "متابعة مطلبه" not in page


@pytest.mark.parametrize("proxies", [0, 1])
def test_the_rate_limit_is_per_client_behind_a_proxy_and_cannot_be_dodged_without_one(web_app, proxies):
    """Behind nginx (web_proxies = 1) the limit counts each client's address from X-Forwarded-For, not
    the proxy's one address for everybody; without a proxy the header is ignored, so it cannot be
    used to get a fresh limit."""
    from web import create_app

    settings = dataclasses.replace(web_app.extensions["tawasul.settings"], web_proxies=proxies)
    app = create_app({"TAWASUL_SETTINGS": settings, "TESTING": True})
    client = app.test_client()

    def status(address):
        return client.post("/api/v1/track", json={"reference": "C-ZZZZ-ZZZZ-ZZZZ", "identity": NATIONAL_ID},
                           headers={"X-Forwarded-For": address, "X-Forwarded-Proto": "https"}).status_code

    assert [status("198.51.100.7") for _ in range(11)] == [404] * 10 + [429]
    assert status("198.51.100.8") == (404 if proxies else 429)
    app.extensions["tawasul.db"].dispose()
