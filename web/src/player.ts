// The avatar's voice and face on the AudioContext clock (docs/protocol.md, "Sync"): audio chunk at
// base + position/16000, speaking frame k when base + 640·k/16000 plays, idle frames as they arrive.
// Late frames are dropped; audio never is.
import { SAMPLE_RATE, SAMPLES_PER_FRAME, SPEAKING_FLAG, MediaHeader } from "./protocol.js";

const JITTER_S = 0.15;

interface Scheduled {
  at: number;
  image: ImageBitmap;
  turn: number;
}

export interface PlayerEvents {
  /** The first speaking frame of `turn` was drawn (played_ms of audio so far). */
  onStarted(turn: number, playedMs: number): void;
  onProgress(turn: number, playedMs: number): void;
  onEnded(turn: number, playedMs: number): void;
}

export class Player {
  readonly context: AudioContext;
  private readonly canvas: HTMLCanvasElement;
  private readonly draw: CanvasRenderingContext2D;
  private turn = 0;
  private base: number | null = null;
  private turnStart = 0;
  private audioEnd = 0;
  private sources: AudioBufferSourceNode[] = [];
  private frames: Scheduled[] = [];
  private startedTurns = new Set<number>();
  private endedTurns = new Set<number>();
  private lastProgress = 0;
  private flushedTurns = new Set<number>();
  private doneTurns = new Set<number>();
  private decoding = 0;
  framesShown = 0;
  framesDropped = 0;
  /** AudioContext time when the last speaking frame was drawn (tests read it). */
  lastSpeakingDraw = 0;

  constructor(canvas: HTMLCanvasElement, private readonly events: PlayerEvents) {
    this.canvas = canvas;
    const draw = canvas.getContext("2d");
    if (!draw) throw new Error("this browser cannot draw on a canvas (2D context unavailable)");
    this.draw = draw;
    this.context = new AudioContext({ latencyHint: "interactive" });
    const tick = () => {
      if (this.context.state === "closed") return;
      this.render();
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  /** Browsers start audio only after a gesture: call from a click or key handler. */
  unlock(): void {
    if (this.context.state === "suspended") void this.context.resume();
  }

  get speaking(): boolean {
    return this.context.currentTime < this.audioEnd;
  }

  playedMs(turn = this.turn): number {
    if (turn !== this.turn || this.base === null) return 0;
    const heard = Math.min(this.context.currentTime, this.audioEnd) - this.turnStart;
    return Math.max(0, Math.round(heard * 1000));
  }

  audio(header: MediaHeader, payload: Uint8Array): void {
    if (header.turn < this.turn || this.flushedTurns.has(header.turn)) return; // stale
    if (header.turn > this.turn) this.beginTurn(header.turn);
    const samples = Math.floor(payload.byteLength / 2);
    if (samples === 0) return;
    const view = new DataView(payload.buffer, payload.byteOffset, samples * 2);
    const buffer = this.context.createBuffer(1, samples, SAMPLE_RATE);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < samples; i++) channel[i] = view.getInt16(i * 2, true) / 32768;
    const now = this.context.currentTime;
    if (this.base === null) {
      this.base = now + JITTER_S - header.position / SAMPLE_RATE;
      this.turnStart = this.base + header.position / SAMPLE_RATE;
    }
    let when = this.base + header.position / SAMPLE_RATE;
    if (when < now + 0.01) {
      // The chunk is late: move the whole turn's clock so audio is never cut and frames stay in step.
      const shift = now + 0.02 - when;
      this.base += shift;
      when += shift;
      for (const frame of this.frames) if (frame.turn === this.turn) frame.at += shift;
    }
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    source.start(when);
    this.sources.push(source);
    source.onended = () => {
      this.sources = this.sources.filter((s) => s !== source);
    };
    this.audioEnd = Math.max(this.audioEnd, when + buffer.duration);
  }

  video(header: MediaHeader, payload: Uint8Array): void {
    const speaking = (header.flags & SPEAKING_FLAG) !== 0;
    if (speaking && (header.turn < this.turn || this.flushedTurns.has(header.turn))) return;
    if (this.decoding > 6 && !speaking) {
      this.framesDropped++;
      return; // the decoder is behind: skip idle frames rather than queue them
    }
    this.decoding++;
    const copy = payload.slice();
    createImageBitmap(new Blob([copy], { type: "image/jpeg" }))
      .then((image) => {
        this.decoding--;
        if (speaking) {
          if (header.turn > this.turn) this.beginTurn(header.turn);
          if (this.base === null) {
            // Frames before the first audio chunk: hold them until the audio fixes the clock.
            this.frames.push({ at: Number.NaN, image, turn: header.turn });
          } else {
            this.frames.push({ at: this.base + (header.position * SAMPLES_PER_FRAME) / SAMPLE_RATE, image, turn: header.turn });
          }
        } else if (this.frames.length === 0 && !this.speaking) {
          this.paint(image);
          image.close();
        } else {
          image.close();
        }
      })
      .catch(() => {
        this.decoding--;
        this.framesDropped++;
      });
  }

  /** The server has sent everything of `turn` (reply done / turn_end): `ended` may follow once it has played. */
  markDone(turn: number): void {
    this.doneTurns.add(turn);
  }

  /** `interrupted`: flush everything queued for `turn`. */
  flush(turn: number): void {
    this.flushedTurns.add(turn);
    for (const source of this.sources) {
      try {
        source.stop();
      } catch {
        /* already stopped */
      }
    }
    this.sources = [];
    for (const frame of this.frames) frame.image.close();
    this.frames = [];
    this.audioEnd = this.context.currentTime;
    if (turn === this.turn && this.startedTurns.has(turn) && !this.endedTurns.has(turn)) {
      this.endedTurns.add(turn);
      this.events.onEnded(turn, this.playedMs(turn));
    }
  }

  private beginTurn(turn: number): void {
    if (this.turn > 0 && this.startedTurns.has(this.turn) && !this.endedTurns.has(this.turn)) {
      this.endedTurns.add(this.turn);
      this.events.onEnded(this.turn, this.playedMs(this.turn));
    }
    this.turn = turn;
    this.base = null;
    this.audioEnd = 0;
  }

  private paint(image: ImageBitmap): void {
    const { width, height } = this.canvas;
    this.draw.drawImage(image, 0, 0, width, height);
    this.framesShown++;
  }

  private render(): void {
    const now = this.context.currentTime;
    if (this.base !== null) {
      for (const frame of this.frames) if (Number.isNaN(frame.at)) frame.at = this.base; // held frames: show at once
    }
    this.frames.sort((a, b) => a.at - b.at);
    let due: Scheduled | null = null;
    while (this.frames.length > 0 && this.frames[0].at <= now) {
      const next = this.frames.shift() as Scheduled;
      if (due) {
        due.image.close();
        this.framesDropped++;
      }
      due = next;
    }
    if (due) {
      this.paint(due.image);
      due.image.close();
      this.lastSpeakingDraw = now;
      if (!this.startedTurns.has(due.turn)) {
        this.startedTurns.add(due.turn);
        this.lastProgress = now;
        this.events.onStarted(due.turn, this.playedMs(due.turn));
      }
    }
    const turn = this.turn;
    if (this.startedTurns.has(turn) && !this.endedTurns.has(turn)) {
      if (this.doneTurns.has(turn) && now >= this.audioEnd && this.frames.length === 0) {
        this.endedTurns.add(turn);
        this.events.onEnded(turn, this.playedMs(turn));
      } else if (now - this.lastProgress >= 0.5) {
        this.lastProgress = now;
        this.events.onProgress(turn, this.playedMs(turn));
      }
    }
  }
}
