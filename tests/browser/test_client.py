"""The web client in real headless Chromium against a real `avatar serve` (engines on, real models)."""
import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from axe_selenium_python import Axe
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from conftest import LIBRIVOX, astronaut, color_scheme, make_driver, save_screen, sign_in

CONSENT = {"givenBy": "Test Person", "basis": "self", "grantedAt": "2026-11-30"}


def wait(driver, seconds: float = 30):
    # The client re-renders a view when its data arrives: an element a poll found can be replaced before the poll
    # reads it. That is "not yet", not a failure (a CI run failed so right after switching avatars).
    return WebDriverWait(driver, seconds, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,))


def css(driver, selector: str):
    return driver.find_element(By.CSS_SELECTOR, selector)


def serious_violations(driver) -> list[str]:
    axe = Axe(driver)
    axe.inject()
    results = axe.run()
    return [f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
            for v in results["violations"] if v.get("impact") in ("serious", "critical")]


def ready_avatar(server, name: str = "Nova") -> str:
    status, body = server.api("POST", "/api/v1/avatars", {"name": name, "age": 30, "languages": ["en"], "consent": CONSENT})
    assert status == 201, body
    server.upload_photo(body["id"], astronaut())
    return body["id"]


def open_chat(driver, server, avatar_id: str) -> None:
    sign_in(driver, server, f"#/chat/{avatar_id}")
    wait(driver, 60).until(lambda d: css(d, "#connection").get_attribute("data-state") == "open")


def canvas_signature(driver) -> str:
    # The mouth region of the 512×512 frame (lower middle): a coarse digest of its pixels.
    return driver.execute_script("""
        const c = document.getElementById('avatar-canvas');
        const d = c.getContext('2d').getImageData(176, 300, 160, 120).data;
        let h = 0; for (let i = 0; i < d.length; i += 16) h = (h * 31 + d[i] + d[i+1] * 3 + d[i+2] * 7) >>> 0;
        return String(h);""")


def mouth_pixels(driver) -> list[int]:
    """The mouth region (lower middle of the 512×512 frame), every 4th pixel, as grey levels."""
    return driver.execute_script("""
        const d = document.getElementById('avatar-canvas').getContext('2d').getImageData(176, 300, 160, 120).data;
        const out = []; for (let y = 0; y < 120; y += 4) for (let x = 0; x < 160; x += 4) { const i = (y * 160 + x) * 4; out.push((d[i] + d[i+1] + d[i+2]) / 3 | 0); }
        return out;""")


def motion(samples: list[list[int]]) -> float:
    """Mean absolute grey-level change between consecutive samples."""
    diffs = [sum(abs(a - b) for a, b in zip(p, q)) / len(p) for p, q in zip(samples, samples[1:])]
    return sum(diffs) / len(diffs) if diffs else 0.0


def librivox_clip() -> tuple[Path, str]:
    lines = (LIBRIVOX / "transcription").read_text().splitlines()
    wavs = sorted(LIBRIVOX.glob("*.wav"))
    if not wavs:
        pytest.fail(f"no LibriVox clips in {LIBRIVOX}: install pocketsphinx-testdata (`avatar setup --with-test-tools`)")
    wav = wavs[0]
    text = next(l for l in lines if wav.stem in l)
    return wav, re.sub(r"</?s>", "", re.sub(r"\s*\(.*\)\s*$", "", text)).strip().lower()


def padded(wav: Path, tmp_path: Path, before: float = 1.5, after: float = 3.0) -> Path:
    """The clip as 48 kHz mono with silence around it (Chromium's fake mic reads a WAV file)."""
    out = tmp_path / f"{wav.stem}-padded.wav"
    subprocess.run(["sox", str(wav), "-r", "48000", "-c", "1", "-b", "16", str(out), "pad", str(before), str(after)], check=True)
    return out


