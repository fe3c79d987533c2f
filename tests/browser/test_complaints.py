"""In real Chromium: a citizen files a complaint in Arabic and tracks it; staff move it on; the
citizen sees the new status."""
import re

import pytest

from tawasul.validation import make_national_id

pytestmark = pytest.mark.browser

NATIONAL_ID = make_national_id("1", "55443322")


def track(page, base, reference):
    page.goto(base + "/track/")
    page.get_by_label("الرقم المرجعي").fill(reference.lower().replace("-", " "))  # typed loosely
    page.get_by_label("رقم الهوية الوطنية أو الإقامة، أو رقم الجوال").fill(NATIONAL_ID)
    page.get_by_role("button", name="متابعة").click()
    return page.locator("strong.status").inner_text()


def test_file_a_complaint_track_it_and_see_staff_move_it(web_server, web_accounts, page, browser, tmp_path):
    page.goto(web_server + "/")
    page.get_by_role("link", name="الشكاوى والمقترحات").click()
    assert page.locator("h1").inner_text() == "تقديم شكوى أو مقترح"
    page.get_by_label("شكوى").check()
    page.get_by_label("التصنيف").select_option(label="الخدمات البلدية")
    page.get_by_label("الموضوع").fill("انقطاع إنارة الشارع")
    page.get_by_label("التفاصيل").fill("إنارة الشارع الرئيسي في الحي مطفأة منذ أسبوعين.")
    page.get_by_label("رقم الهوية الوطنية أو الإقامة (اختياري، لمتابعة طلبك)").fill(NATIONAL_ID)
    page.get_by_role("button", name="إرسال").click()
    assert page.locator("h1").inner_text() == "تم استلام طلبك"
    reference = page.locator(".reference").inner_text()
    assert re.fullmatch(r"C-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", reference)
    page.screenshot(path=str(tmp_path / "complaint-received.png"), full_page=True)

    assert track(page, web_server, reference) == "تم الاستلام"
    assert page.locator("span.step").all_inner_texts() == ["تم الاستلام"]

    staff_context = browser.new_context(locale="ar-SA")
    staff = staff_context.new_page()
    staff.goto(web_server + "/login")
    staff.get_by_label("اسم المستخدم").fill("staff")
    staff.get_by_label("كلمة المرور").fill(web_accounts["staff"])
    staff.get_by_role("button", name="دخول").click()
    staff.goto(web_server + "/tickets/?department=MUN")
    staff.get_by_role("link", name=reference).click()
    staff.get_by_label("الحالة الجديدة").select_option(label="قيد الدراسة")
    staff.get_by_label("ملاحظة (داخلية، لا تظهر للمواطن)").fill("أحيلت للمراجعة الميدانية")
    staff.get_by_role("button", name="حفظ").click()
    assert staff.locator("dd.status").inner_text() == "قيد الدراسة"
    staff_context.close()

    assert track(page, web_server, reference) == "قيد الدراسة"
    assert page.locator("span.step").all_inner_texts() == ["تم الاستلام", "قيد الدراسة"]
    assert "الميدانية" not in page.content()
    page.screenshot(path=str(tmp_path / "complaint-tracked.png"), full_page=True)


def test_a_wrong_national_id_reads_as_an_unknown_reference(web_server, page):
    page.goto(web_server + "/track/")
    page.get_by_label("الرقم المرجعي").fill("C-ZZZZ-ZZZZ-ZZZZ")
    page.get_by_label("رقم الهوية الوطنية أو الإقامة، أو رقم الجوال").fill(NATIONAL_ID)
    page.get_by_role("button", name="متابعة").click()
    assert "لا يوجد طلب يطابق" in page.locator("main").inner_text()
    assert NATIONAL_ID not in page.url
