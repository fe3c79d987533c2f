"""IT administration and reports in real Chromium: the IT admin adds a centre and sees the
configuration diff it causes (secrets masked); the reports page draws its charts (Chart.js,
served locally, no inline script)."""
import re

import pytest

from tests.browser.test_booking import sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def certified(web_server, tmp_path_factory):
    """The web server's state folder with its TLS certificates (the render needs them for devices)."""
    from provisioning import certs
    from tawasul.settings import load

    [state] = [p for p in tmp_path_factory.getbasetemp().glob("web[0-9]*/var") if (p / "tawasul.db").exists()]
    settings = load({"state_dir": state, "demo": True}, environ={})
    certs.ensure_certificates(settings)
    yield state
    from provisioning import runtime
    rt = runtime.ensure_installed(settings)
    if not rt.is_running():
        rt.destroy()  # the instance folder apply wrote into lives in the shared cache


def test_it_admin_adds_a_centre_and_sees_the_config_diff(web_server, web_accounts, page, certified, tmp_path):
    sign_in(page, web_server, web_accounts, "it_admin")
    page.goto(web_server + "/admin/centres/new?lang=en")
    page.locator("#code").fill("ULB")
    page.locator("#governorate_id").select_option(index=1)
    page.locator("#name_ar").fill("مركز العلا")
    page.locator("#name_en").fill("AlUla second centre")
    page.locator("#allowed_networks").fill("10.77.0.1/16")  # host bits: refused beside the field
    page.locator("#centre-form button[type=submit]").click()
    assert "has host bits set" in page.locator("#allowed_networks-error").inner_text()
    page.locator("#allowed_networks").fill("10.77.0.0/16")
    page.locator("#centre-form button[type=submit]").click()
    page.wait_for_url("**/admin/config")
    assert page.locator("#apply-form").is_visible()
    # a centre without phones renders nothing yet; change a centre that has one: Yanbu
    page.goto(web_server + "/admin/centres")
    page.get_by_role("link", name="YNB").click()
    page.locator("#allowed_networks").fill("127.0.0.2/32, fd00:1::/64, 10.77.0.0/16")
    page.locator("#centre-form button[type=submit]").click()
    page.wait_for_url("**/admin/config")
    text = "\n".join(page.locator("pre.diff").all_inner_texts())
    assert "+permit = 10.77.0.0/16" in text and "+contact_permit = 10.77.0.0/16" in text
    assert "********" in text  # the AMI secret and the digests are masked
    assert not re.search(r"MD5:[0-9a-f]", text)
    page.screenshot(path=str(tmp_path / "config-diff.png"), full_page=True)
    page.locator("#apply-button").click()
    page.wait_for_selector("#apply-result")
    assert "changed: " in page.locator("#apply-result").inner_text()
    page.goto(web_server + "/admin/config")
    assert page.locator("#no-changes").is_visible()  # what was shown is what was applied


def test_reports_page_draws_charts(web_server, web_accounts, page):
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    sign_in(page, web_server, web_accounts, "governor_office")
    page.goto(web_server + "/reports/")
    page.wait_for_selector("#reports[data-ready='1']", timeout=10000)
    for chart in ("chart-days", "chart-weeks", "chart-complaints"):
        assert page.locator(f"#{chart}").get_attribute("data-drawn") == "1"
    box = page.locator("#chart-days").bounding_box()
    assert box["width"] > 100 and box["height"] > 100
    assert page.evaluate("typeof window.Chart") == "function"
    assert not [e for e in errors if "Content Security Policy" in e], errors
