"""Accounts in real Chromium: IT adds an account and resets its password; its owner, signed in with
the one-time password, can reach nothing but "choose a new password" until they have."""
import pytest

from tests.browser.test_booking import sign_in

pytestmark = pytest.mark.browser

NEW = "seven blue kites over yanbu"


def test_a_reset_password_must_be_replaced_before_anything_else(web_server, web_accounts, browser, page, tmp_path):
    sign_in(page, web_server, web_accounts, "it_admin")
    page.goto(web_server + "/admin/users")
    page.locator("#username").fill("browser_clerk")
    page.locator("#full_name").fill("سلمى الجهني")
    page.locator("#role").select_option("staff")
    page.locator("#user-form button[type=submit]").click()
    first = page.locator("#handed-password").inner_text()
    row = page.locator("#user-browser_clerk")
    row.get_by_role("button", name="إعادة تعيين كلمة المرور").click()
    one_time = page.locator("#handed-password").inner_text()
    assert one_time != first and "كلمة مرور جديدة للحساب browser_clerk" in page.locator("#one-time-password").inner_text()
    page.screenshot(path=str(tmp_path / "one-time-password.png"), full_page=True)

    context = browser.new_context(locale="ar-SA")
    owner = context.new_page()
    owner.goto(web_server + "/login")
    owner.locator("#username").fill("browser_clerk")
    owner.locator("#password").fill(first)  # the first one-time password no longer works
    owner.locator("main form button[type=submit]").click()
    assert "غير صحيحة" in owner.locator(".flash.error").inner_text()
    owner.locator("#password").fill(one_time)
    owner.locator("main form button[type=submit]").click()
    owner.wait_for_url(web_server + "/account/password")
    assert owner.locator("#must-change").is_visible()
    owner.goto(web_server + "/desk/")
    assert owner.url == web_server + "/account/password"  # nothing else until a new password

    owner.locator("#current_password").fill(one_time)
    owner.locator("#password").fill("browser_clerk2024")  # contains the username: refused beside the field
    owner.locator("#repeat").fill("browser_clerk2024")
    owner.locator("#password-form button[type=submit]").click()
    assert "اسم المستخدم" in owner.locator("#password-error").inner_text()
    owner.locator("#current_password").fill(one_time)
    owner.locator("#password").fill(NEW)
    owner.locator("#repeat").fill(NEW)
    owner.locator("#password-form button[type=submit]").click()
    owner.wait_for_url(web_server + "/")
    assert "تم تغيير كلمة المرور" in owner.locator(".flash").inner_text()
    owner.goto(web_server + "/desk/")
    assert owner.url == web_server + "/desk/"
    context.close()

    page.goto(web_server + "/admin/users")
    assert page.locator("#user-browser_clerk td").nth(4).inner_text() == "لا"  # must change: no more