def test_wizard_end_to_end(server, browser, tmp_path):
    d = browser
    sign_in(d, server, "#/new")
    wait(d).until(lambda d: css(d, "h1").text == "New avatar")
    # Validation: consent is required.
    css(d, "#p-name").send_keys("Astra")
    css(d, "#persona-next").click()
    wait(d).until(lambda d: "consent" in css(d, "#persona-form [role=alert]").text)
    css(d, "#p-age").send_keys("34")
    css(d, "#p-interests").send_keys("space, oceans")
    css(d, "#c-given").send_keys("Astra Test")
    css(d, "#c-agree").click()
    assert serious_violations(d) == []
    save_screen(d, "wizard-persona-desktop")
    css(d, "#persona-next").click()
    wait(d).until(lambda d: "#/setup/" in d.current_url and d.current_url.endswith("/1"))
    avatar_id = d.current_url.split("#/setup/")[1].split("/")[0]

    # A bad photo: the server's error in words.
    bad = tmp_path / "not-a-photo.png"
    bad.write_bytes(b"this is not an image at all" * 10)
    wait(d).until(lambda d: css(d, "#photo-file"))
    css(d, "#photo-file").send_keys(str(bad))
    wait(d, 60).until(lambda d: css(d, "#photo-errors").text.strip() != "")
    assert "image" in css(d, "#photo-errors").text.lower() or "type" in css(d, "#photo-errors").text.lower(), css(d, "#photo-errors").text
    assert css(d, "#photo-next").get_attribute("disabled") is not None

    css(d, "#photo-file").send_keys(str(astronaut()))
    wait(d, 120).until(lambda d: "face was found" in css(d, "#photo-status").text)
    wait(d).until(lambda d: d.execute_script("const i = document.getElementById('photo-aligned'); return i.complete && i.naturalWidth === 512"))
    assert css(d, "#photo-errors").text.strip() == ""
    assert serious_violations(d) == []
    css(d, "#photo-next").click()

    wav, _ = librivox_clip()
    wait(d).until(lambda d: css(d, "#voice-file"))
    css(d, "#voice-file").send_keys(str(wav))
    wait(d, 180).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#voice-reports li")) >= 1)
    report = css(d, "#voice-reports li").text
    assert wav.name in report and re.search(r"\d+\.\d s", report), report
    save_screen(d, "wizard-voice-desktop")
    css(d, "#voice-next").click()
    wait(d).until(lambda d: css(d, "#start-chat"))
    wait(d, 10).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#engines li")) >= 2)
    assert serious_violations(d) == []
    css(d, "#start-chat").click()
    wait(d, 60).until(lambda d: css(d, "#connection").get_attribute("data-state") == "open")

    status, avatar = server.api("GET", f"/api/v1/avatars/{avatar_id}")
    assert status == 200 and avatar["name"] == "Astra" and avatar["age"] == 34 and avatar.get("photo"), avatar
    status, voice = server.api("GET", f"/api/v1/avatars/{avatar_id}/voice")
    assert status == 200 and len(voice["samples"]) == 1, voice


def focus_visible(driver) -> bool:
    """The focused element draws a focus ring at least 2 px wide (the :focus-visible outline)."""
    return driver.execute_script("""
        const s = getComputedStyle(document.activeElement);
        return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;""")


def tab_until(driver, matches, limit: int = 40, back: bool = False):
    """Presses Tab (Shift+Tab with back) until the focused element matches; every stop on the way must show its focus."""
    from selenium.webdriver.common.action_chains import ActionChains
    for _ in range(limit):
        if back:
            ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
        else:
            ActionChains(driver).send_keys(Keys.TAB).perform()
        element = driver.switch_to.active_element
        if element.tag_name.lower() != "body":
            assert focus_visible(driver), f"no visible focus on {element.tag_name}#{element.get_attribute('id')}.{element.get_attribute('class')}"
        if matches(element):
            return element
    pytest.fail("Tab never reached the wanted control")


def by_id(ident: str):
    return lambda element: element.get_attribute("id") == ident


