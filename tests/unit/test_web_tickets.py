"""Complaints and suggestions (public and staff forms), department updates, attachments, overdue list
and the Governor's directives, through the Flask test client with CSRF and rate limits on."""
import datetime as dt
import io
import re

import pytest
import sqlalchemy as sa

from tawasul import booking
from tawasul.models import (Appointment, AppointmentKind, Attachment, AuditEntry, Ticket, TicketEvent, TicketKind,
                            TicketStatus)
from tawasul.validation import make_national_id
from tests.conftest import csrf_token

NATIONAL_ID = make_national_id("1", "23456789")
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 64


def db(app):
    return app.extensions["tawasul.db"]


def post_public(client, files=(), token=None, **fields):
    data = {"csrf_token": csrf_token(client, "/complaints/new") if token is None else token,
            "kind": "complaint", "category": "roads", "subject": "حفرة كبيرة في طريق المحافظة",
            "body": "توجد حفرة كبيرة أمام مبنى المحافظة منذ شهر.", "national_id": NATIONAL_ID,
            "mobile": "0551234567", "website": ""}
    data.update(fields)
    if not token and token is not None:
        del data["csrf_token"]
    data["attachments"] = [(io.BytesIO(content), name) for name, content in files]
    return client.post("/complaints/new", data=data, content_type="multipart/form-data")


def ticket_count(app):
    with db(app).read() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(Ticket))


def stored_files(app):
    folder = app.extensions["tawasul.settings"].state_dir / "attachments"
    return sorted(folder.iterdir()) if folder.exists() else []


def file_one(client, **fields) -> str:
    response = post_public(client, **fields)
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    return re.search(r'class="reference" dir="ltr">([^<]+)<', page).group(1)


def ticket_by_reference(app, reference):
    with db(app).read() as session:
        ticket = session.scalars(sa.select(Ticket).where(Ticket.reference == reference)).one()
        ticket.history, ticket.attachments, ticket.department  # loaded while the session is open
        return ticket


# --- the public form ---

def test_public_form_is_arabic_with_a_hidden_honeypot(client):
    page = client.get("/complaints/new").get_data(as_text=True)
    assert "تقديم شكوى أو مقترح" in page and "دون تحمل عناء الوصول" in page
    assert re.search(r'<div hidden aria-hidden="true">.*name="website"', page)
    assert 'enctype="multipart/form-data"' in page and "الخدمات البلدية" in page


def test_a_public_complaint_gets_a_reference_routed_by_category_with_a_due_date(web_app, client):
    response = post_public(client, files=[("صورة الحفرة.png", PNG), ("report.PDF", PDF)])
    assert response.status_code == 302 and response.headers["Location"] == "/complaints/received"
    page = client.get("/complaints/received").get_data(as_text=True)
    assert "تم استلام طلبك" in page
    reference = re.search(r'class="reference" dir="ltr">([^<]+)<', page).group(1)
    assert re.fullmatch(r"C-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", reference)
    assert client.get("/complaints/received").status_code == 302  # shown once
    ticket = ticket_by_reference(web_app, reference)
    assert ticket.status is TicketStatus.RECEIVED and ticket.kind is TicketKind.COMPLAINT
    assert ticket.department.code == "TRN" and ticket.category == "roads"
    assert ticket.contact_national_id == NATIONAL_ID and ticket.contact_mobile == "+966551234567"
    assert (ticket.due_date - ticket.created_at.date()).days in (13, 14, 15)  # local day vs UTC day
    assert [(a.original_name, a.content_type) for a in ticket.attachments] == [
        ("صورة الحفرة.png", "image/png"), ("report.PDF", "application/pdf")]
    files = stored_files(web_app)
    assert len(files) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", f.name) for f in files)
    assert {f.stat().st_mode & 0o777 for f in files} == {0o600}
    with db(web_app).read() as session:
        actions = session.scalars(sa.select(AuditEntry.action).order_by(AuditEntry.id)).all()
        details = session.scalars(sa.select(AuditEntry.detail)).all()
    assert actions[-3:] == ["ticket.open", "attachment.add", "attachment.add"]
    assert NATIONAL_ID not in repr(details)


