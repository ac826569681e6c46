"""A fake XTTS streaming server (Coqui's API shape) for the XTTS adapter's contract tests. No model:

  POST /clone_speaker  multipart `wav_file` (must be a RIFF WAV) -> {"gpt_cond_latent": [[...]*1024]*2, "speaker_embedding": [...]*512}
                       and remembers the reference
  POST /tts            JSON text, language, speaker_embedding (512), gpt_cond_latent -> a JSON string: base64 of the
                       remembered reference WAV (a stand-in for "speech in the cloned voice")
  GET  /languages      ["en", "ru", ...]
  GET  /stats          how many clone/tts requests were served

Failure knobs, as a path prefix:  /error500/...  HTTP 500 with a JSON error;  /garbage/...  /tts answers a
string that is not base64 audio.  Prints "listening on PORT" once ready; exits when stdin closes.
"""

import base64
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE = {"reference": None, "clones": 0, "tts": 0}
LANGUAGES = ["en", "de", "fr", "es", "it", "pl", "pt", "tr", "ru", "nl", "cs", "ar", "zh", "ja", "hu", "ko"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002
        pass

    def reply(self, status, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def route(self):
        parts = self.path.strip("/").split("/")
        knob = parts[0] if parts and parts[0] in ("error500", "garbage") else None
        return knob, "/" + "/".join(parts[1:] if knob else parts)

    def do_GET(self):
        knob, path = self.route()
        if knob == "error500":
            return self.reply(500, {"detail": "fake failure"})
        if path == "/languages":
            return self.reply(200, LANGUAGES)
        if path == "/stats":
            return self.reply(200, {"clones": STATE["clones"], "tts": STATE["tts"]})
        self.reply(404, {"detail": "Not Found"})

    def do_POST(self):
        knob, path = self.route()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if knob == "error500":
            return self.reply(500, {"detail": "fake failure"})
        if path == "/clone_speaker":
            ctype = self.headers.get("Content-Type", "")
            if "boundary=" not in ctype or b'name="wav_file"' not in body:
                return self.reply(422, {"detail": [{"loc": ["body", "wav_file"], "msg": "field required"}]})
            start = body.find(b"RIFF")
            end = body.rfind(b"\r\n--")
            if start < 0 or end <= start:
                return self.reply(422, {"detail": "wav_file is not a WAV"})
            STATE["reference"] = body[start:end]
            STATE["clones"] += 1
            return self.reply(200, {"gpt_cond_latent": [[0.01] * 1024] * 2, "speaker_embedding": [0.02] * 512})
        if path == "/tts":
            try:
                req = json.loads(body)
            except ValueError:
                return self.reply(422, {"detail": "invalid JSON"})
            ok = (isinstance(req.get("text"), str) and req["text"] and req.get("language") in LANGUAGES
                  and len(req.get("speaker_embedding") or []) == 512 and req.get("gpt_cond_latent"))
            if not ok:
                return self.reply(422, {"detail": "text, language, speaker_embedding (512) and gpt_cond_latent are required"})
            STATE["tts"] += 1
            if knob == "garbage":
                return self.reply(200, "this is not audio")
            if STATE["reference"] is None:
                return self.reply(400, {"detail": "no speaker cloned yet"})
            return self.reply(200, base64.b64encode(STATE["reference"]).decode())
        self.reply(404, {"detail": "Not Found"})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"listening on {server.server_address[1]}", flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