def test_wizard_keyboard_only(server, browser, tmp_path):
    """The whole wizard with the keyboard alone: persona and consent, photo, voice sample, the system test (a greeting
    from the avatar with its latency stages), into the chat. Files are picked on the focused file input (Selenium types
    the path into it: headless Chromium has no file dialog to drive)."""
    d = browser
    sign_in(d, server, "#/new")
    wait(d).until(lambda d: css(d, "h1").text == "New avatar")
    active = lambda: d.switch_to.active_element
    wait(d).until(lambda d: active().get_attribute("id") == "p-name")
    active().send_keys("Keys")
    # Persona: Tab through the form, typing only into the fields that need it; Space ticks the consent box.
    for _ in range(30):
        active().send_keys(Keys.TAB)
        assert focus_visible(d), active().get_attribute("id")
        ident = active().get_attribute("id")
        if ident == "c-given":
            active().send_keys("Keyboard Person")
        if ident == "c-permission":
            pytest.fail("Tab stops on both radio buttons: a radio group is one stop (arrow keys move inside it)")
        if ident == "c-agree":
            active().send_keys(Keys.SPACE)
        if ident == "persona-next":
            break
    assert active().get_attribute("id") == "persona-next"
    active().send_keys(Keys.ENTER)
    wait(d).until(lambda d: d.current_url.endswith("/1"))
    avatar_id = d.current_url.split("#/setup/")[1].split("/")[0]

    # Photo: the file input is reachable and shows its focus; the picked photo shows at once, then the face box.
    wait(d).until(lambda d: css(d, "h1").text.startswith("Set up Keys"))
    picker = tab_until(d, by_id("photo-file"))
    picker.send_keys(str(astronaut()))
    wait(d, 120).until(lambda d: css(d, "#photo-original").get_attribute("data-shown") == "face")
    tab_until(d, by_id("photo-next")).send_keys(Keys.ENTER)
    wait(d).until(lambda d: d.current_url.endswith("/2"))

    # Voice: upload a sample from the focused input; Continue with Enter.
    wav, _ = librivox_clip()
    wait(d).until(lambda d: css(d, "#voice-file"))
    tab_until(d, by_id("voice-file")).send_keys(str(wav))
    wait(d, 180).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#voice-reports li"))
    tab_until(d, by_id("voice-next")).send_keys(Keys.ENTER)
    wait(d).until(lambda d: d.current_url.endswith("/3"))

    # System test: engine states listed; Space on "Hear a greeting" → the avatar answers, with its latency.
    wait(d, 60).until(lambda d: css(d, "#test-connection").get_attribute("data-state") == "open")
    wait(d, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#engines li[data-state]")) >= 3)
    # One read of the whole list (a refresh may replace it between two WebDriver calls).
    states = dict(d.execute_script("return Array.from(document.querySelectorAll('#engines li')).map(e => [e.dataset.name, e.dataset.state])"))
    assert states.get("asr") and states.get("tts") and states.get("landmarks"), states
    tab_until(d, by_id("test-greeting")).send_keys(Keys.SPACE)
    wait(d, 180).until(lambda d: css(d, "#test-latency").get_attribute("data-ms"))
    assert css(d, "#test-reply").text.startswith("Keys:"), css(d, "#test-reply").text
    chip = tab_until(d, lambda e: "latency-chip" in (e.get_attribute("class") or ""))
    tip = chip.find_element(By.XPATH, "following-sibling::*[@role='tooltip']")
    assert tip.is_displayed() and "first frame shown" in tip.text, tip.text
    save_screen(d, "wizard-system-test-desktop")
    chip.send_keys(Keys.ESCAPE)
    assert not tip.is_displayed()
    print(f"keyboard wizard: system-test greeting latency {css(d, '#test-latency').get_attribute('data-ms')} ms; engines {states}")
    assert serious_violations(d) == []
    tab_until(d, by_id("start-chat")).send_keys(Keys.ENTER)
    wait(d, 60).until(lambda d: css(d, "#connection").get_attribute("data-state") == "open")
    assert d.current_url.endswith(f"#/chat/{avatar_id}")


def test_typed_conversation(server, browser):
    d = browser
    avatar_id = ready_avatar(server, "Nova")
    open_chat(d, server, avatar_id)
    wait(d, 30).until(lambda d: css(d, "#notes").text.strip() != "")
    idle_before = []
    for _ in range(12):
        idle_before.append(mouth_pixels(d))
        time.sleep(0.1)
    css(d, "#message").send_keys("Hello! What do you like to do?")
    css(d, "#message").send_keys(Keys.ENTER)
    speaking_signatures = set()
    speaking_pixels = []
    deadline = time.time() + 120
    saw_speaking = False
    while time.time() < deadline:
        state = css(d, "#state").get_attribute("data-state")
        if state == "speaking":
            saw_speaking = True
            speaking_signatures.add(canvas_signature(d))
            speaking_pixels.append(mouth_pixels(d))
            if len(speaking_signatures) == 8:
                save_screen(d, "chat-speaking-desktop")
        elif saw_speaking and state == "idle":
            break
        time.sleep(0.08)
    assert saw_speaking, "the avatar never spoke"
    assert len(speaking_signatures) >= 5, f"the mouth region changed only {len(speaking_signatures)} times while speaking"
    wait(d, 30).until(lambda d: css(d, "#latency").get_attribute("data-ms"))
    latency_ms = int(css(d, "#latency").get_attribute("data-ms"))
    assert 0 < latency_ms < 120_000
    reply = css(d, "#history li.avatar .text").text
    assert len(reply.strip()) > 0
    assert css(d, "#history li.avatar").get_attribute("data-emotion")
    debug = d.execute_script("return {shown: avatarDebug.player.framesShown, dropped: avatarDebug.player.framesDropped, client: avatarDebug.clientLatencyMs, timings: avatarDebug.timings}")
    idle_after = []
    for _ in range(12):
        idle_after.append(mouth_pixels(d))
        time.sleep(0.1)
    idle_motion, speaking_motion, rest_motion = motion(idle_before), motion(speaking_pixels), motion(idle_after)
    print(f"typed turn: mouth motion (mean grey change between samples) idle {idle_motion:.2f}, speaking {speaking_motion:.2f}, after {rest_motion:.2f}; latency readout {latency_ms} ms, client typed→first frame {debug['client']} ms, frames shown {debug['shown']}, dropped {debug['dropped']}, timings {debug['timings']}")
    assert debug["timings"].get("first_frame_shown") is not None, "the client's playback 'started' reached the server's turn metrics"
    # The mouth moves while the avatar speaks and rests in silence (the idle avatar still breathes and blinks a little).
    assert speaking_motion > 2 * max(idle_motion, rest_motion, 0.5), (idle_motion, speaking_motion, rest_motion)
    assert serious_violations(d) == []
    save_screen(d, "chat-desktop")
    d.set_window_size(360, 800)
    time.sleep(0.5)
    save_screen(d, "chat-phone")


def test_spoken_question(server, tmp_path):
    wav, words = librivox_clip()
    audio = padded(wav, tmp_path)
    d = make_driver(fake_audio=audio)
    try:
        avatar_id = ready_avatar(server, "Echo")
        open_chat(d, server, avatar_id)
        css(d, "#mic").click()
        wait(d).until(lambda d: css(d, "#mic").get_attribute("aria-pressed") == "true")
        wait(d, 90).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#history li.person[data-source=voice]"))
        heard = css(d, "#history li.person[data-source=voice] .text").text.lower()
        common = set(re.findall(r"[a-z']+", heard)) & set(re.findall(r"[a-z']+", words))
        print(f"spoken: said {words!r}, transcript {heard!r}")
        assert len(common) >= 3, f"transcript {heard!r} vs {words!r}"
        wait(d, 120).until(lambda d: css(d, "#latency").get_attribute("data-ms"))
        assert int(css(d, "#latency").get_attribute("data-ms")) > 0
        assert d.find_elements(By.CSS_SELECTOR, "#history li.avatar")
        print(f"spoken turn: timings from the end of speech {d.execute_script('return avatarDebug.timings')}")
    finally:
        d.quit()


def test_barge_in_by_speaking(server, tmp_path):
    """While the avatar answers, the person starts speaking (a recording through the fake microphone, which starts
    playing when the microphone opens): the answer is cut (`interrupted`, `turn_end` interrupted), what was heard kept."""
    interruption = sorted(LIBRIVOX.glob("*.wav"))[4]  # "he might even have been made amiable himself"
    audio = padded(interruption, tmp_path, before=0.2, after=4.0)
    d = make_driver(fake_audio=audio)
    try:
        avatar_id = ready_avatar(server, "Barge")
        open_chat(d, server, avatar_id)
        css(d, "#message").send_keys("Tell me a long story about the sea and the stars, please.")
        css(d, "#message").send_keys(Keys.ENTER)
        wait(d, 120).until(lambda d: css(d, "#state").get_attribute("data-state") == "speaking")
        time.sleep(0.5)
        css(d, "#mic").click()
        try:
            wait(d, 60).until(lambda d: "1:turn_end=interrupted" in d.execute_script("return avatarDebug.messages"))
        finally:
            print("barge-in: messages", d.execute_script("return avatarDebug.messages.filter(m => !m.endsWith(':pong'))"))
            print("barge-in: history", [e.text for e in d.find_elements(By.CSS_SELECTOR, "#history li")])
        messages = d.execute_script("return avatarDebug.messages")
        assert messages.index("1:interrupted") < messages.index("1:turn_end=interrupted")
        notice = css(d, "#history li.avatar[data-turn='1'] .notice").text
        assert notice.startswith("Interrupted"), notice
        # The person's words become the next turn.
        wait(d, 90).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#history li.person[data-source=voice]"))
    finally:
        d.quit()


def test_microphone_denied(server):
    d = make_driver(fake_ui=False)
    try:
        avatar_id = ready_avatar(server, "Quiet")
        # Deny the microphone the way a person's "Block" does.
        d.execute_cdp_cmd("Browser.setPermission", {"permission": {"name": "microphone"}, "setting": "denied", "origin": server.base})
        open_chat(d, server, avatar_id)
        css(d, "#mic").click()
        wait(d, 20).until(lambda d: css(d, "#mic-message").is_displayed())
        assert css(d, "#mic-message").get_attribute("data-problem") == "denied", css(d, "#mic-message").text
        assert "Allow it" in css(d, "#mic-message").text
        # The page still works: typing is possible.
        assert css(d, "#message").is_enabled()
    finally:
        d.quit()


def test_reconnects_after_server_restart(server, browser):
    d = browser
    avatar_id = ready_avatar(server, "Phoenix")
    open_chat(d, server, avatar_id)
    server.stop()
    wait(d, 30).until(lambda d: css(d, "#connection").get_attribute("data-state") in ("reconnecting", "connecting"))
    server.start()
    wait(d, 90).until(lambda d: css(d, "#connection").get_attribute("data-state") == "open")
    css(d, "#message").send_keys("Are you back?")
    css(d, "#message").send_keys(Keys.ENTER)
    wait(d, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#history li.avatar") and css(d, "#history li.avatar").get_attribute("data-emotion"))


def test_screens_light_dark_phone(server, browser):
    """Screenshots for the README (light and dark, desktop and a 360 px phone) and axe-core in the dark theme too."""
    d = browser
    avatar_id = ready_avatar(server, "Lumen")
    for scheme in ("light", "dark"):
        color_scheme(d, scheme)
        d.set_window_size(1280, 900)
        sign_in(d, server, f"#/setup/{avatar_id}/1")
        wait(d).until(lambda d: d.execute_script("const i = document.getElementById('photo-aligned'); return i && i.complete && i.naturalWidth === 512"))
        d.execute_script("window.scrollTo(0, 0)")
        time.sleep(0.3)
        assert serious_violations(d) == [], scheme
        save_screen(d, f"wizard-photo-{scheme}")
        d.set_window_size(360, 780)
        sign_in(d, server, "#/new")
        wait(d).until(lambda d: css(d, "h1").text == "New avatar")
        save_screen(d, f"wizard-persona-phone-{scheme}")
    color_scheme(d, "dark")
    d.set_window_size(1280, 900)
    open_chat(d, server, avatar_id)
    css(d, "#message").send_keys("Hi Lumen, how are you today?")
    css(d, "#message").send_keys(Keys.ENTER)
    wait(d, 120).until(lambda d: css(d, "#latency").get_attribute("data-ms"))
    assert serious_violations(d) == []
    save_screen(d, "chat-dark")
    d.set_window_size(360, 780)
    d.execute_script("document.getElementById('composer').scrollIntoView({block: 'end'})")
    time.sleep(0.3)
    save_screen(d, "chat-phone-dark")
    sign_in(d, server, "#/")
    wait(d).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".avatar-card"))
    assert serious_violations(d) == []
    d.set_window_size(1280, 900)
    color_scheme(d, "light")
    time.sleep(0.3)
    save_screen(d, "avatars")


