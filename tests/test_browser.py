"""The demo in a real browser: Debian's chromium, driven by Playwright, against ``python demo.py``.

Logs in (and is refused with a wrong password), uploads a spoken call, an email and a mailbox as a user
would, reads the answers off the page, checks that a corrupt file is a friendly message and that two users
at once are both answered, and that the page calls nothing but the demo. Screenshots are kept in
tests/artifacts/ to be looked at.
"""
import json
import shutil
import zipfile

import pytest

from conftest import REPO, TEAM
from test_email import ANNA

ARTIFACTS = REPO / "tests" / "artifacts"
# Never a downloaded browser: the system's chromium, with everything that would call out switched off.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ANSWER_S = 120  # generous: the suite shares two cores with whatever else runs


@pytest.fixture(scope="module")
def launch():
    """Starts the system's chromium (with extra flags if given)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("browser tests need Debian's chromium on PATH: run scripts/setup.sh as root, or "
                    "apt-get install chromium", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("browser tests need Playwright for Python: pip install -e '.[test]'", pytrace=False)
    with sync_playwright() as p:
        yield lambda *extra: p.chromium.launch(executable_path=chromium, args=[*CHROMIUM_ARGS, *extra])


@pytest.fixture(scope="module")
def browser(launch):
    browser = launch()
    yield browser
    browser.close()


@pytest.fixture
def open_page(browser, demo):
    """New pages (one per simulated user) on the demo; at the end, checks that no page called anywhere else."""
    contexts, requests = [], []

    def open_page(user="anna", password=None, logged_in=True):
        context = browser.new_context(viewport={"width": 1280, "height": 1400})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(ANSWER_S * 1000)
        page.on("request", lambda r: requests.append(r.url))
        page.goto(demo.url)
        log_in(page, user, password or TEAM[user])
        if logged_in:
            page.wait_for_selector("#call-recording")
        return page

    yield open_page
    for context in contexts:
        context.close()
    outside = sorted({u for u in requests if not u.startswith((demo.url, "data:", "blob:"))})
    assert not outside, f"the page called out: {outside}"


def log_in(page, user, password):
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()


def shot(page, name, full_page=True):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=full_page)


def wait_for_text(page, selector, text):
    """Wait until the element (or the textarea/input inside it) shows ``text``."""
    page.wait_for_function(
        """([selector, text]) => {
            const el = document.querySelector(selector);
            if (!el) return false;
            const field = el.matches('textarea, input') ? el : el.querySelector('textarea, input');
            return (field && field.value.includes(text)) || el.innerText.includes(text);
        }""", arg=[selector, text])


def top_intent(page, prefix):
    return page.locator(f"#{prefix}-intent [data-testid=label-output-value]").inner_text()


def upload_call(page, recording):
    page.locator("#call-recording input[type=file]").set_input_files(str(recording))


def wait_for_answered_call(page, reply_says="3 to 5 working days"):
    wait_for_text(page, "#call-reply", reply_says)
    page.wait_for_selector("#call-audio a[download][href*='reply.wav']", state="attached")


def test_call_answered_in_the_page(open_page, demo, spoken_request):
    page = open_page()
    upload_call(page, spoken_request)  # answered on upload, no click needed
    wait_for_answered_call(page)
    assert "card" in page.locator("#call-transcript").inner_text()
    assert top_intent(page, "call") == "card_arrival" and "%" in page.locator("#call-intent").inner_text()
    assert "No" in page.locator("#call-escalation textarea").input_value()
    for stage in ("transcribe", "speak", "total"):
        assert stage in page.locator("#call-timings").inner_text()
    first_audio = page.locator("#call-audio a[download]").get_attribute("href")
    shot(page, "call")

    # The user edits the reply, hears it spoken again, and corrects the intent.
    page.locator("#call-reply textarea").fill("Your new card is on its way and should arrive by Friday.")
    page.locator("#call-speak").click()
    page.wait_for_function("href => { const a = document.querySelector('#call-audio a[download]');"
                           " return a && a.href !== href; }", arg=first_audio)
    intent = page.locator("#call-corrected-intent input")
    intent.click()
    intent.press("Control+a")  # over the predicted intent
    intent.press_sequentially("card_delivery")
    page.get_by_role("option", name="card_delivery_estimate").click()
    page.locator("#call-save").click()
    wait_for_text(page, "#call-feedback", "Saved")
    shot(page, "call-corrected")
    record = json.loads(demo[1].read_text().splitlines()[-1])
    assert record["channel"] == "call" and record["intent"] == "card_arrival"
    assert record["corrected_intent"] == "card_delivery_estimate" and "by Friday" in record["corrected_reply"]


def test_email_answered_in_the_page(open_page, tmp_path):
    eml = tmp_path / "anna.eml"
    eml.write_bytes(ANNA)
    page = open_page()
    page.get_by_role("tab", name="Email").click()
    page.locator("#email-file input[type=file]").set_input_files(str(eml))
    page.locator("#email-answer").click()
    wait_for_text(page, "#email-draft", "In-Reply-To: <CAF1234@mail.example.org>")
    new_text = page.locator("#email-text textarea").input_value()
    assert "charged twice" in new_text and "Thank you for your message" not in new_text
    assert "anna.smith@example.org" in page.locator("#email-fields").inner_text()
    assert top_intent(page, "email") == "transaction_charged_twice"
    assert "£42.10" in page.locator("#email-reply textarea").input_value()
    page.wait_for_selector("#email-download a[href$='.eml']", state="attached")
    shot(page, "email")


def test_corrupt_recording_is_a_friendly_message_and_the_demo_goes_on(open_page, tmp_path):
    bad = tmp_path / "voicemail.wav"
    bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00" + bytes(range(256)) * 8)
    page = open_page()
    upload_call(page, bad)
    toast = page.locator("[data-testid=toast-body]").first
    toast.wait_for()
    assert "voicemail.wav: not a readable audio file" in toast.inner_text()
    assert "Traceback" not in toast.inner_text() and "/tmp" not in toast.inner_text()
    page.wait_for_timeout(1000)  # the message slides in
    shot(page, "corrupt-recording", full_page=False)  # it floats over the viewport
    page.get_by_role("tab", name="Email").click()
    page.locator("#email-paste textarea").fill(ANNA.decode("latin-1"))
    page.locator("#email-answer").click()
    wait_for_text(page, "#email-draft", "In-Reply-To: <CAF1234@mail.example.org>")


def test_mailbox_processed_in_the_page(open_page, tmp_path):
    archive = tmp_path / "inbox.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("one.eml", ANNA)
        z.writestr("two.eml", ANNA.replace(b"CAF1234@", b"CAF5678@"))
        z.writestr("broken.eml", b"\x00\x01\x02 not an email" * 10)
    page = open_page()
    page.get_by_role("tab", name="Mailbox").click()
    page.locator("#mailbox-file input[type=file]").set_input_files(str(archive))
    page.locator("#mailbox-answer").click()
    wait_for_text(page, "#mailbox-summary", "3 messages")
    rows = page.locator("#mailbox-results .virtual-row")
    rows.nth(2).wait_for()  # the table renders after the summary
    assert rows.count() == 3 and "rejected" in rows.nth(2).inner_text()
    assert "transaction_charged_twice" in rows.nth(0).inner_text()
    page.wait_for_selector("#mailbox-download a[href$='drafts.zip']", state="attached")
    rows.nth(1).get_by_role("gridcell").nth(2).click()  # pick a result to correct it
    wait_for_text(page, "#mailbox-reply", "£42.10")
    assert "Message 2" in page.locator("#mailbox-picked").inner_text()
    shot(page, "mailbox")


def test_imap_folder_processed_in_the_page(open_page):
    from dovecot import PASSWORD, Dovecot

    server = Dovecot().start()
    try:
        server.deliver([ANNA.replace(b"CAF1234@", b"browser-imap-1@")])  # a key the demo has not answered
        page = open_page()
        page.get_by_role("tab", name="Mailbox").click()
        page.get_by_text("…or answer an IMAP folder").click()
        page.locator("#imap-url input, #imap-url textarea").first.fill(server.url())
        password = page.locator("#imap-password input")
        assert password.get_attribute("type") == "password"
        password.fill(PASSWORD)
        page.locator("#imap-insecure input").check()
        page.locator("#imap-answer").click()
        wait_for_text(page, "#mailbox-summary", "drafts in Drafts")
        rows = page.locator("#mailbox-results .virtual-row")
        rows.nth(0).wait_for()
        assert "transaction_charged_twice" in rows.nth(0).inner_text() and "imap:INBOX" in rows.nth(0).inner_text()
        shot(page, "mailbox-imap")
        (draft,) = server.messages("Drafts")
        assert b"In-Reply-To: <browser-imap-1@mail.example.org>" in draft[2]
    finally:
        server.close()


def test_login_page_comes_first_and_a_wrong_password_is_refused(open_page, browser, demo):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(demo.url)
        page.get_by_role("button", name="Login").wait_for()
        assert "Support desk: log in" in page.inner_text("body")
        assert page.locator("#call-recording").count() == 0  # nothing of the desk before a login
        shot(page, "login")
    finally:
        page.close()
    refused = open_page("ben", "not-ben-s-password", logged_in=False)
    refused.get_by_text("Incorrect credentials").wait_for()
    assert refused.locator("#call-recording").count() == 0
    shot(refused, "login-refused", full_page=False)
    lines = [json.loads(line) for line in demo.audit.read_text().splitlines()]
    assert {"event": "login", "user": "ben", "outcome": "refused"}.items() <= lines[-1].items()


@pytest.fixture(scope="module")
def pin_request(piper, tmp_path_factory):
    """A second spoken request, about another intent than ``spoken_request``'s."""
    from channels.audio import write_wav

    return write_wav(tmp_path_factory.mktemp("audio") / "pin_request.wav",
                     piper.synthesize("How do I change my PIN? I would like to change the PIN of my card."),
                     piper.sample_rate)


