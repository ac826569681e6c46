// The WebSocket to /api/v1/session: hello, reconnect with backoff, session resume, an outgoing queue while away.
import {
  CLOSE_CODES, ClientMessage, Language, MediaKind, Ready, ServerMessage, decodeServer, encodeClient, encodeMedia,
  parseHeader, MediaHeader, HEADER_SIZE,
} from "./protocol.js";

export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

export interface TransportEvents {
  onConnection(state: ConnectionState, detail: string): void;
  onReady(ready: Ready): void;
  onMessage(message: ServerMessage): void;
  onMedia(header: MediaHeader, payload: Uint8Array): void;
  /** The server refused the session for good (bad token, no photo…). */
  onFatal(reason: string): void;
}

export interface TransportOptions {
  avatar: string;
  language: Language;
  token?: string;
  url?: string;
}

export class Transport {
  private socket: WebSocket | null = null;
  private ready = false;
  private attempt = 0;
  private queue: string[] = [];
  private session: string | null = null;
  private sessionClosedAt = 0;
  private resumeSeconds = 60;
  private reconnectTimer: number | undefined;
  private pingTimer: number | undefined;
  private stopped = false;
  private micSequence = 0;
  private micPosition = 0;
  /** The latest turn the server has told us about. */
  turn = 0;

  constructor(private readonly options: TransportOptions, private readonly events: TransportEvents) {}

  get isReady(): boolean {
    return this.ready;
  }

  connect(): void {
    this.stopped = false;
    const url = this.options.url ?? `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/v1/session`;
    this.events.onConnection(this.attempt === 0 ? "connecting" : "reconnecting", this.attempt === 0 ? "Connecting…" : `Reconnecting (attempt ${this.attempt})…`);
    let socket: WebSocket;
    try {
      socket = new WebSocket(url);
    } catch (error) {
      this.scheduleReconnect(String(error));
      return;
    }
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.onopen = () => {
      const resume = this.session && (Date.now() - this.sessionClosedAt) / 1000 < this.resumeSeconds ? this.session : undefined;
      const hello: ClientMessage = { type: "hello", avatar: this.options.avatar, language: this.options.language };
      if (this.options.token) hello.token = this.options.token;
      if (resume) hello.resume = resume;
      socket.send(encodeClient(hello));
    };
    socket.onmessage = (event: MessageEvent) => {
      if (typeof event.data === "string") {
        const message = decodeServer(event.data);
        if (!message) return;
        if (message.turn > this.turn) this.turn = message.turn;
        if (message.type === "ready") {
          this.ready = true;
          this.attempt = 0;
          this.session = message.session;
          this.resumeSeconds = message.limits?.resume_seconds ?? 60;
          this.events.onConnection("open", message.resumed ? "Connected (conversation resumed)" : "Connected");
          this.events.onReady(message);
          this.flush();
          this.startPing();
          return;
        }
        this.events.onMessage(message);
      } else if (event.data instanceof ArrayBuffer) {
        const header = parseHeader(event.data);
        if (!header) return;
        if (header.turn > this.turn && header.kind === MediaKind.AvatarAudio) this.turn = header.turn;
        this.events.onMedia(header, new Uint8Array(event.data, HEADER_SIZE));
      }
    };
    socket.onclose = (event: CloseEvent) => {
      const wasReady = this.ready;
      this.ready = false;
      this.socket = null;
      window.clearInterval(this.pingTimer);
      if (wasReady) this.sessionClosedAt = Date.now();
      if (this.stopped) return;
      const known = CLOSE_CODES[event.code];
      if (known && !known.retry) {
        this.events.onConnection("closed", known.reason);
        this.events.onFatal(event.reason ? `${known.reason} (${event.reason})` : known.reason);
        return;
      }
      this.scheduleReconnect(known?.reason ?? (event.reason || `connection closed (${event.code})`));
    };
  }

  private scheduleReconnect(why: string): void {
    this.attempt += 1;
    const delay = Math.min(10_000, 500 * 2 ** Math.min(this.attempt - 1, 5)) * (0.8 + Math.random() * 0.4);
    this.events.onConnection("reconnecting", `Connection lost: ${why}. Reconnecting in ${(delay / 1000).toFixed(1)} s…`);
    window.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = window.setTimeout(() => this.connect(), delay);
  }

  /** Reconnect at once (the person pressed "Reconnect"). */
  reconnectNow(): void {
    window.clearTimeout(this.reconnectTimer);
    if (this.socket) return;
    this.connect();
  }

  private startPing(): void {
    window.clearInterval(this.pingTimer);
    this.pingTimer = window.setInterval(() => this.send({ type: "ping", t: performance.now() }, false), 15_000);
  }

  private flush(): void {
    while (this.ready && this.socket && this.queue.length > 0) {
      const next = this.queue.shift();
      if (next !== undefined) this.socket.send(next);
    }
  }

  /** Sends now, or queues until the session is ready again (`queue: false` drops it instead). */
  send(message: ClientMessage, queue = true): boolean {
    const text = encodeClient(message);
    if (this.ready && this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(text);
      return true;
    }
    if (queue) this.queue.push(text);
    return false;
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Microphone audio: 16 kHz mono PCM16; dropped while disconnected (stale speech is worse than none). */
  sendMic(pcm: Int16Array): void {
    if (!this.ready || !this.socket || this.socket.readyState !== WebSocket.OPEN) return;
    const payload = new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength);
    this.socket.send(encodeMedia({ kind: MediaKind.MicAudio, flags: 0, turn: this.turn, sequence: this.micSequence++, position: this.micPosition }, payload));
    this.micPosition += pcm.length;
  }

  close(): void {
    this.stopped = true;
    window.clearTimeout(this.reconnectTimer);
    window.clearInterval(this.pingTimer);
    this.socket?.close(1000, "bye");
    this.socket = null;
    this.ready = false;
  }
}