def test_time_to_interactive(server, browser):
    """Page load → the avatar list usable, and → the live session ready with the first frame drawn (prints figures)."""
    d = browser
    avatar_id = ready_avatar(server, "Tempo")
    sign_in(d, server, "#/")
    lists, chats, frames = [], [], []
    for _ in range(3):
        d.get("about:blank")
        d.get(f"{server.base}/#/")
        wait(d).until(lambda d: d.execute_script("return window.avatarInteractiveAt"))
        lists.append(d.execute_script("return window.avatarInteractiveAt"))
        d.get("about:blank")
        d.get(f"{server.base}/#/chat/{avatar_id}")
        wait(d, 60).until(lambda d: d.execute_script("return window.avatarDebug && avatarDebug.readyAt && avatarDebug.player.framesShown > 0"))
        chats.append(d.execute_script("return avatarDebug.readyAt"))
        frames.append(d.execute_script("return performance.now()"))
    size = (Path(__file__).resolve().parents[2] / "Public/app.js").stat().st_size
    print(f"time to interactive: avatar list {sorted(round(x) for x in lists)} ms; chat session ready {sorted(round(x) for x in chats)} ms; "
          f"first live frame drawn by ≤ {sorted(round(x) for x in frames)} ms; app.js {size} bytes")
    assert max(lists) < 10_000 and max(chats) < 30_000


