"""Staff booking through the Flask test client: every form, every invalid input a clerk could type
(each refused beside its field, nothing written), the outbox, reschedule, cancel, waitlist, check-in."""
import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from tawasul import booking
from tawasul.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    AuditEntry,
    Centre,
    Citizen,
    GovernorSchedule,
    Governorate,
    OutboxMessage,
    WaitlistEntry,
    WaitlistStatus,
)
from tawasul.validation import make_national_id
from tests.conftest import csrf_token

RIYADH = ZoneInfo("Asia/Riyadh")
SUNDAY = dt.date(2030, 1, 6)
NATIONAL_ID = make_national_id("1", "23456789")


def utc(day: dt.date, hour: int, minute: int = 0) -> str:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=RIYADH).astimezone(dt.UTC).isoformat()


def db(web_app):
    return web_app.extensions["tawasul.db"]


def counts(web_app) -> dict:
    with db(web_app).read() as session:
        return {model.__name__: session.scalar(sa.select(sa.func.count()).select_from(model))
                for model in (Citizen, Appointment, OutboxMessage, WaitlistEntry, AuditEntry)}


def governorate_id(web_app, code="BDR") -> int:
    with db(web_app).read() as session:
        return session.scalars(sa.select(Governorate.id).where(Governorate.code == code)).one()


def centre_id(web_app, code) -> int:
    with db(web_app).read() as session:
        return session.scalars(sa.select(Centre.id).where(Centre.code == code)).one()


def citizen_form(web_app, **overrides):
    form = {"national_id": NATIONAL_ID, "name": "فهد بن سالم الحربي", "mobile": "0551234567",
            "governorate": str(governorate_id(web_app)), "language": "ar", "proceed": "1"}
    form.update(overrides)
    return form


def post(client, path, data, token_path=None):
    return client.post(path, data={"csrf_token": csrf_token(client, token_path or path), **data})


def error_beside(page: str, field: str) -> str:
    match = re.search(rf'<p class="error" id="{field}-error"[^>]*>([^<]+)</p>', page)
    assert match, f"no error beside {field}"
    return match.group(1)


@pytest.fixture
def staff(login):
    return login("staff")


def start(client, web_app, **overrides):
    response = post(client, "/booking/", citizen_form(web_app, **overrides))
    assert response.status_code == 302 and response.headers["Location"].endswith("/booking/meeting")
    return response


