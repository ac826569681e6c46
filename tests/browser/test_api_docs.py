"""`/docs` (Swagger UI from the venv's swagger-ui-bundle) and a MediaRecorder voice sample, in real headless Chromium
against a real `avatar serve`."""
import re
import time
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import LIBRIVOX, REPO, make_driver, sign_in

CONSENT = {"givenBy": "Test Person", "basis": "self", "grantedAt": "2026-11-30"}


def spec_operations() -> set[tuple[str, str]]:
    """(METHOD, path) of every operation in openapi.yaml, read without a YAML library (the file's own layout)."""
    operations, path = set(), None
    for line in (REPO / "openapi.yaml").read_text().splitlines():
        if m := re.match(r"^  (/[^:]*):\s*$", line):
            path = m.group(1)
        elif re.match(r"^\S", line):
            path = None if not line.startswith("paths:") else path
        elif path and (m := re.match(r"^    (get|put|post|patch|delete|options|head):", line)):
            operations.add((m.group(1).upper(), path))
    return operations


def test_spec_parses_without_duplicate_keys():
    """Swagger UI's YAML parser refuses a mapping with a key twice (an unquoted comma in a flow mapping makes one);
    PyYAML keeps the last silently, so the check is explicit."""
    import yaml

    duplicates = []

    def mapping(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                duplicates.append(f"line {key_node.start_mark.line + 1}: {key!r}")
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    spec = yaml.load((REPO / "openapi.yaml").read_text(), Loader=Loader)
    assert duplicates == [], duplicates
    assert spec["openapi"].startswith("3.")


def test_docs_lists_every_operation_offline(server):
    expected = spec_operations()
    assert len(expected) > 20, expected
    driver = make_driver()
    try:
        driver.get(server.base + "/docs")
        WebDriverWait(driver, 30, poll_frequency=0.2).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= len(expected))
        shown = set()
        for block in driver.find_elements(By.CSS_SELECTOR, ".opblock"):
            method = block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text.strip().upper()
            path = block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path")
            shown.add((method, path))
        assert shown == expected, f"missing {expected - shown}, extra {shown - expected}"
        assert "Avatar" in driver.find_element(By.CSS_SELECTOR, ".info .title").text
        # Nothing came from anywhere but the server (no CDN): every resource the page loaded is ours.
        urls = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert urls and all(u.startswith(server.base) for u in urls), [u for u in urls if not u.startswith(server.base)]
        # An operation opens with its example.
        driver.find_element(By.CSS_SELECTOR, '.opblock-summary-path[data-path="/api/v1/avatars/{id}/videos"]').click()
        WebDriverWait(driver, 10).until(lambda d: "sadtalker" in d.page_source and "Hello! I am glad to see you." in d.page_source)
    finally:
        driver.quit()


def test_mediarecorder_webm_is_a_voice_sample(server, tmp_path):
    """Chromium's own MediaRecorder (audio/webm, Opus, no duration in the header) recording a LibriVox clip from the
    fake microphone, uploaded as a voice sample: converted to 16 kHz WAV and validated like any audio."""
    clip = sorted(LIBRIVOX.glob("*.wav"))[1]
    status, avatar = server.api("POST", "/api/v1/avatars", {"name": "Rec", "age": 30, "languages": ["en"], "consent": CONSENT})
    assert status == 201, avatar
    driver = make_driver(fake_audio=clip)
    try:
        sign_in(driver, server)
        driver.set_script_timeout(60)
        result = driver.execute_async_script("""
            const [avatarId, done] = arguments;
            (async () => {
              const stream = await navigator.mediaDevices.getUserMedia({audio: true});
              const recorder = new MediaRecorder(stream);
              const chunks = [];
              recorder.ondataavailable = e => chunks.push(e.data);
              const stopped = new Promise(r => recorder.onstop = r);
              recorder.start(250);
              await new Promise(r => setTimeout(r, 3000));
              recorder.stop();
              await stopped;
              stream.getTracks().forEach(t => t.stop());
              const blob = new Blob(chunks, {type: recorder.mimeType});
              const head = Array.from(new Uint8Array(await blob.slice(0, 4).arrayBuffer()));
              const response = await fetch(`/api/v1/avatars/${avatarId}/voice/samples?filename=recording.webm`,
                                           {method: 'POST', body: blob, credentials: 'same-origin'});
              done({status: response.status, body: await response.json(), mime: recorder.mimeType, bytes: blob.size, head});
            })().catch(e => done({error: String(e)}));
        """, avatar["id"])
    finally:
        driver.quit()
    assert "error" not in result, result
    assert result["mime"].startswith("audio/webm"), result["mime"]
    assert result["head"] == [0x1A, 0x45, 0xDF, 0xA3], "an EBML (WebM) file"
    assert result["status"] == 201, result["body"]
    sample = result["body"]["sample"]
    assert sample["sampleRate"] == 16000
    assert 2.0 < sample["seconds"] < 4.0, sample
    print(f"MediaRecorder {result['mime']}: {result['bytes']} bytes, {sample['seconds']:.2f} s, verdict {sample['verdict']}")