def test_delete_avatar_with_confirmation(server, browser):
    d = browser
    keep = ready_avatar(server, "Keeper")
    status, gone = server.api("POST", "/api/v1/avatars", {"name": "Goner", "consent": CONSENT})
    assert status == 201
    sign_in(d, server, "#/")
    wait(d).until(lambda d: d.find_elements(By.CSS_SELECTOR, f".avatar-card[data-id='{gone['id']}']"))
    delete = css(d, f".avatar-card[data-id='{gone['id']}'] button.danger")
    delete.click()
    d.switch_to.alert.dismiss()  # "Cancel": nothing is deleted
    assert server.api("GET", f"/api/v1/avatars/{gone['id']}")[0] == 200
    delete.click()
    assert "deleted for good" in d.switch_to.alert.text
    d.switch_to.alert.accept()
    wait(d).until(lambda d: not d.find_elements(By.CSS_SELECTOR, f".avatar-card[data-id='{gone['id']}']"))
    assert server.api("GET", f"/api/v1/avatars/{gone['id']}")[0] == 404
    assert server.api("GET", f"/api/v1/avatars/{keep}")[0] == 200


def test_wizard_records_a_voice_sample(server, tmp_path):
    """The voice step records through the microphone (Chromium's fake one plays a LibriVox clip) and uploads it."""
    wav, _ = librivox_clip()
    d = make_driver(fake_audio=padded(wav, tmp_path, before=0.5, after=1.0))
    try:
        status, body = server.api("POST", "/api/v1/avatars", {"name": "Rec", "consent": CONSENT})
        assert status == 201
        sign_in(d, server, f"#/setup/{body['id']}/2")
        wait(d).until(lambda d: css(d, "#voice-record"))
        css(d, "#voice-record").click()
        wait(d, 10).until(lambda d: css(d, "#voice-record").get_attribute("aria-pressed") == "true")
        time.sleep(8.5)
        css(d, "#voice-record").click()
        wait(d, 180).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#voice-reports li") or css(d, "#voice-errors").text.strip())
        assert css(d, "#voice-errors").text.strip() == "", css(d, "#voice-errors").text
        report = css(d, "#voice-reports li").text
        print(f"recorded sample: {report!r}")
        seconds = float(re.search(r"(\d+\.\d) s", report).group(1))
        assert "recording-" in report and 6.0 <= seconds <= 10.0, report
        status, voice = server.api("GET", f"/api/v1/avatars/{body['id']}/voice")
        assert len(voice["samples"]) == 1
    finally:
        d.quit()


