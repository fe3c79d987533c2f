"""Staff booking in real Chromium over the real gunicorn server: Arabic and English end to end,
the refusal of a role without access, and 50 concurrent booking POSTs for one slot."""
import concurrent.futures
import datetime as dt
import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest
from playwright.sync_api import expect

from tawasul.validation import make_national_id

pytestmark = pytest.mark.browser


def sign_in(page, web_server, accounts, username):
    page.goto(web_server + "/login")
    page.locator("#username").fill(username)
    page.locator("#password").fill(accounts[username])
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(web_server + "/")


@pytest.fixture
def staff_page(web_server, web_accounts, page):
    sign_in(page, web_server, web_accounts, "staff")
    return page


def next_sunday(weeks_ahead: int) -> dt.date:
    today = dt.date.today()
    return today + dt.timedelta(days=(6 - today.weekday()) % 7 + 7 * weeks_ahead)


def test_book_a_video_session_end_to_end_in_arabic(web_server, staff_page, tmp_path):
    page = staff_page
    page.get_by_role("link", name="حجز لقاء").click()
    assert page.locator("html").get_attribute("dir") == "rtl"
    page.get_by_label("رقم الهوية الوطنية أو الإقامة").fill("1234567890")  # a bad check digit
    page.get_by_label("الاسم الكامل").fill("سالم بن عبدالله العوفي")
    page.get_by_label("رقم الجوال").fill("0112345678")  # a landline
    page.get_by_label("محافظة السكن").select_option(label="بدر")
    page.get_by_role("button", name="متابعة").click()
    assert "رقم التحقق غير مطابق" in page.locator("#national_id-error").inner_text()
    assert "يجب أن يكون رقم جوال" in page.locator("#mobile-error").inner_text()
    assert page.get_by_label("رقم الهوية الوطنية أو الإقامة").get_attribute("aria-invalid") == "true"
    page.get_by_label("رقم الهوية الوطنية أو الإقامة").fill(make_national_id("1", "31313131"))
    page.get_by_label("رقم الجوال").fill("0551234567")
    page.get_by_role("button", name="متابعة").click()
    page.get_by_label("جلسة عبر الاتصال المرئي من مركز استقبال").check()
    assert page.locator("#nearest-centre").inner_text() == "مركز تواصل - محافظة بدر"
    page.get_by_label("في مركز الاستقبال الأقرب إلى محافظة سكنه").check()
    page.get_by_role("button", name="متابعة").click()
    day = next_sunday(3)
    page.get_by_label("اليوم", exact=True).fill(day.isoformat())
    page.get_by_role("button", name="عرض المواعيد المتاحة").click()
    page.get_by_label("09:40").check()
    page.get_by_label("موضوع اللقاء (اختياري)").fill("متابعة معاملة")
    page.get_by_role("button", name="تأكيد الحجز").click()
    assert page.locator("h1").inner_text() == "تأكيد الموعد"
    reference = page.locator("#reference").inner_text()
    assert re.fullmatch(r"A-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", reference)
    assert re.fullmatch(r"\d{6}", page.locator("#checkin-code").inner_text())
    sms = page.locator("#sms").inner_text()
    assert reference in sms and "سمو أمير المنطقة" in sms and "09:40" in sms
    assert page.get_by_role("button", name="طباعة").is_visible()
    page.emulate_media(media="print")
    assert not page.locator("header").is_visible() and page.locator("#reference").is_visible()
    page.emulate_media(media="screen")
    page.screenshot(path=str(tmp_path / "booking-ar.png"), full_page=True)
    # it is on the desk's list of that day, and can be checked in there
    page.goto(f"{web_server}/desk/?date={day.isoformat()}")
    row = page.locator("tr", has_text=reference)
    row.get_by_role("button", name="تسجيل الحضور").click()
    assert "تم تسجيل الحضور" in page.locator("tr", has_text=reference).inner_text()


