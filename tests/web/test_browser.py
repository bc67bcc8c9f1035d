"""The onboarding flow in real headless Chromium (Debian's chromium + chromium-driver, Selenium)."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.web.gateway_support import GatewayThread, autodiscover_off, make_config, make_services

pytestmark = pytest.mark.browser

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        pytest.fail("chromium and chromedriver are required: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    chrome.implicitly_wait(5)
    try:
        yield chrome
    finally:
        chrome.quit()


def _fill(browser: webdriver.Chrome, **fields: str) -> None:
    for field_id, value in fields.items():
        element = browser.find_element(By.ID, field_id)
        element.clear()
        element.send_keys(value)


def _click_and_wait(browser: webdriver.Chrome, element_id: str) -> None:
    """Click and wait until the next page has replaced this one (a link or a form post) and loaded.

    The current document is marked first; the wait ends when a fully loaded document without the
    mark is shown. While the navigation is under way chromedriver may answer with transient errors
    ("Node with given id does not belong to the document"), so those are retried, not raised.
    """
    browser.execute_script("document.documentElement.dataset.leaving = 'yes'")
    browser.find_element(By.ID, element_id).click()
    WebDriverWait(browser, 20, ignored_exceptions=(WebDriverException,)).until(_new_page_loaded)


def _new_page_loaded(browser: webdriver.Chrome) -> bool:
    return bool(
        browser.execute_script(
            "return document.readyState === 'complete' && !document.documentElement.dataset.leaving"
        )
    )


def _notice(browser: webdriver.Chrome) -> str:
    return browser.find_element(By.CSS_SELECTOR, "[role=status]").text


def test_onboarding_walk(browser: webdriver.Chrome, tmp_path: Path, emulator: Any, secret_key: str) -> None:
    config = make_config(tmp_path, emulator, base_url="http://calendar.example.test:8080")
    with GatewayThread(config, make_services(config, secret_key)) as gateway:
        accounts = gateway.services.accounts
        gateway.call(accounts.create_user("ann", "ann-web-pw", "Ann"))

        browser.get(gateway.base_url + "/")
        assert browser.current_url.endswith("/signin")
        _fill(browser, username="ann", password="ann-web-pw")
        _click_and_wait(browser, "signin")
        assert "Signed in as" in browser.find_element(By.TAG_NAME, "header").text

        # First account: Autodiscover.
        _click_and_wait(browser, "connect-link")
        _fill(browser, email="alice@example.com", password="alice-pw")
        _click_and_wait(browser, "connect")
        assert _notice(browser) == "The account is connected."

        # Second account: Autodiscover fails, the page asks for the server details.
        autodiscover_off(emulator)
        _click_and_wait(browser, "connect-link")
        _fill(browser, email="bob@example.com", password="bob-pw")
        _click_and_wait(browser, "connect")
        assert "Autodiscover" in browser.find_element(By.ID, "error").text
        _fill(browser, password="bob-pw", server=emulator.ews_url, username="bob@example.com")
        _click_and_wait(browser, "connect")
        assert _notice(browser) == "The account is connected."
        emails = [e.text for e in browser.find_elements(By.CLASS_NAME, "account-email")]
        assert emails == ["alice@example.com", "bob@example.com"]

        # Calendars: add alice's Projects to the conflict set and make it the add-events calendar.
        user = gateway.call(accounts.find_user("ann"))
        alice, bob = gateway.call(accounts.list_accounts(user.user_id))
        projects = next(
            e
            for e in browser.find_elements(By.CSS_SELECTOR, "input[name=conflict]")
            if e.get_attribute("value") not in (f"{alice.account_id}-calendar", f"{bob.account_id}-calendar")
        )
        projects_id = projects.get_attribute("value")
        projects.click()
        browser.find_element(By.ID, f"conflict-{bob.account_id}-calendar").click()  # untick bob's
        browser.find_element(By.ID, f"add-{projects_id}").click()
        _click_and_wait(browser, "save-calendars")
        assert _notice(browser) == "Saved."
        assert browser.find_element(By.ID, f"conflict-{projects_id}").is_selected()
        assert not browser.find_element(By.ID, f"conflict-{bob.account_id}-calendar").is_selected()
        settings = gateway.call(accounts.settings(user.user_id))
        assert set(settings.conflict_calendar_ids) == {f"{alice.account_id}-calendar", projects_id}
        assert settings.add_events_calendar_id == projects_id

        # An app password, shown once with the CalDAV URL; it authenticates.
        _fill(browser, label="Phone")
        _click_and_wait(browser, "create-app-password")
        password = browser.find_element(By.ID, "new-app-password").text
        assert browser.find_element(By.ID, "caldav-url").text == "http://calendar.example.test:8080/dav/"
        principal = gateway.call(accounts.authenticate("ann", password))
        assert principal is not None and principal.emails == ("alice@example.com", "bob@example.com")


PHONE = (390, 844)  # an iPhone 12-15 viewport, CSS pixels


def _fits_a_phone(browser: webdriver.Chrome, tmp_path: Path, name: str) -> None:
    """At 390 px nothing is wider than the screen (no sideways scrolling, no menu cut off); the page is
    saved whole as ``<tmp>/screens/<name>.png`` to look at."""
    # Measured before the screenshot, which lays the page out afresh at its full height. A mobile browser
    # widens the layout viewport to the content, so innerWidth shows an overflow too.
    width, inner = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    too_wide = browser.execute_script(
        "return [...document.querySelectorAll('body *')]"
        ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)"
        ".map(e => e.tagName + (e.id ? '#' + e.id : ''))"
    )
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    screens = tmp_path / "screens"
    screens.mkdir(exist_ok=True)
    (screens / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))
    assert inner == PHONE[0], f"{name}: the page is laid out {inner} px wide, not {PHONE[0]}"
    assert width <= inner, f"{name}: the page is {width} px wide on a {inner} px screen"
    assert too_wide == [], f"{name}: wider than the screen: {too_wide}"


def test_on_a_phone_the_pages_fit_explain_and_confirm(
    browser: webdriver.Chrome, tmp_path: Path, emulator: Any, secret_key: str
) -> None:
    config = make_config(tmp_path, emulator)
    browser.set_window_size(*PHONE)
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 1, "mobile": True},
    )
    with GatewayThread(config, make_services(config, secret_key)) as gateway:
        accounts = gateway.services.accounts
        gateway.call(accounts.create_user("ann", "ann-web-pw", "Ann"))
        user = gateway.call(accounts.find_user("ann"))

        browser.get(gateway.base_url + "/")
        hint = browser.find_element(By.ID, "signin-help").text
        assert "caldav-gateway users add NAME" in hint and "demo" in hint
        _fits_a_phone(browser, tmp_path, "signin")
        _fill(browser, username="ann", password="ann-web-pw")
        _click_and_wait(browser, "signin")
        assert "list below" not in browser.find_element(By.ID, "password-help").text
        _fits_a_phone(browser, tmp_path, "home-empty")

        # Entering the server by choice: no claim that a lookup failed.
        _click_and_wait(browser, "connect-link")
        _click_and_wait(browser, "manual-link")
        assert browser.find_element(By.ID, "server").is_displayed()
        assert "could not find" not in browser.find_element(By.TAG_NAME, "main").text
        _fits_a_phone(browser, tmp_path, "connect-manual")
        browser.get(gateway.base_url + "/accounts/connect")
        _fill(browser, email="alice@example.com", password="alice-pw")
        _click_and_wait(browser, "connect")
        # After Autodiscover did fail, the page says so.
        autodiscover_off(emulator)
        _click_and_wait(browser, "connect-link")
        _fill(browser, email="bob@example.com", password="bob-pw")
        _click_and_wait(browser, "connect")
        assert "We could not find your server automatically" in browser.find_element(By.TAG_NAME, "main").text
        _fits_a_phone(browser, tmp_path, "connect-after-autodiscover-failed")
        _fill(browser, password="bob-pw", server=emulator.ews_url, username="bob@example.com")
        _click_and_wait(browser, "connect")
        assert _notice(browser) == "The account is connected."

        _fits_a_phone(browser, tmp_path, "home-with-accounts")
        _fill(browser, label="Phone")
        _click_and_wait(browser, "create-app-password")
        password = browser.find_element(By.ID, "new-app-password").text
        _fits_a_phone(browser, tmp_path, "new-app-password")
        browser.get(gateway.base_url + "/")
        assert "from the list below" in browser.find_element(By.ID, "password-help").text
        created = browser.find_element(By.CSS_SELECTOR, "table.app-passwords time")
        assert created.text.endswith(" UTC") and created.get_attribute("datetime").endswith("+00:00")
        labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "fieldset label")]
        assert "Calendar (alice@example.com)" in labels and "Calendar (bob@example.com)" in labels
        _fits_a_phone(browser, tmp_path, "home")

        # Revoke asks first; Cancel keeps the password working.
        (record,) = gateway.call(accounts.list_app_passwords(user.user_id))
        _click_and_wait(browser, f"revoke-{record.app_password_id}")
        assert "Phone" in browser.find_element(By.TAG_NAME, "h1").text
        _fits_a_phone(browser, tmp_path, "confirm-revoke")
        _click_and_wait(browser, "cancel")
        assert gateway.call(accounts.authenticate("ann", password)) is not None
        _click_and_wait(browser, f"revoke-{record.app_password_id}")
        _click_and_wait(browser, "confirm")
        assert _notice(browser) == "The app password was revoked."
        assert gateway.call(accounts.authenticate("ann", password)) is None

        # Remove asks first, too.
        alice, bob = gateway.call(accounts.list_accounts(user.user_id))
        _click_and_wait(browser, f"remove-{bob.account_id}")
        assert "bob@example.com" in browser.find_element(By.TAG_NAME, "h1").text
        _click_and_wait(browser, "cancel")
        assert len(gateway.call(accounts.list_accounts(user.user_id))) == 2
        _click_and_wait(browser, f"remove-{bob.account_id}")
        _click_and_wait(browser, "confirm")
        assert _notice(browser) == "The account was removed, with its stored password."
        assert gateway.call(accounts.list_accounts(user.user_id)) == [alice]
