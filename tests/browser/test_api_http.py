"""The API over a real socket, with a client that writes its whole body before it reads the answer: Python's urllib
(it also sends `Connection: close`). An error given before the body was read — no token, no such avatar, too large,
not an image — must reach it; before, the server stopped reading, urllib's write blocked and it timed out."""
import json
import time
import urllib.request

import pytest

MB = 1024 * 1024
PNG_100x100_HEADER = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0d\0\0\0d\x08\x02\0\0\0"


def put(server, path: str, data: bytes, token: bool = True) -> tuple[int | str, dict | None, float]:
    headers = {"Content-Type": "image/png"}
    if token:
        headers["Authorization"] = f"Bearer {server.token}"
    request = urllib.request.Request(server.base + path, data=data, method="PUT", headers=headers)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.load(r), time.monotonic() - started
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null"), time.monotonic() - started
    except OSError as e:  # a timeout or a reset: what this test exists to catch
        return f"{type(e).__name__}: {e}", None, time.monotonic() - started


@pytest.fixture(scope="module")
def avatar_id(server):
    status, body = server.api("POST", "/api/v1/avatars", {
        "name": "Uploads", "persona": {"name": "Uploads"},
        "consent": {"givenBy": "the test", "basis": "self", "grantedAt": "2026-12-03"}})
    assert status == 201, body
    yield body["id"]
    server.api("DELETE", f"/api/v1/avatars/{body['id']}")


@pytest.mark.parametrize("size_mb", [4, 40])
def test_errors_reach_a_client_that_writes_first(server, avatar_id, size_mb):
    data = b"\7" * (size_mb * MB)
    cases = [
        (put(server, "/api/v1/avatars/no-such-avatar/photo?filename=x.png", data), 404),
        (put(server, f"/api/v1/avatars/{avatar_id}/photo?filename=x.png", data, token=False), 401),
        (put(server, f"/api/v1/avatars/{avatar_id}/photo?filename=x.png", data), 415),
    ]
    if size_mb > 20:  # over the 20 MB photo limit, after a valid PNG header
        cases.append((put(server, f"/api/v1/avatars/{avatar_id}/photo?filename=x.png", PNG_100x100_HEADER + data), 413))
    for (status, body, seconds), expected in cases:
        assert status == expected, (status, body)
        assert body and body.get("detail") and body.get("fix"), body
        assert seconds < 20, seconds
    # nothing was stored: the avatar still has no photo
    status, avatar = server.api("GET", f"/api/v1/avatars/{avatar_id}")
    assert status == 200 and not avatar.get("photo"), avatar
