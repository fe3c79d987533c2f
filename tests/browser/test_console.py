"""The governor's console in real Chromium over the real gunicorn server (gthread workers): the
day's sessions in Arabic, and a check-in at the reception desk (another browser) showing on the
console live, by server-sent events, without a reload."""
import datetime as dt

import pytest
import sqlalchemy as sa

from tawasul import references
from tawasul.db import Database
from tawasul.models import (
    Appointment,
    AppointmentKind,
    AppointmentStatus,
    Centre,
    Citizen,
)
from tawasul.validation import make_national_id
from tests.browser.test_booking import sign_in

pytestmark = pytest.mark.browser


def add_due_session(db_url: str, name: str, subject: str) -> int:
    db = Database(db_url)
    try:
        with db.write() as session:
            appointment = Appointment(
                reference=references.new_reference("appointment"), checkin_code="5678",
                citizen=Citizen(national_id=make_national_id("1", "78787878"), name=name, mobile="+966553334444"),
                kind=AppointmentKind.VIDEO, slot_minutes=15, status=AppointmentStatus.BOOKED, subject=subject,
                centre=session.scalars(sa.select(Centre).where(Centre.code == "YNB")).one(),
                slot_start=dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=1))
            session.add(appointment)
            session.flush()
            return appointment.id
    finally:
        db.dispose()


def test_the_console_lists_the_day_in_arabic_and_updates_live(web_server, web_db_url, web_accounts, browser, page):
    name = "عبدالرحمن فيصل الجهني"
    appointment = add_due_session(web_db_url, name, "إنارة الطريق العام")
    sign_in(page, web_server, web_accounts, "governor_office")
    page.get_by_role("link", name="منصة سمو الأمير").click()
    assert page.locator("html").get_attribute("dir") == "rtl"
    assert page.get_by_role("heading", level=1).inner_text() == "منصة سمو الأمير"
    item = page.locator(f"#session-{appointment}")
    assert name in item.inner_text() and "إنارة الطريق العام" in item.inner_text()
    assert "مركز تواصل - محافظة ينبع" in item.inner_text()
    assert item.get_attribute("data-phase") == "booked"
    assert item.get_by_role("button", name=f"إنهاء الجلسة مع {name}").is_visible()
    # The stream is up once the page says whether Asterisk is reachable (no call watcher here: it is not).
    page.locator("#ami-state[data-ami=down]").wait_for(state="attached", timeout=5000)
    page.evaluate("window.__not_reloaded = true")

    desk = browser.new_context(locale="ar-SA").new_page()
    try:
        sign_in(desk, web_server, web_accounts, "staff")
        desk.goto(web_server + "/desk/")
        desk.get_by_role("button", name=f"تسجيل الحضور {name}").click()
    finally:
        desk.context.close()

    page.locator(f"#session-{appointment}[data-phase=checked_in]").wait_for(state="attached", timeout=3000)
    assert page.evaluate("window.__not_reloaded") is True  # updated in place
    assert page.locator(f"#session-{appointment} [data-phase-text]").inner_text() == "تم تسجيل الحضور"
    assert name in page.locator("#live-announce").inner_text()  # told to screen readers

    item.get_by_role("button", name=f"تسجيل عدم حضور {name}").click()
    assert "سُجّل عدم الحضور" in page.locator(".flash").inner_text()
    assert page.locator(f"#session-{appointment}").get_attribute("data-phase") == "no_show"