def test_push_to_talk_with_space(server, tmp_path):
    """Hold Space while speaking, release: the utterance is committed and transcribed."""
    clip = sorted(LIBRIVOX.glob("*.wav"))[1]  # "he was not an ill disposed young man" (3 s)
    d = make_driver(fake_audio=padded(clip, tmp_path, before=0.5, after=0.5))
    try:
        from selenium.webdriver.common.action_chains import ActionChains
        avatar_id = ready_avatar(server, "Walkie")
        open_chat(d, server, avatar_id)
        css(d, "#avatar-canvas").click()  # focus outside the text box: Space is push-to-talk there
        ActionChains(d).key_down(Keys.SPACE).perform()
        wait(d, 10).until(lambda d: "active" in css(d, "#hold").get_attribute("class"))
        time.sleep(4.0)
        ActionChains(d).key_up(Keys.SPACE).perform()
        wait(d, 90).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#history li.person[data-source=voice]"))
        heard = css(d, "#history li.person[data-source=voice] .text").text.lower()
        print(f"push-to-talk transcript: {heard!r}")
        assert "young man" in heard or "disposed" in heard, heard
    finally:
        d.quit()


def test_sign_in_and_error_boundary(server, browser):
    """Without the cookie: the sign-in view; a view that fails (no such avatar): the error and a retry, not a blank page."""
    d = browser
    d.get(f"{server.base}/#/")
    wait(d).until(lambda d: css(d, "h1").text == "Sign in")
    assert "avatar token create" in css(d, "#token-help").text
    css(d, "#token").send_keys(server.token)
    css(d, "#token").send_keys(Keys.ENTER)
    wait(d).until(lambda d: css(d, "h1").text == "Your avatars")
    d.get(f"{server.base}/#/chat/00000000-0000-0000-0000-000000000000")
    wait(d).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".failure"))
    assert css(d, ".failure h1").text == "Something went wrong"
    assert css(d, ".failure p").text.strip() != ""
    assert css(d, "#retry").is_displayed()
    assert serious_violations(d) == []


def test_stop_button_interrupts(server, browser):
    d = browser
    avatar_id = ready_avatar(server, "Halt")
    open_chat(d, server, avatar_id)
    css(d, "#message").send_keys("Tell me a long story about a lighthouse keeper and his cat.")
    css(d, "#message").send_keys(Keys.ENTER)
    wait(d, 120).until(lambda d: css(d, "#state").get_attribute("data-state") == "speaking")
    time.sleep(0.5)
    css(d, "#stop").click()
    wait(d, 30).until(lambda d: "1:turn_end=interrupted" in d.execute_script("return avatarDebug.messages"))
    assert css(d, "#history li.avatar[data-turn='1'] .notice").text.startswith("Interrupted")
    wait(d, 10).until(lambda d: css(d, "#state").get_attribute("data-state") == "idle")
    assert css(d, "#stop").get_attribute("disabled") is not None


def two_faces(tmp_path) -> Path:
    """The astronaut and a smaller copy beside it (the composition GenerateInputTests uses): two faces."""
    out = tmp_path / "two-astronauts.png"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(astronaut()), "-i", str(astronaut()), "-filter_complex",
                    "[0]pad=832:512[b];[1]scale=300:300[s];[b][s]overlay=522:100", str(out)], check=True)
    return out


