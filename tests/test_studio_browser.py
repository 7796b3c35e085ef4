"""The studio in a real browser (Debian's Chromium through Playwright) against the running
stack: what a person does, step by step, with a screenshot of each step under
test-artifacts/ (git-ignored)."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser import RequestLog, artifacts_dir, chromium, origin_of
from tests.stack import Stack

DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


def open_studio(browser: Any, base_url: str, viewport: dict[str, int]) -> tuple[Any, RequestLog]:
    page = browser.new_page(viewport=viewport)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log = RequestLog(page)
    page.goto(base_url + "/")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    page.wait_for_function(
        "() => document.querySelector('#preview-image').src.startsWith('blob:')", timeout=30_000
    )
    assert errors == [], errors
    return page, log


@pytest.mark.slow
def test_a_person_explores_renders_watches_plays_copies_and_deletes(local_stack: Stack) -> None:
    shots = artifacts_dir("studio-journey")
    step = iter(range(1, 100))

    def snap(page: Any, name: str) -> None:
        page.screenshot(path=str(shots / f"{next(step):02d}-{name}.png"))

    with chromium() as browser:
        page, log = open_studio(browser, local_stack.base_url, DESKTOP)
        snap(page, "open")

        # Drag c on the map: the marker moves, the numbers follow, the preview changes.
        preview = page.locator("#preview-image")
        before = preview.get_attribute("src")
        c_before = page.locator("#map").get_attribute("data-c")
        box = page.locator("#map").bounding_box()
        x, y = (
            float(v) for v in (page.locator("#map").get_attribute("data-c-screen") or "").split(",")
        )
        page.mouse.move(box["x"] + x, box["y"] + y)
        page.mouse.down()
        page.mouse.move(box["x"] + x + 40, box["y"] + y - 70, steps=8)
        page.mouse.up()
        page.wait_for_function(
            "before => document.querySelector('#preview-image').src !== before", arg=before
        )
        c_after = page.locator("#map").get_attribute("data-c")
        assert c_after != c_before
        re_input = page.locator("#c-field input").first
        assert float(re_input.input_value()) == pytest.approx(float(c_after.split(",")[0]))
        snap(page, "dragged-c")

        # A 2 s animation, small enough to render at once.
        page.get_by_label("Width", exact=True).fill("320")
        page.get_by_label("Width", exact=True).press("Tab")
        page.get_by_label("Height", exact=True).fill("180")
        page.get_by_label("Height", exact=True).press("Tab")
        page.get_by_label("Duration (s)").fill("2")
        page.get_by_label("Duration (s)").press("Tab")
        page.wait_for_function(
            "() => document.querySelector('#estimate').textContent.includes('320×180 · 48 frames')"
        )
        assert page.locator("#size-preset").input_value() == "custom"
        snap(page, "two-seconds")

        # Render asks for an account: sign up in the dialog, and the render starts.
        page.locator("#render").click()
        dialog = page.locator("#auth-dialog")
        dialog.wait_for(state="visible")
        page.locator("#auth-switch").click()
        username = f"studio-{uuid.uuid4().hex[:8]}"
        page.locator("#auth-username").fill(username)
        page.locator("#auth-password").fill("studio-password-1")
        snap(page, "sign-up")
        page.locator("#auth-submit").click()
        card = page.locator(".card").first
        card.wait_for(timeout=30_000)
        assert page.locator("#account .who").text_content() == username
        snap(page, "rendering")

        # The progress bar reaches 100 %, pushed by the server (no polling of the task).
        page.wait_for_selector(".card[data-state=succeeded]", timeout=120_000)
        assert card.locator(".bar").get_attribute("aria-valuenow") == "100"
        assert "48 / 48 frames" in (card.locator(".progress-text").text_content() or "")
        task_id = card.get_attribute("data-id")
        polled = [url for url in log.urls if re.search(rf"/v1/animations/{task_id}$", url)]
        assert polled == []
        assert any(url.endswith(f"/v1/animations/{task_id}/events") for url in log.urls)
        card.locator(".poster img").wait_for()
        snap(page, "finished")

        # Play it inline: 2 s long, as wide as asked, and the time moves on.
        card.get_by_role("button", name="Play").click()
        video = card.locator("video")
        video.wait_for()
        page.wait_for_function(
            "() => document.querySelector('.card video').readyState >= 1", timeout=30_000
        )
        duration, width = video.evaluate("v => [v.duration, v.videoWidth]")
        assert duration == pytest.approx(2.0, abs=0.1)
        assert width == 320
        page.wait_for_function(
            "() => document.querySelector('.card video').currentTime > 0.5", timeout=30_000
        )
        snap(page, "playing")

        # Edit a copy: its spec comes back into the editor.
        card.get_by_role("button", name="Edit a copy").click()
        assert page.get_by_label("Width", exact=True).input_value() == "320"
        assert page.get_by_label("Duration (s)").input_value() == "2"
        page.wait_for_function(
            "() => document.querySelector('#estimate').textContent.includes('320×180 · 48 frames')"
        )
        snap(page, "edit-a-copy")

        # Delete it (after a confirmation).
        card.get_by_role("button", name="Delete").click()
        page.locator("#confirm-dialog").wait_for(state="visible")
        snap(page, "confirm-delete")
        page.locator("#confirm-dialog button[value=confirm]").click()
        page.wait_for_selector(f".card[data-id='{task_id}']", state="detached")
        with local_stack.client() as client:
            token = page.evaluate(
                "() => JSON.parse(sessionStorage.getItem('fractal-studio-session')).token"
            )
            gone = client.get(
                f"/v1/animations/{task_id}", headers={"Authorization": f"Bearer {token}"}
            )
            assert gone.status_code == 404
        snap(page, "deleted")

        # And the account, after a confirmation too.
        page.get_by_role("button", name="Delete account").click()
        page.locator("#confirm-dialog button[value=confirm]").click()
        page.get_by_role("button", name="Sign in").wait_for()
        assert page.evaluate("() => sessionStorage.getItem('fractal-studio-session')") is None
        snap(page, "account-deleted")
        assert log.outside(origin_of(local_stack.base_url)) == []


@pytest.mark.slow
def test_a_deep_zoom_is_set_up_previewed_and_estimated_in_the_studio(local_stack: Stack) -> None:
    """The issue's zoom typed into the form: a 200-digit centre pasted as text keeps every
    digit, the camera's zoom variant takes its end scale, the estimate admits 300 frames and
    the last frame (1e-30, perturbation) previews without an error."""
    from fractal.locations import GAIA

    shots = artifacts_dir("studio-deep-zoom")
    with chromium() as browser:
        page, log = open_studio(browser, local_stack.base_url, DESKTOP)
        page.get_by_label("Fractal", exact=True).select_option("mandelbrot")
        assert page.locator("#preview-title").text_content() == "Mandelbrot preview"
        page.get_by_label("Camera", exact=True).select_option("zoom")
        fields = {
            "Zoom to": "1e-30",
            "Width": "400",
            "Height": "300",
            "Duration (s)": "10",
            "Frames per second": "30",
            "Max iterations": "20000",
        }
        for label, value in fields.items():
            page.get_by_label(label, exact=True).fill(value)
            page.get_by_label(label, exact=True).press("Tab")
        centre = page.locator("[data-path='center']")
        for part, digits in zip(("re", "im"), GAIA, strict=True):
            box = centre.locator(f"[data-path='center.{part}'] input")
            box.fill(digits)
            box.press("Tab")
        page.wait_for_function(
            "text => document.querySelector('#estimate').textContent.includes(text)",
            arg="400×300 · 300 frames",
            timeout=30_000,
        )
        assert not page.locator("#render").is_disabled()
        # What the page asked the server for: every digit of the centre, the zoom camera.
        [last] = [url for url in log.urls if "/v1/preview?" in url][-1:]
        spec = json.loads(parse_qs(urlsplit(last).query)["spec"][0])
        assert [str(value) for value in spec["center"].values()] == list(GAIA)
        assert spec["camera"] == {"kind": "zoom", "zoom_to": 1e-30}
        assert (spec["fractal"], spec["max_iter"]) == ("mandelbrot", 20000)

        before = page.locator("#preview-image").get_attribute("src")
        page.locator("#frame").fill("299")
        page.wait_for_function(
            "before => document.querySelector('#preview-image').src !== before",
            arg=before,
            timeout=60_000,
        )
        assert "300 / 300" in (page.locator("#frame-label").text_content() or "")
        assert page.locator("#preview-error").text_content() == ""
        page.screenshot(path=str(shots / "deep-zoom-last-frame.png"))
        assert log.outside(origin_of(local_stack.base_url)) == []


def test_the_preview_is_explored_by_clicking_and_scrolling(local_stack: Stack) -> None:
    """A click centres the view on the point under the pointer, the wheel zooms around it;
    a 200-digit centre at a 1e-30 view keeps every digit above the view's size."""
    from fractal.locations import GAIA

    with chromium() as browser:
        page, _ = open_studio(browser, local_stack.base_url, DESKTOP)
        page.get_by_label("Fractal", exact=True).select_option("mandelbrot")
        image = page.locator("#preview-image")
        centre_re = page.locator("[data-path='center.re'] input")
        centre_im = page.locator("[data-path='center.im'] input")
        scale = page.get_by_label("View half-height", exact=True)

        def changed_preview(action: Any) -> None:
            before = image.get_attribute("src")
            action()
            page.wait_for_function(
                "before => document.querySelector('#preview-image').src !== before",
                arg=before,
                timeout=30_000,
            )

        # The default view: half-height 1.2, so three quarters across the picture is
        # re = 0.5 x 1.2 x the aspect.
        width = float(page.get_by_label("Width", exact=True).input_value())
        height = float(page.get_by_label("Height", exact=True).input_value())
        box = image.bounding_box()
        assert box is not None
        changed_preview(
            lambda: image.click(position={"x": box["width"] * 0.75, "y": box["height"] / 2})
        )
        expected_re = 0.5 * 1.2 * width / height
        assert float(centre_re.input_value()) == pytest.approx(expected_re, abs=0.02)
        assert float(centre_im.input_value()) == pytest.approx(0.0, abs=0.02)

        # Scrolling in over the centre: two thirds of the half-height, the centre kept.
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        changed_preview(lambda: page.mouse.wheel(0, -100))
        assert float(scale.input_value()) == pytest.approx(0.8)
        assert float(centre_re.input_value()) == pytest.approx(expected_re, abs=0.02)

        # Deep: the pasted centre's digits survive a click; only those below 1e-30 move.
        for box_input, digits in ((centre_re, GAIA[0]), (centre_im, GAIA[1])):
            box_input.fill(digits)
            box_input.press("Tab")
        scale.fill("1e-30")
        scale.press("Tab")
        page.get_by_label("Max iterations", exact=True).fill("20000")
        page.get_by_label("Max iterations", exact=True).press("Tab")
        page.wait_for_timeout(500)
        changed_preview(
            lambda: image.click(position={"x": box["width"] * 0.6, "y": box["height"] * 0.4})
        )
        moved_re, moved_im = centre_re.input_value(), centre_im.input_value()
        assert moved_re != GAIA[0] and moved_im != GAIA[1]
        assert moved_re[:30] == GAIA[0][:30] and len(moved_re) > 45  # to 1e-28
        assert moved_im[:30] == GAIA[1][:30]  # to 1e-27
        assert page.locator("#preview-error").text_content() == ""