def test_two_users_at_once_are_both_answered(open_page, demo, spoken_request, pin_request):
    # Different recordings, so that a result shown to the wrong user would show.
    first, second = open_page("chloe"), open_page("dev")
    upload_call(first, spoken_request)
    upload_call(second, pin_request)  # queued behind the first, not refused
    wait_for_answered_call(first)
    wait_for_answered_call(second, "Change PIN")
    assert top_intent(first, "call") == "card_arrival" and top_intent(second, "call") == "change_pin"
    assert "Change PIN" not in first.locator("#call-reply textarea").input_value()
    shot(first, "two-users-first")
    shot(second, "two-users-second")
    calls = [json.loads(line) for line in demo.audit.read_text().splitlines() if '"answer_call"' in line]
    assert {"chloe", "dev"} <= {c["user"] for c in calls if c["outcome"] == "answered"}


def test_microphone_recording_is_answered(launch, demo, spoken_request):
    # Chromium's fake capture device plays the spoken request into the microphone (in a loop).
    browser = launch("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                     f"--use-file-for-fake-audio-capture={spoken_request}")
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.set_default_timeout(ANSWER_S * 1000)
        page.goto(demo.url)
        log_in(page, "anna", TEAM["anna"])
        page.locator("#call-recording button[aria-label='Record audio']").click()
        page.locator("#call-recording button", has_text="Record").first.click()
        page.wait_for_timeout(6000)
        page.locator("#call-recording button", has_text="Stop").first.click()  # answered when recording stops
        wait_for_answered_call(page)
        assert "card" in page.locator("#call-transcript").inner_text() and top_intent(page, "call") == "card_arrival"
        shot(page, "microphone")
    finally:
        browser.close()
