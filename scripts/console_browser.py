"""The front-desk console in a real headless Chromium, driven by accessible names.

Run by tests/api/browser.rs, which starts Sara and plays the customer over signed SMS. The
two talk in lines: this script prints a step it has reached on stdout and waits for the
test's go-ahead on stdin before the next one, so each side checks what it can see:

    logged-in    -> test books over SMS        -> booked
    taken-over   -> test checks Sara is quiet  -> quiet
    sent         -> test checks Twilio got it  -> delivered
    handed-back  -> test checks Sara answers   -> answered
    staff-booked -> test checks the SMS        -> done

Usage: console_browser.py BASE_URL ADMIN_TOKEN PHONE CUSTOMER_NAME SCREENSHOT_DIR CHROMIUM WHEN
(WHEN: the day and time staff book a cleaning at, as a datetime-local value 2026-12-07T10:00)
Every failure is an exception (exit status 1) with what was expected; screenshots of each
step, and of the page at a failure, are written to SCREENSHOT_DIR.
"""

import os
import re
import sys

from playwright.sync_api import expect, sync_playwright

# How long a step may wait for the page to show what it should (the day screen re-reads
# itself every 3 s); a wait, not a speed requirement.
WAIT_MS = 30_000


def step(name):
    print(name, flush=True)


def go_ahead(expected):
    line = sys.stdin.readline().strip()
    if line != expected:
        raise SystemExit(f"expected {expected!r} from the test, got {line!r}")


def main():
    base, token, phone, name, shots, chromium, when = sys.argv[1:8]
    os.makedirs(shots, exist_ok=True)
    reply_text = f"Hi {name.split()[0]}, this is Maria at the front desk."
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        # A phone-sized window: the console must be usable there.
        page = browser.new_page(viewport={"width": 412, "height": 915})
        page.set_default_timeout(WAIT_MS)
        expect.set_options(timeout=WAIT_MS)
        try:
            page.goto(f"{base}/admin")
            page.get_by_label("Admin token").fill(token)
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("button", name="Log out")).to_be_visible()
            page.screenshot(path=f"{shots}/1-logged-in.png", full_page=True)
            step("logged-in")

            go_ahead("booked")
            # No reload: the page refreshes itself.
            link = page.get_by_role("link", name=re.compile(re.escape(name))).first
            expect(link).to_be_visible()
            page.screenshot(path=f"{shots}/2-booking-appeared.png", full_page=True)
            link.click()
            expect(page).to_have_url(re.compile(re.escape(phone)))
            expect(page.get_by_text("consultation").first).to_be_visible()
            page.screenshot(path=f"{shots}/3-transcript.png", full_page=True)

            page.get_by_role("button", name="Take over").click()
            expect(page.get_by_text("Staff have it")).to_be_visible()
            expect(page.get_by_role("button", name="Take over")).to_have_count(0)
            step("taken-over")

            go_ahead("quiet")
            page.get_by_role("textbox", name="Reply").fill(reply_text)
            page.get_by_role("button", name="Send").click()
            expect(page.get_by_text(reply_text)).to_be_visible()
            page.screenshot(path=f"{shots}/4-staff-reply.png", full_page=True)
            step("sent")

            go_ahead("delivered")
            page.get_by_role("button", name="Hand back").click()
            expect(page.get_by_role("button", name="Take over")).to_be_visible()
            expect(page.get_by_text("handed the conversation back")).to_be_visible()
            page.screenshot(path=f"{shots}/5-handed-back.png", full_page=True)
            step("handed-back")

            go_ahead("answered")
            # Booking for the caller from the page, by the names README lists.
            page.get_by_label("Service").select_option("Cleaning")
            page.get_by_label("Day and time").fill(when)
            page.get_by_role("button", name="Book", exact=True).click()
            expect(page.get_by_text("Booked by staff:")).to_be_visible()
            expect(page.get_by_role("button", name="Move")).to_have_count(2)
            page.screenshot(path=f"{shots}/6-booked-by-staff.png", full_page=True)
            step("staff-booked")

            go_ahead("done")
        except BaseException:
            page.screenshot(path=f"{shots}/failure.png", full_page=True)
            raise
        finally:
            browser.close()


if __name__ == "__main__":
    main()