def test_the_page_asks_nothing_of_any_other_origin_and_fits_a_phone(local_stack: Stack) -> None:
    origin = origin_of(local_stack.base_url)
    shots = artifacts_dir("studio-offline")
    with chromium() as browser:
        page, log = open_studio(browser, local_stack.base_url, DESKTOP)
        # Zoom the map in and out: more tiles, all from here.
        page.locator("#map").hover()
        for _ in range(3):
            page.mouse.wheel(0, -400)
        page.wait_for_timeout(500)
        page.locator("#map").focus()
        page.keyboard.press("Shift+ArrowRight")  # keyboard moves c too
        page.wait_for_function(
            "() => document.querySelector('#map').dataset.c !== '-0.8,-0.18'", timeout=10_000
        )
        page.screenshot(path=str(shots / "desktop.png"))
        assert log.outside(origin) == []
        assert log.blocked == []  # the studio does not even try
        assert any("/v1/map/tiles/" in url for url in log.urls)

        phone, phone_log = open_studio(browser, local_stack.base_url, PHONE)
        overflow = phone.evaluate("() => document.scrollingElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        phone.screenshot(path=str(shots / "phone.png"), full_page=True)
        assert phone_log.outside(origin) == []


def test_swagger_ui_and_redoc_work_offline(local_stack: Stack) -> None:
    origin = origin_of(local_stack.base_url)
    with chromium() as browser:
        page = browser.new_page(viewport=DESKTOP)
        log = RequestLog(page)
        page.goto(local_stack.base_url + "/docs")
        operations = page.locator("#swagger-ui .opblock-summary-path")
        operations.first.wait_for(timeout=30_000)
        paths = operations.all_text_contents()
        assert any(path.replace("\u200b", "") == "/v1/animations" for path in paths), paths
        page.goto(local_stack.base_url + "/redoc")
        page.get_by_text("Fractal Animation Server").first.wait_for(timeout=30_000)
        # ReDoc's bundle links its logo on a CDN: the docs' policy stops it in the browser.
        assert log.outside(origin) == []
