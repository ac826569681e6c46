// The live session protocol (docs/protocol.md), mirrored from Sources/AvatarServer/Session/SessionProtocol.swift.
// tests/browser/test_protocol_mirror.py fails when the two drift apart (message types, fields, media kinds, header size).

export const PROTOCOL_VERSION = 1;
export const SAMPLE_RATE = 16000;
export const SAMPLES_PER_FRAME = 640;
export const HEADER_SIZE = 16;
export const SPEAKING_FLAG = 1;

export const enum MediaKind {
  MicAudio = 1,
  AvatarAudio = 2,
  VideoFrame = 3,
}

export type Language = "en" | "ru" | "auto";
export type PlaybackEvent = "started" | "progress" | "ended";
export type SessionState = "idle" | "listening" | "thinking" | "speaking";

// Client → server.
export type ClientMessage =
  | { type: "hello"; token?: string; avatar: string; language?: Language; resume?: string }
  | { type: "text"; text: string }
  | { type: "interrupt"; played_ms?: number }
  | { type: "playback"; turn: number; event: PlaybackEvent; played_ms: number }
  | { type: "commit" }
  | { type: "ping"; t?: number };

export interface Ready {
  type: "ready";
  session: string;
  resumed: boolean;
  avatar: { id: string; name: string };
  audio: { rate: number; channels: number; format: string };
  video: { fps: number; format: string; width: number; height: number; samplesPerFrame: number };
  limits: { messages_per_second: number; audio_realtime_factor: number; max_binary_bytes: number; resume_seconds: number };
  capabilities: { model: string; languages: string[]; voice: string; notes: string[] };
}

export interface TurnTimings {
  asr_final?: number;
  first_clause?: number;
  first_audio?: number;
  first_frame?: number;
  first_frame_shown?: number;
  total?: number;
}

// Server → client; every message also carries `v` and `turn`.
export type ServerMessage = { v: number; turn: number } & (
  | Ready
  | { type: "state"; state: SessionState }
  | { type: "transcript"; kind: "partial" | "final"; text: string; language: string }
  | { type: "reply"; done: false; delta: string }
  | {
      type: "reply";
      done: true;
      text: string;
      emotion: { label: string; intensity: number };
      model: string | null;
      route: string;
      notice?: string;
    }
  | { type: "interrupted"; played_ms: number; heard: string }
  | { type: "turn_end"; reason: "completed" | "interrupted"; heard: string; timings: TurnTimings }
  | { type: "error"; code: string; message: string; fix?: string; retryable: boolean }
  | { type: "pong"; t?: number }
);

export const CLIENT_TYPES = ["hello", "text", "interrupt", "playback", "commit", "ping"] as const;
export const SERVER_TYPES = ["ready", "state", "transcript", "reply", "interrupted", "turn_end", "error", "pong"] as const;

/** WebSocket close codes the server uses, with what a person should do. */
export const CLOSE_CODES: Record<number, { reason: string; retry: boolean }> = {
  4400: { reason: "The server did not accept the session start (no or bad hello).", retry: false },
  4401: { reason: "You are not signed in, or the token was revoked. Open the sign-in link that `avatar serve` printed, or make a new one with `avatar token create`.", retry: false },
  4404: { reason: "This avatar does not exist for your account. Pick another one from the list.", retry: false },
  4409: { reason: "This avatar has no usable photo yet. Upload one in the avatar's set-up.", retry: false },
  4429: { reason: "The server has its maximum number of live conversations. Retrying shortly.", retry: true },
  4503: { reason: "The server's engines are disabled (AVATAR_ENGINES_ENABLED=false); live conversation needs them.", retry: false },
};

export interface MediaHeader {
  kind: MediaKind;
  flags: number;
  turn: number;
  sequence: number;
  position: number;
}

export function parseHeader(data: ArrayBuffer): MediaHeader | null {
  if (data.byteLength < HEADER_SIZE) return null;
  const view = new DataView(data);
  if (view.getUint8(1) !== PROTOCOL_VERSION) return null;
  return {
    kind: view.getUint8(0) as MediaKind,
    flags: view.getUint8(2),
    turn: view.getUint32(4, true),
    sequence: view.getUint32(8, true),
    position: view.getUint32(12, true),
  };
}

/** A binary frame: the 16-byte header, then the payload. */
export function encodeMedia(header: MediaHeader, payload: Uint8Array): ArrayBuffer {
  const out = new ArrayBuffer(HEADER_SIZE + payload.byteLength);
  const view = new DataView(out);
  view.setUint8(0, header.kind);
  view.setUint8(1, PROTOCOL_VERSION);
  view.setUint8(2, header.flags);
  view.setUint8(3, 0);
  view.setUint32(4, header.turn, true);
  view.setUint32(8, header.sequence, true);
  view.setUint32(12, header.position, true);
  new Uint8Array(out, HEADER_SIZE).set(payload);
  return out;
}

export function encodeClient(message: ClientMessage): string {
  return JSON.stringify({ v: PROTOCOL_VERSION, ...message });
}

export function decodeServer(text: string): ServerMessage | null {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== "object" || value === null) return null;
    const type = (value as { type?: unknown }).type;
    if (typeof type !== "string" || !(SERVER_TYPES as readonly string[]).includes(type)) return null;
    return value as ServerMessage;
  } catch {
    return null;
  }
}
