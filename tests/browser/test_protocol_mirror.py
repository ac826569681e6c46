"""web/src/protocol.ts must say what Sources/AvatarServer/Session/SessionProtocol.swift says."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SWIFT = (REPO / "Sources/AvatarServer/Session/SessionProtocol.swift").read_text()
TS = (REPO / "web/src/protocol.ts").read_text()


def ts_list(name: str) -> set[str]:
    body = re.search(rf"export const {name} = \[(.*?)\] as const", TS, re.S).group(1)
    return set(re.findall(r'"([a-z_]+)"', body))


def test_client_message_types_match():
    decode = SWIFT.split("static func decode")[1].split("struct TurnTimings")[0]
    swift = set(re.findall(r'case "([a-z_]+)":', decode))
    assert swift == ts_list("CLIENT_TYPES")


def test_server_message_types_match():
    swift = set(re.findall(r'object\["type"\] = "([a-z_]+)"', SWIFT))
    assert swift == ts_list("SERVER_TYPES")


def test_media_kinds_header_and_clock_match():
    kinds = dict((name.lower(), int(v)) for name, v in re.findall(r"case (\w+) = (\d+)", SWIFT.split("enum MediaKind")[1].split("}")[0]))
    ts_kinds = dict((name.lower(), int(v)) for name, v in re.findall(r"(\w+) = (\d+),", TS.split("enum MediaKind")[1].split("}")[0]))
    assert kinds == ts_kinds
    assert re.search(r"static let size = (\d+)", SWIFT).group(1) == re.search(r"HEADER_SIZE = (\d+)", TS).group(1)
    assert re.search(r"sampleRate = (\d+)", SWIFT).group(1) == re.search(r"SAMPLE_RATE = (\d+)", TS).group(1)
    assert re.search(r"samplesPerFrame = (\d+)", SWIFT).group(1) == re.search(r"SAMPLES_PER_FRAME = (\d+)", TS).group(1)


def test_timing_and_playback_fields_match():
    timings = set(re.findall(r'= "([a-z_]+)"', SWIFT.split("struct TurnTimings")[1].split("enum ServerMessage")[0])) | {"total"}
    ts_timings = set(re.findall(r"(\w+)\?: number;", TS.split("interface TurnTimings")[1].split("}")[0]))
    assert timings == ts_timings
    events = set(re.findall(r"case (\w+)", SWIFT.split("enum PlaybackEvent")[1].split("}")[0])[0:1]) | set(re.findall(r"case started, (\w+), (\w+)", SWIFT)[0])
    assert events == {"started", "progress", "ended"}
    states = set(re.search(r"enum State: String, Sendable \{ case ([a-z, ]+) \}", SWIFT).group(1).split(", "))
    assert states == set(re.findall(r'"(\w+)"', re.search(r"export type SessionState = (.*);", TS).group(1)))