def test_a_suggestion_without_contact_details_is_accepted(web_app, client):
    reference = file_one(client, kind="suggestion", category="education", national_id="", mobile="")
    ticket = ticket_by_reference(web_app, reference)
    assert reference.startswith("S-") and ticket.kind is TicketKind.SUGGESTION
    assert ticket.contact_national_id is None and ticket.contact_mobile is None and ticket.department.code == "EDU"


BAD_INPUTS = {
    "empty subject": (dict(subject="   "), (), "subject", "هذا الحقل مطلوب"),
    "subject too long": (dict(subject="ع" * 301), (), "subject", "300 حرف"),
    "empty body": (dict(body=""), (), "body", "هذا الحقل مطلوب"),
    "body too long": (dict(body="x" * 5001), (), "body", "5000 حرف"),
    "no category": (dict(category=""), (), "category", "اختر التصنيف"),
    "unknown category": (dict(category="weather"), (), "category", "اختر التصنيف"),
    "unknown kind": (dict(kind="directive"), (), "kind", "اختر شكوى أو مقترح"),
    "short national ID": (dict(national_id="12345"), (), "national_id", "10 أرقام"),
    "national ID starting with 3": (dict(national_id="3000000000"), (), "national_id", "يبدأ بالرقم 1"),
    "wrong check digit": (dict(national_id=NATIONAL_ID[:9] + str((int(NATIONAL_ID[9]) + 1) % 10)), (),
                          "national_id", "رقم التحقق"),
    "letters for a mobile": (dict(mobile="abc"), (), "mobile", "ليس رقم هاتف"),
    "landline for a mobile": (dict(mobile="0148475000"), (), "mobile", "رقم جوال"),
    "exe renamed pdf": ({}, [("invoice.pdf", EXE)], "attachments", "ليس PDF أو JPEG أو PNG"),
    "png content named jpg": ({}, [("photo.jpg", PNG)], "attachments", "ليس PDF أو JPEG أو PNG"),
    "exe": ({}, [("setup.exe", EXE)], "attachments", "تقبل ملفات PDF أو JPEG أو PNG فقط"),
    "no extension": ({}, [("scan", PDF)], "attachments", "تقبل ملفات PDF أو JPEG أو PNG فقط"),
    "too large": ({}, [("big.pdf", PDF + b"0" * (2 * 1024 * 1024))], "attachments", "2 ميجابايت"),
    "empty file": ({}, [("empty.pdf", b"")], "attachments", "الملف فارغ"),
    "four files": ({}, [("a.pdf", PDF), ("b.pdf", PDF), ("c.png", PNG), ("d.jpg", JPEG)], "attachments",
                   "3 ملفات"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_every_invalid_public_input_is_a_field_error_and_nothing_is_written(web_app, client, case):
    fields, files, field, message = BAD_INPUTS[case]
    response = post_public(client, files=files, **fields)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    errors = re.findall(r'<p class="error" id="([a-z_]+)-error">([^<]+)</p>', page)
    assert [f for f, _text in errors] == [field], errors
    assert message in errors[0][1]
    assert ticket_count(web_app) == 0 and stored_files(web_app) == []
    if fields.get("subject", "").strip():
        assert fields["subject"][:50] in page  # what was typed is kept


def test_a_filled_honeypot_is_thanked_and_silently_dropped(web_app, client):
    response = post_public(client, files=[("a.pdf", PDF)], website="http://spam.example")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "شكراً لك" in page and 'class="reference"' not in page
    assert ticket_count(web_app) == 0 and stored_files(web_app) == []


def test_a_public_post_without_the_csrf_token_is_refused(web_app, client):
    response = post_public(client, token="")
    assert response.status_code == 400 and ticket_count(web_app) == 0


def test_the_public_form_is_rate_limited(web_app, client):
    statuses = [post_public(client, subject="").status_code for _ in range(11)]
    assert statuses == [400] * 10 + [429]


def test_the_whole_upload_can_carry_three_files_of_nearly_2_mb(web_app, client):
    big = PDF + b"0" * (2 * 1024 * 1024 - len(PDF) - 1)
    reference = file_one(client, files=[("a.pdf", big), ("b.pdf", big), ("c.pdf", big)])
    assert len(ticket_by_reference(web_app, reference).attachments) == 3


def use_settings(app, **changes):
    import dataclasses
    app.extensions["tawasul.settings"] = dataclasses.replace(app.extensions["tawasul.settings"], **changes)


def test_public_attachments_have_an_overall_quota_and_a_free_space_floor(web_app, client, login):
    """Review finding 13: repeated public filings cannot fill the disk."""
    import shutil

    two_mb = PDF + b"0" * (2 * 1024 * 1024 - len(PDF) - 1)
    use_settings(web_app, public_attachments_mb_a_day=3)
    file_one(client, files=[("a.pdf", two_mb)])
    response = post_public(client, files=[("b.pdf", two_mb)])
    assert response.status_code == 400 and "لا يمكن استقبال الملفات حالياً" in response.get_data(as_text=True)
    assert ticket_count(web_app) == 1 and len(stored_files(web_app)) == 1
    file_one(client)  # without files, still welcome
    staff = login("staff")
    assert post_staff(staff, attachments=[(io.BytesIO(two_mb), "c.pdf")]).status_code == 302  # staff: no quota
    assert len(stored_files(web_app)) == 2

    free_mb = shutil.disk_usage(web_app.extensions["tawasul.settings"].state_dir).free // (1024 * 1024)
    use_settings(web_app, public_attachments_mb_a_day=500, free_space_floor_mb=free_mb + 10_000)  # the disk is short of the floor
    assert post_staff(staff, attachments=[(io.BytesIO(PNG), "d.png")]).status_code == 400
    assert len(stored_files(web_app)) == 2 and ticket_count(web_app) == 3


# --- staff ---

def post_staff(client, **fields):
    data = {"csrf_token": csrf_token(client, "/tickets/new"), "kind": "complaint", "category": "health",
            "subject": "تأخر موعد المستشفى", "body": "شكوى مقدمة عبر مركز الاستقبال.", "national_id": "",
            "mobile": "", "department": "", "due_date": ""}
    data.update(fields)
    return client.post("/tickets/new", data=data, content_type="multipart/form-data")


def test_staff_record_a_complaint_for_a_chosen_department_and_due_date(web_app, login):
    client = login("staff")
    due = (dt.date.today() + dt.timedelta(days=5)).isoformat()
    response = post_staff(client, department="SOC", due_date=due)
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    reference = re.search(r'class="reference" dir="ltr">([^<]+)<', page).group(1)
    ticket = ticket_by_reference(web_app, reference)
    assert ticket.department.code == "SOC" and ticket.due_date.isoformat() == due
    assert ticket.history[0].actor == "staff" and "الخدمات الاجتماعية" in page


@pytest.mark.parametrize("fields, field, message", [
    (dict(subject=""), "subject", "هذا الحقل مطلوب"),
    (dict(due_date="2001-01-01"), "due_date", "في الماضي"),
    (dict(due_date="31/31/2030"), "due_date", "التاريخ غير صالحة"),
    (dict(department="NOPE"), "department", "اختر الإدارة"),
    (dict(national_id="1111111111"), "national_id", "رقم التحقق"),
], ids=["empty subject", "past due date", "bad date", "unknown department", "bad national ID"])
def test_invalid_staff_input_is_a_field_error(web_app, login, fields, field, message):
    response = post_staff(login("staff"), **fields)
    errors = re.findall(r'<p class="error" id="([a-z_]+)-error">([^<]+)</p>', response.get_data(as_text=True))
    assert response.status_code == 400 and [f for f, _t in errors] == [field] and message in errors[0][1]
    assert ticket_count(web_app) == 0


def test_the_staff_form_needs_the_staff_role(web_app, client, login):
    assert client.get("/tickets/new").status_code == 302
    assert login("it_admin").get("/tickets/new").status_code == 403


def update(client, ticket_id, **fields):
    data = {"csrf_token": csrf_token(client, f"/tickets/{ticket_id}"), "status": "", "department": "", "note": ""}
    data.update(fields)
    return client.post(f"/tickets/{ticket_id}/update", data=data)


def test_a_department_moves_a_ticket_through_its_statuses_with_full_history(web_app, client, login):
    reference = file_one(client, category="municipal")
    ticket_id = ticket_by_reference(web_app, reference).id
    staff = login("staff")
    listing = staff.get("/tickets/?department=MUN").get_data(as_text=True)
    assert reference in listing and "الخدمات البلدية" in listing
    assert reference not in staff.get("/tickets/?department=HLT").get_data(as_text=True)
    assert update(staff, ticket_id, status="under_review", note="تمت مخاطبة البلدية").status_code == 302
    assert update(staff, ticket_id, status="referred").status_code == 302
    assert update(staff, ticket_id, department="TRN", note="من اختصاص الطرق").status_code == 302
    assert update(staff, ticket_id, status="resolved").status_code == 302
    assert update(staff, ticket_id, status="closed").status_code == 302
    ticket = ticket_by_reference(web_app, reference)
    assert ticket.status is TicketStatus.CLOSED and ticket.department.code == "TRN"
    assert [(e.from_status, e.to_status) for e in ticket.history] == [
        ("", "received"), ("received", "under_review"), ("under_review", "referred"),
        ("referred", "referred"), ("referred", "resolved"), ("resolved", "closed")]
    assert ticket.history[1].note == "تمت مخاطبة البلدية" and ticket.history[1].actor == "staff"
    with db(web_app).read() as session:
        actions = session.scalars(sa.select(AuditEntry.action).where(
            AuditEntry.entity == "ticket", AuditEntry.entity_id == str(ticket_id)).order_by(AuditEntry.id)).all()
    assert actions == ["ticket.open", "ticket.move", "ticket.move", "ticket.route", "ticket.note",
                       "ticket.move", "ticket.move"]
    page = staff.get(f"/tickets/{ticket_id}").get_data(as_text=True)
    assert "مغلق" in page and "تمت مخاطبة البلدية" in page and f'action="/tickets/{ticket_id}/update"' not in page


@pytest.mark.parametrize("fields, field, message", [
    (dict(status="resolved"), "status", "لا يمكن نقل هذا الطلب"),
    (dict(status="archived"), "status", "اختر الحالة"),
    (dict(), "status", "اختر حالة جديدة"),
    (dict(department="NOPE"), "department", "اختر الإدارة"),
    (dict(status="under_review", note="x" * 1001), "note", "1000 حرف"),
], ids=["wrong transition", "unknown status", "nothing to do", "unknown department", "note too long"])
def test_a_wrong_update_is_a_field_error_and_changes_nothing(web_app, client, login, fields, field, message):
    ticket = ticket_by_reference(web_app, file_one(client))
    staff = login("staff")
    response = update(staff, ticket.id, **fields)
    errors = re.findall(r'<p class="error" id="([a-z_]+)-error">([^<]+)</p>', response.get_data(as_text=True))
    assert response.status_code == 400 and [f for f, _t in errors] == [field] and message in errors[0][1]
    after = ticket_by_reference(web_app, ticket.reference)
    assert after.status is TicketStatus.RECEIVED and len(after.history) == 1
    assert after.department_id == ticket.department_id


def test_an_update_without_csrf_or_by_the_wrong_role_is_refused(web_app, client, login):
    ticket = ticket_by_reference(web_app, file_one(client))
    staff = login("staff")
    assert staff.post(f"/tickets/{ticket.id}/update", data={"status": "under_review"}).status_code == 400
    other = web_app.test_client()
    from tests.unit.test_web_auth import post_login
    post_login(other, "governor_office", web_app.demo_passwords["governor_office"])
    page = other.get(f"/tickets/{ticket.id}").get_data(as_text=True)  # the office may read it, not update it
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert other.post(f"/tickets/{ticket.id}/update", data={"csrf_token": token, "status": "under_review"}
                      ).status_code == 403
    assert ticket_by_reference(web_app, ticket.reference).status is TicketStatus.RECEIVED


def test_the_overdue_list_shows_open_tickets_past_their_due_date(web_app, client, login):
    late = ticket_by_reference(web_app, file_one(client, subject="متأخرة"))
    on_time = ticket_by_reference(web_app, file_one(client, subject="في وقتها"))
    with db(web_app).write() as session:
        session.get(Ticket, late.id).due_date = dt.date.today() - dt.timedelta(days=3)
    page = login("staff").get("/tickets/overdue").get_data(as_text=True)
    assert late.reference in page and on_time.reference not in page and "الطلبات المتأخرة" in page


def test_staff_download_attachments_and_the_public_cannot(web_app, client, login):
    ticket = ticket_by_reference(web_app, file_one(client, files=[("تقرير.pdf", PDF)]))
    attachment = ticket.attachments[0]
    url = f"/tickets/{ticket.id}/attachments/{attachment.id}"
    assert web_app.test_client().get(url).status_code == 302  # to the sign-in page
    staff = login("staff")
    response = staff.get(url)
    assert response.status_code == 200 and response.data == PDF
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert "private" in response.headers["Cache-Control"]
    assert staff.get(f"/tickets/{ticket.id + 1}/attachments/{attachment.id}").status_code == 404
    with db(web_app).read() as session:
        assert "attachment.download" in session.scalars(sa.select(AuditEntry.action)).all()


# --- the Governor's directives ---

@pytest.fixture
def appointment(web_app):
    with db(web_app).write() as session:
        citizen = booking.find_or_register_citizen(session, NATIONAL_ID, "سالم الجهني", "0551234567")
        at = dt.datetime(2030, 1, 6, 6, 0, tzinfo=dt.timezone.utc)
        appointment = booking.book(session, citizen=citizen, kind=AppointmentKind.VIDEO, at=at,
                                   centre=booking.centre_by_code(session, "YNB"), actor="test")
        return appointment.id, appointment.reference


def post_directive(client, appointment_id, **fields):
    url = f"/followups/appointment/{appointment_id}"
    data = {"csrf_token": csrf_token(client, url), "text": "متابعة مطلبه واتخاذ اللازم بشأن الطريق",
            "department": "TRN", "due_date": (dt.date.today() + dt.timedelta(days=10)).isoformat()}
    data.update(fields)
    return client.post(url, data=data)


def test_the_governors_office_turns_a_directive_into_a_follow_up(web_app, login, appointment):
    appointment_id, _reference = appointment
    office = login("governor_office")
    assert f"/followups/appointment/{appointment_id}" in office.get("/desk/?date=2030-01-06").get_data(as_text=True)
    response = post_directive(office, appointment_id)
    assert response.status_code == 302
    with db(web_app).read() as session:
        ticket = session.scalars(sa.select(Ticket).where(Ticket.kind == TicketKind.DIRECTIVE)).one()
        assert ticket.reference.startswith("D-") and ticket.appointment_id == appointment_id
        assert ticket.status is TicketStatus.REFERRED and ticket.department.code == "TRN"
        assert ticket.citizen.national_id == NATIONAL_ID
        assert session.get(Appointment, appointment_id).reference
    assert ticket.reference in office.get("/followups/").get_data(as_text=True)
    assert ticket.reference in office.get(f"/followups/appointment/{appointment_id}").get_data(as_text=True)


@pytest.mark.parametrize("fields, field, message", [
    (dict(text=""), "text", "هذا الحقل مطلوب"),
    (dict(text="x" * 1001), "text", "1000 حرف"),
    (dict(department=""), "department", "اختر الإدارة المكلفة"),
    (dict(due_date=""), "due_date", "هذا الحقل مطلوب"),
    (dict(due_date="2001-01-01"), "due_date", "في الماضي"),
], ids=["empty", "too long", "no department", "no due date", "past due date"])
def test_an_invalid_directive_is_a_field_error(web_app, login, appointment, fields, field, message):
    response = post_directive(login("governor_office"), appointment[0], **fields)
    errors = re.findall(r'<p class="error" id="([a-z_]+)-error">([^<]+)</p>', response.get_data(as_text=True))
    assert response.status_code == 400 and [f for f, _t in errors] == [field] and message in errors[0][1]
    assert ticket_count(web_app) == 0


def test_directives_are_for_the_governors_office_only(web_app, login, appointment):
    staff = login("staff")
    assert staff.get(f"/followups/appointment/{appointment[0]}").status_code == 403
    assert login("governor_office").get("/followups/appointment/999").status_code == 404


def test_a_department_updates_a_directive(web_app, login, appointment):
    post_directive(login("governor_office"), appointment[0])
    with db(web_app).read() as session:
        ticket_id = session.scalars(sa.select(Ticket.id)).one()
    staff = web_app.test_client()
    from tests.unit.test_web_auth import post_login
    post_login(staff, "staff", web_app.demo_passwords["staff"])
    assert "متابعة" in staff.get("/tickets/?department=TRN").get_data(as_text=True)
    assert update(staff, ticket_id, status="resolved", note="تم إصلاح الطريق").status_code == 302
    with db(web_app).read() as session:
        events = session.scalars(sa.select(TicketEvent.to_status).where(TicketEvent.ticket_id == ticket_id)).all()
    assert events == ["referred", "resolved"]


def test_no_orphan_attachment_rows(web_app, client):
    file_one(client, files=[("a.png", PNG)])
    with db(web_app).read() as session:
        rows = session.scalars(sa.select(Attachment)).all()
    assert [r.stored_name for r in rows] == [f.name for f in stored_files(web_app)]


# --- review finding 3: a public filing cannot write on someone else's record ---

def test_anyone_can_write_on_a_citizens_record_is_closed(web_app, client, login, appointment):
    """A public complaint that gives a citizen's national ID keeps its own contact details, marked
    self-declared: it is not theirs in the console's history until staff check the filer's identity."""
    from web.console import history

    reference = file_one(client)  # the public form, with the national ID of the citizen booked above
    ticket = ticket_by_reference(web_app, reference)
    assert ticket.citizen_id is None and ticket.contact_national_id == NATIONAL_ID
    with db(web_app).read() as session:
        assert history(session, session.get(Appointment, appointment[0]))[1] == []

    staff = login("staff")
    page = staff.get(f"/tickets/{ticket.id}").get_data(as_text=True)
    assert "لم يُتحقق منه" in page and "سالم الجهني" not in page
    link = f"/tickets/{ticket.id}/link-citizen"
    assert staff.post(link, data={}).status_code == 400  # no CSRF token
    assert staff.post(link, data={"csrf_token": csrf_token(staff, f"/tickets/{ticket.id}")}).status_code == 302
    page = staff.get(f"/tickets/{ticket.id}").get_data(as_text=True)
    assert "سالم الجهني" in page and "لم يُتحقق منه" not in page
    with db(web_app).read() as session:
        assert [t.reference for t in history(session, session.get(Appointment, appointment[0]))[1]] == [reference]
        assert session.scalars(sa.select(AuditEntry.action).where(
            AuditEntry.action == "ticket.link_citizen")).all() == ["ticket.link_citizen"]


def test_a_public_api_filing_is_self_declared_too(web_app, client, appointment):
    response = client.post("/api/v1/tickets", json={
        "kind": "complaint", "category": "roads", "subject": "طريق", "body": "حفرة في الطريق",
        "national_id": NATIONAL_ID})
    assert response.status_code == 201, response.get_data(as_text=True)
    ticket = ticket_by_reference(web_app, response.get_json()["reference"])
    assert ticket.citizen_id is None and ticket.contact_national_id == NATIONAL_ID


def test_staff_filing_joins_the_citizens_record(web_app, login, appointment):
    staff = login("staff")
    data = {"csrf_token": csrf_token(staff, "/tickets/new"), "kind": "complaint", "category": "roads",
            "subject": "حفرة", "body": "حفرة أمام المبنى", "national_id": NATIONAL_ID, "mobile": "",
            "department": "", "due_date": ""}
    assert staff.post("/tickets/new", data=data).status_code == 302
    with db(web_app).read() as session:
        ticket = session.scalars(sa.select(Ticket)).one()
        assert ticket.citizen.national_id == NATIONAL_ID