def test_book_in_person_end_to_end_in_english_on_a_phone(web_server, web_accounts, browser):
    context = browser.new_context(locale="en-GB", viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    try:
        sign_in(page, web_server, web_accounts, "staff")
        page.goto(web_server + "/booking/?lang=en")
        assert page.locator("html").get_attribute("dir") == "ltr"
        page.get_by_label("National ID or iqama number").fill(make_national_id("2", "42424242"))
        page.get_by_label("Full name").fill("Omar Khan")
        page.get_by_label("Mobile number").fill("+966 50 123 4567")
        page.get_by_label("Home governorate").select_option(label="Yanbu")
        page.get_by_label("Language of the citizen's messages").select_option("en")
        page.get_by_role("button", name="Continue").focus()
        page.keyboard.press("Enter")  # the keyboard is enough
        page.get_by_label("Attendance at the governor's daily session at the Emirate").check()
        page.get_by_role("button", name="Continue").click()
        day = next_sunday(4)
        page.get_by_label("Day", exact=True).fill(day.isoformat())
        page.get_by_role("button", name="Show free times").click()
        expect(page.locator("main")).to_contain_text("30 seats left")  # waits for the new page
        page.get_by_role("button", name="Confirm the booking").click()
        assert page.locator("h1").inner_text() == "Appointment confirmation"
        reference = page.locator("#reference").inner_text()
        assert "seat 1" in page.locator(".confirmation").inner_text()
        assert page.locator("#sms").inner_text().startswith("Tawasul: your meeting with HH the Governor is booked")
        page.goto(f"{web_server}/booking/in-person?date={day.isoformat()}")
        assert reference in page.locator("table").inner_text() and "Omar Khan" in page.locator("table").inner_text()
        # cancel with a reason, from the confirmation page
        page.goto(f"{web_server}/booking/{reference}")
        page.get_by_role("button", name="Cancel the appointment").click()
        assert page.locator("#reason-error").inner_text() == "please give a reason for the cancellation"
        page.get_by_label("Reason for the cancellation").fill("Travelling")
        page.get_by_role("button", name="Cancel the appointment").click()
        assert page.locator("#status").inner_text() == "Cancelled"
    finally:
        context.close()


def test_a_clerk_without_the_right_role_is_refused(web_server, web_accounts, page):
    sign_in(page, web_server, web_accounts, "it_admin")
    assert page.get_by_role("link", name="حجز لقاء").count() == 0
    response = page.goto(web_server + "/booking/")
    assert response.status == 403
    assert "لا تملك صلاحية الوصول إلى هذه الصفحة" in page.locator("main").inner_text()


def _session(web_server, password):
    """A signed-in urllib opener with the booking flow at the slot step."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def token(path):
        page = opener.open(web_server + path).read().decode()
        return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)

    def post(path, data, token_path=None):
        data = {"csrf_token": token(token_path or path), **data}
        return opener.open(web_server + path, urllib.parse.urlencode(data).encode())

    post("/login", {"username": "staff", "password": password})
    page = opener.open(web_server + "/booking/").read().decode()
    governorate = re.search(r'<option value="(\d+)">بدر</option>', page).group(1)
    post("/booking/", {"national_id": make_national_id("1", "50505050"), "name": "مواطن التزامن",
                       "mobile": "0501234567", "governorate": governorate, "language": "ar", "proceed": "1"})
    post("/booking/meeting", {"kind": "video", "place": "nearest_centre", "centre": "0", "proceed": "1"})
    return opener, token


def test_fifty_concurrent_bookings_of_one_slot_make_exactly_one_appointment(web_server, web_accounts):
    opener, token = _session(web_server, web_accounts["staff"])
    day = next_sunday(6)
    page = opener.open(f"{web_server}/booking/slots?day={day.isoformat()}").read().decode()
    slot = re.search(r'name="slot" value="([^"]+)"', page).group(1)
    body = urllib.parse.urlencode({"csrf_token": token(f"/booking/slots?day={day}"), "slot": slot,
                                   "day": day.isoformat(), "proceed": "1"}).encode()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    # Every request carries the same cookie, fixed now: a shared jar would take the cookie the
    # winner's answer sets (the flow cleared) and send later requests back to step 1.
    jar = next(h for h in opener.handlers if isinstance(h, urllib.request.HTTPCookieProcessor)).cookiejar
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    raw = urllib.request.build_opener(NoRedirect())

    def one(_):
        request = urllib.request.Request(web_server + "/booking/slots", body, headers={"Cookie": cookie})
        try:
            response = raw.open(request, timeout=60)
            return response.status
        except urllib.error.HTTPError as error:
            if error.code == 302:
                assert re.search(r"/booking/A-", error.headers["Location"]), error.headers["Location"]
            return error.code

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(one, range(50)))
    assert statuses.count(302) == 1, statuses
    assert statuses.count(409) == 49, statuses
    desk = opener.open(f"{web_server}/desk/?date={day.isoformat()}").read().decode()
    assert len(re.findall(r">A-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}<", desk)) == 1  # one appointment that day
