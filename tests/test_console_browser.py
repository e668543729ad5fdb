"""The analyst console in a real browser: Debian's chromium driven by Playwright for Python, against the app
served on a loopback port with the in-process workers, as `soctriage serve` runs it.

Skips locally when /usr/bin/chromium is absent; fails when CI=true (`.ci/run` installs it). Screenshots of every
page go to $SOCTRIAGE_SCREENSHOT_DIR when set, else to `screenshots/` under the test's tmp folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from chromium import CHROMIUM, CHROMIUM_ARGS
from conftest import IN_CI
from console_support import LSASS, TENANT, ConsoleStore, console_store, workers
from service_support import alert_variants, serving
from soctriage.service.api.app import create_app
from soctriage.service.store import Store


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is required in CI (.ci/run installs Debian's chromium)")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, ConsoleStore]]:
    data = console_store(tmp_path / "home")
    with workers(data.settings), serving(create_app(data.settings, auth_enabled=True)) as base_url:
        yield base_url, data


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SOCTRIAGE_SCREENSHOT_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_analyst_signs_in_approves_asks_follows_a_citation_gives_feedback_and_reads_the_report(
    browser: Any, site: tuple[str, ConsoleStore], shots: Path
) -> None:
    base_url, data = site
    context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)

    # Sign in: the queue is behind the sign-in page.
    page.goto(base_url + "/")
    assert "/login" in page.url
    page.screenshot(path=str(shots / "01-sign-in.png"))
    page.fill("[data-testid=api-key]", data.keys["approver"])
    page.click("[data-testid=sign-in]")
    rows = page.locator("[data-testid=case-row]")
    rows.first.wait_for()
    assert rows.count() == 3
    for case_id in data.cases.values():
        assert case_id in page.locator(f"[data-testid=case-row][data-case-id={case_id}]").inner_text()
    page.screenshot(path=str(shots / "02-queue.png"), full_page=True)

    # The queue refreshes itself when a case arrives.
    [alert] = list(alert_variants(1, ["elastic-certutil-download.json"]))
    posted = httpx2.post(
        f"{base_url}/v1/alerts", content=alert, headers={"Authorization": f"Bearer {data.keys['analyst']}"}
    )
    new_case = posted.json()["accepted"][0]["case_id"]
    page.locator(f"[data-testid=case-row][data-case-id={new_case}]").wait_for(timeout=15_000)

    # Open the case waiting for approval.
    case_id = data.cases[LSASS]
    page.click(f"[data-testid=case-row][data-case-id={case_id}] a")
    page.locator("[data-testid=timeline-entry]").first.wait_for()
    with Store.open(data.settings) as store:
        assert page.locator("[data-testid=timeline-entry]").count() == store.head_seq(case_id)
    assert page.locator("[data-testid=case-status]").inner_text() == "awaiting approval"
    page.screenshot(path=str(shots / "03-case.png"), full_page=True)

    # Approve isolating DC01 and see who decided and what the resumed case did.
    entries = page.locator("[data-testid=timeline-entry]")
    before_decision = entries.count()
    row = page.locator("[data-testid=action-row][data-action-id=A2]")
    row.locator("[data-testid=decision-reason]").fill("IR confirmed the dump")
    row.locator("[data-testid=approve-button]").click()
    outcome = page.locator("[data-testid=decision-outcome]")
    outcome.wait_for(timeout=20_000)
    assert "approved by approver-user" in outcome.inner_text()
    assert (
        "executed"
        in page.locator(
            "[data-testid=action-row][data-action-id=A2] [data-testid=action-status]"
        ).inner_text()
    )
    assert "approver-user" in page.locator("[data-testid=action-row][data-action-id=A2]").inner_text()
    entries.nth(before_decision).wait_for()  # the timeline now holds the decision and the action
    assert "approval decided" in page.locator("#timeline").inner_text()
    page.screenshot(path=str(shots / "04-approved.png"), full_page=True)

    # Ask the assistant, then follow a citation of its answer to the timeline entry.
    answers = page.locator("[data-testid=chat-answer]")
    before = answers.count()
    page.fill("[data-testid=chat-input]", "Which actions are still pending?")
    page.click("[data-testid=chat-send]")
    answers.nth(before).wait_for(timeout=20_000)
    answer = answers.nth(before)
    text = answer.inner_text()
    assert "A3" in text and "A2 " not in text  # A2 is no longer pending
    citation = answer.locator("a.cite").first
    seq = citation.get_attribute("data-seq")
    citation.click()
    entry = page.locator(f"#seq-{seq}")
    assert entry.get_attribute("data-testid") == "timeline-entry"
    assert entry.locator("details").get_attribute("open") is not None
    page.wait_for_timeout(400)  # the smooth scroll
    assert entry.is_visible() and entry.bounding_box() is not None
    page.screenshot(path=str(shots / "05-assistant.png"))

    # Analyst feedback lands in the ledger and the timeline.
    entries_before = page.locator("[data-testid=timeline-entry]").count()
    page.select_option("[data-testid=feedback-disposition]", "true_positive")
    page.fill("[data-testid=feedback-reason]", "confirmed_credential_theft")
    page.fill("[data-testid=feedback-note]", "procdump-style dump of LSASS on a DC")
    page.click("[data-testid=feedback-submit]")
    page.locator("[data-testid=feedback-recorded]").wait_for()
    page.locator("[data-testid=timeline-entry]").nth(entries_before).wait_for()
    assert "feedback" in page.locator("[data-testid=timeline-entry]").last.inner_text()
    page.screenshot(path=str(shots / "06-feedback.png"), full_page=True)

    # The evidence report, in the page and as a PDF download.
    page.click("nav >> text=Evidence report")
    frame = page.frame_locator("[data-testid=report-frame]")
    frame.locator("text=SOC evidence report").wait_for(timeout=20_000)
    with page.expect_download() as download:
        page.click("[data-testid=report-pdf]")
    pdf = Path(download.value.path())
    assert pdf.read_bytes().startswith(b"%PDF")
    page.screenshot(path=str(shots / "07-evidence-report.png"))
    context.close()
    assert not problems, problems


def test_a_viewer_sees_the_case_but_no_approve_or_chat_controls(
    browser: Any, site: tuple[str, ConsoleStore], shots: Path
) -> None:
    base_url, data = site
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(base_url + "/login")
    page.fill("[data-testid=api-key]", data.keys["viewer"])
    page.click("[data-testid=sign-in]")
    page.click(f"[data-testid=case-row][data-case-id={data.cases[LSASS]}] a")
    page.locator("[data-testid=action-row]").first.wait_for()
    assert page.locator("[data-testid=approve-button]").count() == 0
    assert page.locator("[data-testid=chat-input]").count() == 0
    assert TENANT in page.locator(".who").inner_text()
    page.screenshot(path=str(shots / "08-viewer.png"), full_page=True)
    page.close()