def choose(client, kind="video", place="nearest_centre", centre=0):
    response = post(client, "/booking/meeting", {"kind": kind, "place": place, "centre": str(centre),
                                                  "proceed": "1"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/booking/slots"), \
        response.get_data(as_text=True)
    return response


def confirm(client, slot, day=SUNDAY, subject=""):
    return post(client, "/booking/slots", {"slot": slot, "day": day.isoformat(), "subject": subject,
                                            "proceed": "1"}, f"/booking/slots?day={day.isoformat()}")


def book_video(client, web_app, hour=9, minute=0, **overrides):
    start(client, web_app, **overrides)
    choose(client)
    response = confirm(client, utc(SUNDAY, hour, minute))
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"].rsplit("/", 1)[1]


# ------------------------------------------------------------------------------- the happy path

def test_book_a_video_session_at_the_nearest_centre(web_app, staff):
    page = staff.get("/booking/").get_data(as_text=True)
    assert 'dir="rtl"' in page and "رقم الهوية الوطنية أو الإقامة" in page and "محافظة السكن" in page
    start(staff, web_app)
    page = staff.get("/booking/meeting").get_data(as_text=True)
    assert "مركز تواصل - محافظة بدر" in page and "(0 كم)" in page  # Badr's own centre, 0 km away
    assert "مركز تواصل - محافظة ينبع — 81 كم" in page  # every other centre with its distance
    choose(staff)
    page = staff.get(f"/booking/slots?day={SUNDAY.isoformat()}").get_data(as_text=True)
    assert page.count('name="slot"') == 9 and "09:00" in page and "11:40" in page
    assert "2 رمضان 1451 هـ" in page
    response = confirm(staff, utc(SUNDAY, 9, 20), subject="طلب متابعة معاملة")
    assert response.status_code == 302
    reference = response.headers["Location"].rsplit("/", 1)[1]
    page = staff.get(f"/booking/{reference}").get_data(as_text=True)
    with db(web_app).read() as session:
        appointment = booking.by_reference(session, reference)
        assert appointment.centre.code == "BDR" and appointment.kind is AppointmentKind.VIDEO
        assert appointment.location_choice.value == "nearest_centre"
        assert appointment.subject == "طلب متابعة معاملة"
        message = session.scalars(sa.select(OutboxMessage)).one()
        actions = session.scalars(sa.select(AuditEntry.action)).all()
    assert reference in page and appointment.checkin_code in page and "09:20" in page
    assert message.to == "+966551234567" and message.sent_at is None and message.language == "ar"
    assert reference in message.body and appointment.checkin_code in message.body
    assert "سمو أمير المنطقة" in message.body and "مركز تواصل - محافظة بدر" in message.body
    assert message.body in page and "@media print" in staff.get("/static/booking.css").get_data(as_text=True)
    assert "citizen.register" in actions and "appointment.book" in actions
    assert NATIONAL_ID not in page
    # the slot is gone from the list
    start(staff, web_app)
    choose(staff)
    assert staff.get(f"/booking/slots?day={SUNDAY.isoformat()}").get_data(as_text=True).count('name="slot"') == 8


def test_english_pages_and_an_english_sms(web_app, staff):
    staff.get("/?lang=en")
    page = staff.get("/booking/").get_data(as_text=True)
    assert 'dir="ltr"' in page and "National ID or iqama number" in page
    start(staff, web_app, language="en")
    choose(staff, place="centre_on_date", centre=centre_id(web_app, "YNB"))
    response = confirm(staff, utc(SUNDAY, 10))
    reference = response.headers["Location"].rsplit("/", 1)[1]
    page = staff.get(f"/booking/{reference}").get_data(as_text=True)
    assert "Booking reference" in page and "Tawasul centre - Yanbu" in page and "10:00" in page
    with db(web_app).read() as session:
        message = session.scalars(sa.select(OutboxMessage)).one()
        appointment = booking.by_reference(session, reference)
        assert appointment.location_choice.value == "centre_on_date" and appointment.centre.code == "YNB"
    assert message.language == "en" and message.body.startswith("Tawasul: your meeting with HH the Governor")
    assert "Sunday 2030-01-06 at 10:00" in message.body


def test_find_an_existing_citizen_fills_the_form_without_the_id_in_the_url(web_app, staff):
    book_video(staff, web_app)
    response = post(staff, "/booking/", {"national_id": NATIONAL_ID, "find": "1"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "فهد بن سالم الحربي" in page and "تم العثور على المستفيد" in page
    response = post(staff, "/booking/", {"national_id": make_national_id("1", "99999999"), "find": "1"})
    assert "لا يوجد مستفيد بهذا الرقم" in response.get_data(as_text=True)
    assert 'method="post"' in page and "national_id=" not in page


def test_in_person_attendance_and_the_door_list(web_app, staff):
    start(staff, web_app)
    choose(staff, kind="in_person")
    page = staff.get(f"/booking/slots?day={SUNDAY.isoformat()}").get_data(as_text=True)
    assert "المقاعد المتبقية: 30" in page and "13:00" in page
    response = confirm(staff, utc(SUNDAY, 13))
    assert response.status_code == 302
    reference = response.headers["Location"].rsplit("/", 1)[1]
    page = staff.get(f"/booking/in-person?date={SUNDAY.isoformat()}").get_data(as_text=True)
    assert reference in page and "فهد بن سالم الحربي" in page and "1 من 30" in page
    assert "<td>1</td>" in page  # seat number
    with db(web_app).read() as session:
        assert "في الجلسة اليومية بمقر إمارة المنطقة (المقعد 1)" in session.scalars(sa.select(OutboxMessage.body)).one()


# ------------------------------------------------------------------- invalid input, nothing written

@pytest.mark.parametrize("field, value, message", [
    ("national_id", "12345", "يجب أن يتكون من 10 أرقام"),
    ("national_id", "12345abcde", "يجب أن يتكون من 10 أرقام"),
    ("national_id", "3000000001", "يجب أن يبدأ بالرقم 1"),
    ("national_id", NATIONAL_ID[:-1] + str((int(NATIONAL_ID[-1]) + 1) % 10), "رقم التحقق غير مطابق"),
    ("national_id", "", "يجب أن يتكون من 10 أرقام"),
    ("name", "", "هذا الحقل مطلوب"),
    ("name", "   ", "هذا الحقل مطلوب"),
    ("name", "ا" * 201, "طويل جداً"),
    ("mobile", "0112345678", "يجب أن يكون رقم جوال"),  # a Riyadh landline
    ("mobile", "hello", "ليس رقم هاتف"),
    ("mobile", "05512", "الرقم غير صحيح"),
    ("mobile", "", "ليس رقم هاتف"),
    ("governorate", "0", "يرجى اختيار محافظة السكن"),
    ("governorate", "9999", "يرجى اختيار محافظة السكن"),
])
def test_every_bad_citizen_field_is_refused_beside_it_and_nothing_is_written(web_app, staff, field, value, message):
    before = counts(web_app)
    response = post(staff, "/booking/", citizen_form(web_app, **{field: value}))
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert message in error_beside(page, field)
    assert f'aria-describedby="{field}-error"' in page
    assert counts(web_app) == before


def test_a_non_number_governorate_is_refused(web_app, staff):
    before = counts(web_app)
    response = post(staff, "/booking/", citizen_form(web_app, governorate="abc"))
    assert response.status_code == 400 and counts(web_app) == before


def test_every_error_shows_at_once(web_app, staff):
    response = post(staff, "/booking/", citizen_form(web_app, national_id="1", name="", mobile="0112345678"))
    page = response.get_data(as_text=True)
    for field in ("national_id", "name", "mobile"):
        error_beside(page, field)


def test_english_field_errors(web_app, staff):
    staff.get("/?lang=en")
    page = post(staff, "/booking/", citizen_form(web_app, mobile="0112345678")).get_data(as_text=True)
    assert error_beside(page, "mobile") == "must be a mobile number"


def test_find_with_a_bad_id_is_refused_beside_the_field(web_app, staff):
    response = post(staff, "/booking/", {"national_id": "1000000000", "find": "1"})
    assert response.status_code == 400
    assert "رقم التحقق غير مطابق" in error_beside(response.get_data(as_text=True), "national_id")


def test_missing_csrf_token_is_refused_and_writes_nothing(web_app, staff):
    before = counts(web_app)
    assert staff.post("/booking/", data=citizen_form(web_app)).status_code == 400
    start(staff, web_app)
    choose(staff)
    before = counts(web_app)
    response = staff.post("/booking/slots", data={"slot": utc(SUNDAY, 9), "day": SUNDAY.isoformat()})
    assert response.status_code == 400 and counts(web_app) == before
    reference = book_video(staff, web_app, 10)
    before = counts(web_app)
    assert staff.post(f"/booking/{reference}/cancel", data={"reason": "x"}).status_code == 400
    assert staff.post(f"/booking/{reference}/check-in").status_code == 400
    assert counts(web_app) == before


def test_meeting_needs_a_kind_and_a_centre_when_another_is_chosen(web_app, staff):
    start(staff, web_app)
    response = post(staff, "/booking/meeting", {"kind": "", "proceed": "1"})
    assert response.status_code == 400 and "يرجى اختيار نوع اللقاء" in response.get_data(as_text=True)
    response = post(staff, "/booking/meeting", {"kind": "teleport", "proceed": "1"})
    assert response.status_code == 400
    response = post(staff, "/booking/meeting", {"kind": "video", "place": "centre_on_date", "centre": "0"})
    assert response.status_code == 400 and "يرجى اختيار مركز" in error_beside(response.get_data(as_text=True), "centre")
    response = post(staff, "/booking/meeting", {"kind": "video", "place": "centre_on_date", "centre": "99999"})
    assert response.status_code == 400


def test_steps_out_of_order_go_back_to_the_start(web_app, staff):
    assert staff.get("/booking/meeting").headers["Location"].endswith("/booking/")
    assert staff.get("/booking/slots").headers["Location"].endswith("/booking/")


@pytest.mark.parametrize("slot, message, status", [
    (utc(dt.date(2020, 1, 5), 9), "تاريخ مضى", 400),                       # in the past
    (utc(SUNDAY, 9, 5), "ليس من مواعيد جلسات", 400),                        # between slots
    (utc(dt.date(2030, 1, 4), 9), "ليس من مواعيد جلسات", 400),              # a Friday
    ("2030-01-06 09:00", "ليس من مواعيد جلسات", 400),                       # no zone
    ("tomorrow at nine", "ليس من مواعيد جلسات", 400),                        # not a time
    ("", "ليس من مواعيد جلسات", 400),                                       # nothing chosen
])
def test_bad_slots_are_refused_beside_the_times_and_nothing_is_written(web_app, staff, slot, message, status):
    start(staff, web_app)
    choose(staff)
    before = counts(web_app)
    response = confirm(staff, slot)
    assert response.status_code == status
    assert message in error_beside(response.get_data(as_text=True), "slot")
    assert counts(web_app) == before


def test_a_taken_slot_is_refused_and_nothing_is_written(web_app, staff):
    book_video(staff, web_app, 9)
    start(staff, web_app, national_id=make_national_id("1", "55555555"))
    choose(staff)
    before = counts(web_app)
    response = confirm(staff, utc(SUNDAY, 9))
    assert response.status_code == 409
    assert "هذا الموعد محجوز" in error_beside(response.get_data(as_text=True), "slot")
    assert counts(web_app) == before


@pytest.mark.parametrize("day, message", [("2030-02-30", "تاريخ غير صحيح"), ("yesterday", "تاريخ غير صحيح"),
                                          ("2020-01-05", "تاريخ مضى")])
def test_bad_days_in_the_day_picker(web_app, staff, day, message):
    start(staff, web_app)
    choose(staff)
    response = staff.get(f"/booking/slots?day={day}")
    assert response.status_code == 400 and message in error_beside(response.get_data(as_text=True), "day")
    response = staff.get(f"/booking/in-person?date={day}")
    assert response.status_code in (200, 400)


def test_a_day_without_a_session(web_app, staff):
    start(staff, web_app)
    choose(staff)
    page = staff.get("/booking/slots?day=2030-01-04").get_data(as_text=True)
    assert "لا توجد جلسة لسمو أمير المنطقة في ذلك اليوم" in page and 'name="slot"' not in page


def _fill_in_person(web_app, capacity=2):
    with db(web_app).write() as session:
        session.scalars(sa.select(GovernorSchedule)).one().in_person_capacity = capacity
        for n in range(capacity):
            person = booking.find_or_register_citizen(session, make_national_id("1", f"7000000{n}"), f"حاضر {n}",
                                                      "0501234567")
            booking.book(session, citizen=person, kind=AppointmentKind.IN_PERSON,
                         at=dt.datetime.fromisoformat(utc(SUNDAY, 13)), actor="test")


def test_a_full_in_person_day_is_refused_and_offers_the_waitlist(web_app, staff):
    _fill_in_person(web_app)
    start(staff, web_app)
    choose(staff, kind="in_person")
    page = staff.get(f"/booking/slots?day={SUNDAY.isoformat()}").get_data(as_text=True)
    assert "اكتملت مواعيد هذا اليوم" in page and "قائمة الانتظار" in page
    before = counts(web_app)
    response = confirm(staff, utc(SUNDAY, 13))
    assert response.status_code == 409
    assert "اكتمل عدد الحضور" in error_beside(response.get_data(as_text=True), "slot")
    assert counts(web_app) == before


def test_waitlist_offer_on_cancel_then_book_the_offer(web_app, staff):
    _fill_in_person(web_app)
    start(staff, web_app, language="en")
    choose(staff, kind="in_person")
    response = post(staff, "/booking/waitlist", {"day": SUNDAY.isoformat()}, f"/booking/slots?day={SUNDAY}")
    assert response.status_code == 302
    with db(web_app).read() as session:
        entry = session.scalars(sa.select(WaitlistEntry)).one()
        assert entry.status is WaitlistStatus.WAITING and entry.language == "en"
        first = session.scalars(sa.select(Appointment).order_by(Appointment.id)).first().reference
    page = staff.get(f"/desk/?date={SUNDAY}").get_data(as_text=True)
    assert 'id="waitlist"' in page and "فهد بن سالم الحربي" in page
    # a second join for the same day is refused
    start(staff, web_app)
    choose(staff, kind="in_person")
    post(staff, "/booking/waitlist", {"day": SUNDAY.isoformat()}, f"/booking/slots?day={SUNDAY}")
    assert counts(web_app)["WaitlistEntry"] == 1
    # cancelling without a reason is refused beside the field; with one, the seat is offered
    response = post(staff, f"/booking/{first}/cancel", {"reason": "  ", "cancel": "1"}, f"/booking/{first}")
    assert response.status_code == 400
    assert "يرجى ذكر سبب الإلغاء" in error_beside(response.get_data(as_text=True), "reason")
    response = post(staff, f"/booking/{first}/cancel", {"reason": "ظرف طارئ", "cancel": "1"}, f"/booking/{first}")
    assert response.status_code == 302
    with db(web_app).read() as session:
        entry = session.scalars(sa.select(WaitlistEntry)).one()
        assert entry.status is WaitlistStatus.OFFERED and entry.offered_slot.isoformat() == utc(SUNDAY, 13)
        bodies = session.scalars(sa.select(OutboxMessage.body).order_by(OutboxMessage.id)).all()
        assert any(body.startswith("Tawasul: a meeting with HH the Governor has become free on Sunday 2030-01-06")
                   for body in bodies)
        assert any("تم إلغاء موعدك" in body for body in bodies)
        assert booking.by_reference(session, first).cancel_reason == "ظرف طارئ"
    # the offered seat is held for the waitlist: a normal booking cannot take it
    start(staff, web_app, national_id=make_national_id("1", "66666666"))
    choose(staff, kind="in_person")
    assert confirm(staff, utc(SUNDAY, 13)).status_code == 409
    page = staff.get(f"/desk/?date={SUNDAY}").get_data(as_text=True)
    assert "عُرض عليه موعد: 13:00" in page
    response = post(staff, f"/booking/waitlist/{entry.id}/book", {}, f"/desk/?date={SUNDAY}")
    assert response.status_code == 302
    with db(web_app).read() as session:
        entry = session.scalars(sa.select(WaitlistEntry)).one()
        assert entry.status is WaitlistStatus.BOOKED
        appointment = session.get(Appointment, entry.appointment_id)
        assert appointment.citizen.name == "فهد بن سالم الحربي" and appointment.status is AppointmentStatus.BOOKED
        actions = session.scalars(sa.select(AuditEntry.action)).all()
    assert {"waitlist.join", "waitlist.offer", "waitlist.book", "appointment.cancel"} <= set(actions)


def test_joining_the_waitlist_of_a_day_with_room_is_refused(web_app, staff):
    start(staff, web_app)
    choose(staff)
    response = post(staff, "/booking/waitlist", {"day": SUNDAY.isoformat()}, f"/booking/slots?day={SUNDAY}")
    assert response.status_code == 302 and counts(web_app)["WaitlistEntry"] == 0
    assert "ما زالت في هذا اليوم مواعيد متاحة" in staff.get(response.headers["Location"]).get_data(as_text=True)


def test_reschedule_moves_keeps_the_reference_and_texts_the_citizen(web_app, staff):
    reference = book_video(staff, web_app, 9)
    page = staff.get(f"/booking/{reference}/reschedule?day={SUNDAY}").get_data(as_text=True)
    assert page.count('name="slot"') == 8
    path = f"/booking/{reference}/reschedule?day={SUNDAY}"
    before = counts(web_app)
    response = post(staff, path, {"slot": utc(dt.date(2020, 1, 5), 9), "day": SUNDAY.isoformat()})
    assert response.status_code == 400 and "تاريخ مضى" in error_beside(response.get_data(as_text=True), "slot")
    assert counts(web_app) == before
    response = post(staff, path, {"slot": utc(SUNDAY, 11, 40), "day": SUNDAY.isoformat()})
    assert response.status_code == 302
    with db(web_app).read() as session:
        appointment = booking.by_reference(session, reference)
        assert appointment.slot_start.isoformat() == utc(SUNDAY, 11, 40)
        body = session.scalars(sa.select(OutboxMessage.body).order_by(OutboxMessage.id.desc())).first()
    assert "تم تغيير موعدك" in body and "11:40" in body


def test_check_in_from_the_desk(web_app, staff):
    reference = book_video(staff, web_app, 9)
    page = staff.get(f"/desk/?date={SUNDAY}").get_data(as_text=True)
    assert f"/booking/{reference}/check-in" in page
    response = post(staff, f"/booking/{reference}/check-in", {}, f"/desk/?date={SUNDAY}")
    assert response.status_code == 302
    with db(web_app).read() as session:
        assert booking.by_reference(session, reference).status is AppointmentStatus.CHECKED_IN
    # a second check-in is refused with a message, and changes nothing
    before = counts(web_app)
    response = post(staff, f"/booking/{reference}/check-in", {}, "/booking/")
    assert "لم يعد بالإمكان تعديل هذا الموعد" in staff.get(response.headers["Location"]).get_data(as_text=True)
    assert counts(web_app) == before


def test_the_desk_sees_an_appointment_locked_by_wrong_codes_and_unlocks_it_by_checking_in(web_app, staff):
    reference = book_video(staff, web_app, 9)
    assert post(staff, f"/booking/{reference}/check-in", {}, f"/desk/?date={SUNDAY}").status_code == 302
    assert "مقفل" not in staff.get(f"/desk/?date={SUNDAY}").get_data(as_text=True)
    with db(web_app).write() as session:  # five wrong codes keyed on calls (route_call counts them)
        booking.by_reference(session, reference).code_failures = booking.WRONG_CODE_LIMIT
    page = staff.get(f"/desk/?date={SUNDAY}").get_data(as_text=True)
    assert "مقفل: أُدخلت رموز حجز خاطئة كثيرة" in page and f"/booking/{reference}/check-in" in page
    assert post(staff, f"/booking/{reference}/check-in", {}, f"/desk/?date={SUNDAY}").status_code == 302
    with db(web_app).read() as session:
        appointment = booking.by_reference(session, reference)
        assert (appointment.status, appointment.code_failures) == (AppointmentStatus.CHECKED_IN, 0)
    assert "مقفل" not in staff.get(f"/desk/?date={SUNDAY}").get_data(as_text=True)


def test_governor_office_may_view_but_not_book(web_app, login):
    client = login("governor_office")
    assert client.get("/booking/").status_code == 403
    assert client.get(f"/booking/in-person?date={SUNDAY}").status_code == 200
    assert client.get("/booking/A-0000-0000-0000").status_code == 404


def test_it_admin_is_refused(web_app, login):
    client = login("it_admin")
    assert client.get("/booking/").status_code == 403
    assert client.get("/booking/in-person").status_code == 403


def test_the_national_id_is_never_in_a_redirect_or_the_session_cookie(web_app, staff):
    response = start(staff, web_app)
    assert NATIONAL_ID not in response.headers["Location"]
    from flask.sessions import SecureCookieSessionInterface
    serializer = SecureCookieSessionInterface().get_signing_serializer(web_app)
    state = serializer.loads(staff.get_cookie("session").value)
    assert NATIONAL_ID not in repr(state) and "citizen_id" in state["booking"]