def test_photo_preview_at_once_then_face_box_and_plain_warnings(server, browser, tmp_path):
    """The picked photo shows before the server answers; then the face box and the aligned crop from the answer; the
    server's warning about several faces in plain words."""
    d = browser
    status, body = server.api("POST", "/api/v1/avatars", {"name": "Duo", "consent": CONSENT})
    assert status == 201
    sign_in(d, server, f"#/setup/{body['id']}/1")
    wait(d).until(lambda d: css(d, "#photo-file"))
    css(d, "#photo-file").send_keys(str(two_faces(tmp_path)))
    wait(d, 120).until(lambda d: css(d, "#photo-original").get_attribute("data-shown") == "face"
                       or css(d, "#photo-errors").text.strip())
    assert css(d, "#photo-errors").text.strip() == "", css(d, "#photo-errors").text
    canvas = css(d, "#photo-original")
    local_at, face_at = int(canvas.get_attribute("data-local-at")), int(canvas.get_attribute("data-face-at"))
    assert local_at <= face_at, (local_at, face_at)
    wait(d).until(lambda d: d.execute_script("const i = document.getElementById('photo-aligned'); return i.complete && i.naturalWidth === 512"))
    # The face box is drawn: the box's green (#19c37d) is on the canvas.
    green = d.execute_script("""
        const c = document.getElementById('photo-original'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] === 0x19 && d[i+1] === 0xc3 && d[i+2] === 0x7d) n++; return n;""")
    assert green > 100, green
    warnings = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#photo-warnings li")]
    print(f"photo: local preview at {local_at} ms, face box at {face_at} ms; warnings {warnings}")
    assert any("shows 2 faces" in w and "largest" in w for w in warnings), warnings
    assert "face was found" in css(d, "#photo-status").text
    assert serious_violations(d) == []
    save_screen(d, "wizard-photo-two-faces")


def test_chat_engine_states_latency_stages_and_switcher(server, browser):
    """In the chat: each engine's state (from /readyz), the latency of each turn with its stages on hover and on
    keyboard focus, and the avatar switcher (keyboard: Tab to the other avatar, Enter)."""
    from selenium.webdriver.common.action_chains import ActionChains
    d = browser
    other = ready_avatar(server, "Orbit")
    avatar_id = ready_avatar(server, "Vega")
    open_chat(d, server, avatar_id)
    wait(d, 30).until(lambda d: css(d, "#engines-summary").text.startswith("Engines:") and d.find_elements(By.CSS_SELECTOR, "#engines li"))
    assert "ready" in css(d, "#engines-summary").text, css(d, "#engines-summary").text
    assert not css(d, "#engines").is_displayed()
    summary = css(d, "#engines-details summary")
    summary.send_keys(Keys.ENTER)
    wait(d, 5).until(lambda d: css(d, "#engines").is_displayed())
    # One read of the whole list (a refresh may replace it between two WebDriver calls).
    states = dict(d.execute_script("return Array.from(document.querySelectorAll('#engines li')).map(e => [e.dataset.name, e.dataset.state])"))
    assert states.get("engine-host") in ("ready", "degraded") and states.get("asr") and states.get("tts"), states

    css(d, "#message").send_keys("Hello Vega! What is your favourite star?")
    css(d, "#message").send_keys(Keys.ENTER)
    wait(d, 180).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#history li.avatar[data-latency-ms]"))
    item = css(d, "#history li.avatar[data-latency-ms]")
    chip = item.find_element(By.CSS_SELECTOR, ".latency-chip")
    tip = chip.find_element(By.XPATH, "following-sibling::*[@role='tooltip']")
    assert not tip.is_displayed()
    ActionChains(d).move_to_element(chip).perform()
    wait(d, 5).until(lambda d: tip.is_displayed())
    stages = [e.get_attribute("data-stage") for e in tip.find_elements(By.CSS_SELECTOR, "li")]
    assert {"first_clause", "first_audio", "first_frame_shown", "client"} <= set(stages), stages
    ActionChains(d).move_to_element(css(d, "#chat-title")).perform()
    wait(d, 5).until(lambda d: not tip.is_displayed())
    # Keyboard: back from the message box to the chip, its stages show on focus.
    css(d, "#message").click()
    tab_until(d, lambda e: "latency-chip" in (e.get_attribute("class") or ""), back=True)
    wait(d, 5).until(lambda d: tip.is_displayed())
    save_screen(d, "chat-engines-latency-desktop")
    print(f"chat: latency {item.get_attribute('data-latency-ms')} ms, stages {tip.text!r}; engines {states}")
    assert serious_violations(d) == []

    # The switcher: the current avatar is marked; Tab to the other one and press Enter.
    wait(d).until(lambda d: d.find_elements(By.CSS_SELECTOR, f"#avatar-switch a[data-id='{other}']"))
    assert css(d, f"#avatar-switch a[data-id='{avatar_id}']").get_attribute("aria-current") == "page"
    d.execute_script("document.getElementById('chat-title').focus()")
    tab_until(d, lambda e: e.get_attribute("data-id") == other).send_keys(Keys.ENTER)
    wait(d).until(lambda d: d.current_url.endswith(f"#/chat/{other}"))
    wait(d, 60).until(lambda d: css(d, "#chat-title").text == "Talking with Orbit" and css(d, "#connection").get_attribute("data-state") == "open")
    assert css(d, f"#avatar-switch a[data-id='{other}']").get_attribute("aria-current") == "page"


def test_edit_persona_clears_age(server, browser):
    """Emptying the age in Edit persona sends `"age": null` (PATCH leaves out what is not sent), and the server
    forgets it (child-safe stays on for an unknown age)."""
    d = browser
    status, body = server.api("POST", "/api/v1/avatars", {"name": "Ageless", "age": 30, "languages": ["en"], "consent": CONSENT})
    assert status == 201
    sign_in(d, server, f"#/setup/{body['id']}/0")
    wait(d).until(lambda d: css(d, "#p-age").get_attribute("value") == "30")
    d.execute_script("""window.sentBodies = []; const real = window.fetch;
        window.fetch = (url, options) => { if (options && options.method === 'PATCH') window.sentBodies.push(options.body); return real(url, options); };""")
    css(d, "#p-age").clear()
    css(d, "#persona-next").click()
    wait(d, 30).until(lambda d: d.current_url.endswith("/1") or d.find_elements(By.ID, "age-not-cleared"))
    sent = [json.loads(b) for b in d.execute_script("return window.sentBodies")]
    assert len(sent) == 1 and "age" in sent[0] and sent[0]["age"] is None, sent
    status, avatar = server.api("GET", f"/api/v1/avatars/{body['id']}")
    assert status == 200
    assert avatar.get("age") is None, f"the server kept the age: {avatar}"
    assert avatar.get("childSafe") is True, "an unknown age keeps child-safe mode on"
    assert d.current_url.endswith("/1")


def test_insecure_origin_microphone_message(server, tmp_path):
    """A page that is not a secure context (http on a host name that is not localhost: avatar.test mapped to
    127.0.0.1 with --host-resolver-rules; 127.0.0.0/8 and localhost are secure in Chromium) gets no microphone: the
    chat and the wizard's recorder say why and how to fix it; typing still works."""
    d = make_driver(extra_args=(f"--host-resolver-rules=MAP avatar.test 127.0.0.1",))
    try:
        avatar_id = ready_avatar(server, "Remote")
        base = f"http://avatar.test:{server.port}"
        d.get(f"{base}/login?token={server.token}")
        d.get("about:blank")
        d.get(f"{base}/#/chat/{avatar_id}")
        wait(d, 60).until(lambda d: css(d, "#connection").get_attribute("data-state") == "open")
        assert d.execute_script("return window.isSecureContext") is False
        css(d, "#mic").click()
        wait(d, 10).until(lambda d: css(d, "#mic-message").is_displayed())
        message = css(d, "#mic-message").text
        print(f"insecure origin: {message!r}")
        assert css(d, "#mic-message").get_attribute("data-problem") == "insecure", message
        assert base in message and f"http://localhost:{server.port}" in message and f"http://127.0.0.1:{server.port}" in message and "HTTPS" in message, message
        assert css(d, "#mic").get_attribute("aria-pressed") == "false"
        css(d, "#message").send_keys("Can you hear me?")
        css(d, "#message").send_keys(Keys.ENTER)
        wait(d, 180).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#history li.avatar") and css(d, "#history li.avatar .text").text.strip())
        # The wizard's voice recorder says the same.
        d.get(f"{base}/#/setup/{avatar_id}/2")
        wait(d).until(lambda d: css(d, "#voice-record"))
        css(d, "#voice-record").click()
        wait(d, 10).until(lambda d: "secure page" in css(d, "#voice-errors").text)
    finally:
        d.quit()


def test_system_test_step_hears_the_person(server, tmp_path):
    """The system test: a greeting from the avatar, then the person speaks (Chromium's fake microphone plays a
    LibriVox clip) and sees what the server heard, with the latency from the end of speech."""
    wav, words = librivox_clip()
    d = make_driver(fake_audio=padded(wav, tmp_path, before=1.0, after=3.0))
    try:
        avatar_id = ready_avatar(server, "Probe")
        sign_in(d, server, f"#/setup/{avatar_id}/3")
        wait(d, 60).until(lambda d: css(d, "#test-connection").get_attribute("data-state") == "open")
        css(d, "#test-mic").click()
        wait(d, 10).until(lambda d: css(d, "#test-mic").get_attribute("aria-pressed") == "true")
        wait(d, 120).until(lambda d: css(d, "#test-transcript").get_attribute("data-final") == "true")
        heard = css(d, "#test-transcript").text.lower()
        common = set(re.findall(r"[a-z']+", heard)) & set(re.findall(r"[a-z']+", words))
        assert len(common) >= 3, (heard, words)
        wait(d, 180).until(lambda d: css(d, "#test-latency").get_attribute("data-ms"))
        timings = css(d, "#test-latency .tip").get_attribute("textContent")
        print(f"system test: heard {heard!r}; latency {css(d, '#test-latency').get_attribute('data-ms')} ms; {timings}")
        assert "speech recognised" in timings and "first frame shown" in timings, timings
        assert css(d, "#test-mic").get_attribute("aria-pressed") == "false"
    finally:
        d.quit()
