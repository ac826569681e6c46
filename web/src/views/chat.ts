// AvatarChat: the live avatar (canvas + voice), text and voice input, transcript, history, state, latency, errors.
import { h, time } from "../dom.js";
import { MediaKind, Ready, ServerMessage, TurnTimings } from "../protocol.js";
import { Transport, ConnectionState } from "../transport.js";
import { Player } from "../player.js";
import { Recorder, MicError, micAdvice } from "../recorder.js";
import { api, Avatar } from "../api.js";
import { EnginePanel, latencyChip } from "./live.js";

const EMOJI: Record<string, string> = { neutral: "🙂", joy: "😄", sadness: "😢", anger: "😠", fear: "😨", surprise: "😮" };
const STATE_TEXT: Record<string, string> = { idle: "Ready — type or speak", listening: "Listening…", thinking: "Thinking…", speaking: "Speaking" };

export interface ChatHandle {
  dispose(): void;
}

export function renderChat(root: HTMLElement, avatar: Avatar): ChatHandle {
  const canvas = h("canvas", { id: "avatar-canvas", width: 512, height: 512, role: "img", "aria-label": `${avatar.name}, the live avatar` });
  const connection = h("span", { id: "connection", class: "pill", "data-state": "connecting", role: "status" }, "Connecting…");
  const reconnect = h("button", { id: "reconnect", type: "button", class: "secondary", hidden: true }, "Reconnect now");
  const stateLabel = h("span", { id: "state", class: "pill", "data-state": "idle", role: "status", "aria-live": "polite" }, "Starting…");
  const latency = h("span", { id: "latency", class: "latency" }, "");
  const latencySay = h("span", { class: "visually-hidden", "aria-live": "polite" }, "");
  const engines = new EnginePanel("engines");
  engines.summary.id = "engines-summary";
  const enginesBox = h("details", { id: "engines-details", class: "engines-box" }, h("summary", {}, engines.summary), engines.list);
  const switcher = h("ul", { id: "avatar-switch", class: "switcher" });
  const switcherNav = h("nav", { class: "switcher-nav", "aria-label": "Switch avatar" }, h("span", { class: "muted", id: "switch-label" }, "Talk to:"), switcher);
  const stop = h("button", { id: "stop", type: "button", class: "danger", disabled: true, "aria-label": "Stop the avatar (interrupt)" }, "■ Stop");
  const notes = h("ul", { id: "notes", class: "notes", "aria-label": "What this avatar's offline models can and cannot do" });
  const history = h("ol", { id: "history", class: "history" });
  const log = h("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": "Conversation" }, history);
  const partial = h("p", { id: "partial", class: "partial", "aria-live": "polite" });
  const errors = h("div", { id: "errors", class: "errors", role: "alert" });
  const input = h("input", { id: "message", type: "text", maxlength: 2000, autocomplete: "off", placeholder: `Say something to ${avatar.name}…`, "aria-label": "Your message" });
  const send = h("button", { id: "send", type: "submit" }, "Send");
  const mic = h("button", { id: "mic", type: "button", class: "secondary", "aria-pressed": "false" }, "🎤 Start talking");
  const hold = h("button", { id: "hold", type: "button", class: "secondary", title: "Hold the button (or the Space bar outside the text box) while you speak" }, "Hold to talk");
  const level = h("meter", { id: "level", min: 0, max: 1, low: 0.02, value: 0, "aria-label": "Microphone level" });
  const silence = h("span", { id: "silence", class: "muted" }, "");
  const micMessage = h("p", { id: "mic-message", class: "warning", role: "alert", hidden: true });
  const form = h("form", { id: "composer", class: "composer" }, input, send);

  root.replaceChildren(
    h("section", { class: "chat", "aria-labelledby": "chat-title" },
      h("header", { class: "chat-head" },
        h("h1", { id: "chat-title" }, `Talking with ${avatar.name}`),
        connection, reconnect),
      switcherNav,
      notes,
      h("div", { class: "chat-grid" },
        h("div", { class: "stage" },
          h("div", { class: "canvas-wrap" }, canvas),
          h("div", { class: "stage-bar" }, stateLabel, stop, latency, latencySay),
          enginesBox,
          h("div", { class: "mic-bar" }, mic, hold, level, silence),
          micMessage),
        h("div", { class: "talk" },
          log, partial, errors, form))));

  // The other avatars: links to their chats (the current one is marked); only avatars with a photo can talk.
  void api.avatars().then((avatars) => {
    switcher.replaceChildren(...avatars.map((other) => h("li", {},
      other.id === avatar.id
        ? h("a", { href: `#/chat/${other.id}`, "aria-current": "page", "data-id": other.id, class: "current" }, thumb(other), other.name)
        : other.photo
          ? h("a", { href: `#/chat/${other.id}`, "data-id": other.id }, thumb(other), other.name)
          : h("a", { href: `#/setup/${other.id}/1`, "data-id": other.id, class: "muted" }, thumb(other), `${other.name} (add a photo)`))),
      h("li", {}, h("a", { href: "#/new", id: "switch-new" }, "+ New")));
  }).catch(() => switcherNav.remove());
  function thumb(other: Avatar): HTMLElement {
    return other.photo ? h("img", { src: other.photo.previewUrl, alt: "", width: 32, height: 32 }) : h("span", { class: "no-photo small", "aria-hidden": "true" }, "?");
  }

  // Draw the stored preview until the first frame arrives.
  const preview = new Image();
  preview.onload = () => canvas.getContext("2d")?.drawImage(preview, 0, 0, canvas.width, canvas.height);
  if (avatar.photo?.previewUrl) preview.src = avatar.photo.previewUrl;

  let lastTimings: TurnTimings | null = null;
  let readyAt: number | null = null;
  let typedAt: number | null = null;
  let typedTurn: number | null = null;
  let clientLatencyMs: number | null = null;
  let clientTurn: number | null = null;
  type Entry = { item: HTMLLIElement; text: HTMLElement; meta: HTMLElement; latency: HTMLElement };
  const replies = new Map<number, Entry>();

  const player = new Player(canvas, {
    onStarted(turn, playedMs) {
      if (typedAt !== null && (typedTurn === null || typedTurn <= turn)) {
        clientLatencyMs = Math.round(performance.now() - typedAt);
        clientTurn = turn;
        typedAt = null;
      }
      transport.send({ type: "playback", turn, event: "started", played_ms: playedMs }, false);
    },
    onProgress(turn, playedMs) {
      transport.send({ type: "playback", turn, event: "progress", played_ms: playedMs }, false);
    },
    onEnded(turn, playedMs) {
      transport.send({ type: "playback", turn, event: "ended", played_ms: playedMs }, false);
    },
  });

  const transport = new Transport({ avatar: avatar.id, language: "auto" }, {
    onConnection(state: ConnectionState, detail: string) {
      connection.dataset.state = state;
      connection.textContent = detail;
      reconnect.hidden = state !== "reconnecting";
    },
    onReady(ready: Ready) {
      if (readyAt === null) readyAt = performance.now();
      notes.replaceChildren(...ready.capabilities.notes.map((note) => h("li", {}, note)));
      notes.append(h("li", { class: "muted" }, `Model: ${ready.capabilities.model}; voice: ${ready.capabilities.voice}; languages: ${ready.capabilities.languages.join(", ")}`));
      if (stateLabel.textContent === "Starting…") setState("idle");
    },
    onMessage: handle,
    onMedia(header, payload) {
      if (header.kind === MediaKind.AvatarAudio) player.audio(header, payload);
      else if (header.kind === MediaKind.VideoFrame) player.video(header, payload);
    },
    onFatal(reason) {
      showError("The conversation cannot start", reason, false);
      setState("idle");
      stateLabel.textContent = "Not connected";
    },
  });

  function setState(state: string): void {
    stateLabel.dataset.state = state;
    stateLabel.textContent = STATE_TEXT[state] ?? state;
    stop.disabled = !(state === "thinking" || state === "speaking");
  }

  function showError(title: string, message: string, retryable: boolean, fix?: string): void {
    const item: HTMLDivElement = h("div", { class: "error" },
      h("strong", {}, title), " ", message, fix ? h("span", { class: "fix" }, ` What to do: ${fix}`) : null,
      retryable ? h("span", { class: "muted" }, " (you can try again)") : null,
      h("button", { type: "button", class: "link", "aria-label": "Dismiss this message", onclick: () => item.remove() }, "Dismiss"));
    errors.append(item);
    while (errors.children.length > 4) errors.firstElementChild?.remove();
  }

  /** A history entry: `meta` is its time/emotion/model line, `latency` its own slot (rewriting one leaves the other). */
  function addMessage(who: "person" | "avatar", text: string): Entry {
    const body = h("p", { class: "text" }, text);
    const meta = h("span", { class: "meta-text" }, time());
    const latencySlot = h("span", { class: "meta-latency" });
    const item = h("li", { class: `message ${who}` }, h("span", { class: "who" }, who === "person" ? "You" : avatar.name), body,
      h("span", { class: "meta" }, meta, latencySlot));
    history.append(item);
    item.scrollIntoView({ block: "end", behavior: matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth" });
    return { item, text: body, meta, latency: latencySlot };
  }

  function replyFor(turn: number) {
    let reply = replies.get(turn);
    if (!reply) {
      reply = addMessage("avatar", "");
      reply.item.dataset.turn = String(turn);
      replies.set(turn, reply);
    }
    return reply;
  }

  function showLatency(turn: number, timings: TurnTimings): void {
    lastTimings = timings;
    const client = clientTurn === turn ? clientLatencyMs : null;
    const chip = latencyChip(timings, client);
    if (!chip) return;
    const ms = chip.dataset.ms ?? "";
    latency.replaceChildren(chip);
    latency.dataset.ms = ms;
    latencySay.textContent = `Reply latency ${ms} milliseconds.`;
    const reply = replies.get(turn);
    const perTurn = latencyChip(timings, client);
    if (reply && perTurn) {
      reply.item.dataset.latencyMs = ms;
      reply.latency.replaceChildren(" · ", perTurn);
    }
  }

  const messageLog: string[] = [];
  function handle(message: ServerMessage): void {
    messageLog.push(`${message.turn}:${message.type}${message.type === "state" ? `=${message.state}` : message.type === "transcript" ? `=${message.kind}` : message.type === "turn_end" ? `=${message.reason}` : message.type === "error" ? `=${message.code}` : ""}`);
    if (messageLog.length > 300) messageLog.shift();
    switch (message.type) {
      case "state":
        setState(message.state);
        break;
      case "transcript":
        if (message.kind === "partial") partial.textContent = message.text ? `You: “${message.text}”` : "";
        else {
          partial.textContent = "";
          if (message.text.trim()) addMessage("person", message.text).item.dataset.source = "voice";
        }
        break;
      case "reply":
        if (message.done) {
          const reply = replyFor(message.turn);
          reply.text.textContent = message.text;
          const emoji = EMOJI[message.emotion.label] ?? "";
          reply.meta.textContent = `${time()} · ${emoji} ${message.emotion.label}${message.model ? ` · ${message.model}` : ""}`;
          reply.item.dataset.emotion = message.emotion.label;
          if (message.notice) reply.item.append(h("p", { class: "notice" }, message.notice));
          player.markDone(message.turn);
        } else {
          const reply = replyFor(message.turn);
          // The server's clause deltas come without the space between clauses ("before.They're"): put it back.
          const before = reply.text.textContent ?? "";
          const gap = before && /[.,!?;:…]$/.test(before) && /^[^\s.,!?;:…]/.test(message.delta) ? " " : "";
          reply.text.textContent = before + gap + message.delta;
        }
        break;
      case "interrupted": {
        player.flush(message.turn);
        const reply = replyFor(message.turn);
        reply.item.append(h("p", { class: "notice" }, message.heard ? `Interrupted — you heard: “${message.heard}”` : "Interrupted before the answer was spoken"));
        break;
      }
      case "turn_end":
        player.markDone(message.turn);
        showLatency(message.turn, message.timings);
        void engines.refresh();
        break;
      case "error":
        showError(`Error (${message.code}):`, message.message, message.retryable, message.fix ?? defaultFix(message.code));
        void engines.refresh();
        break;
      default:
        break;
    }
  }

  function defaultFix(code: string): string | undefined {
    if (code === "rate-limited") return "wait a moment between messages.";
    if (code === "engine-failed" || code === "asr-failed") return "try again in a few seconds; the server restarts the engine.";
    return undefined;
  }

  function unlock(): void {
    player.unlock();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    unlock();
    const text = input.value.trim();
    if (!text) return;
    addMessage("person", text).item.dataset.source = "text";
    typedAt = performance.now();
    typedTurn = transport.turn + 1;
    clientLatencyMs = null;
    const sent = transport.send({ type: "text", text });
    if (!sent) showError("Not connected:", "your message is queued and will be sent when the connection is back.", true);
    input.value = "";
  });
  stop.addEventListener("click", () => {
    transport.send({ type: "interrupt", played_ms: player.playedMs() }, false);
    player.flush(transport.turn);
  });
  reconnect.addEventListener("click", () => transport.reconnectNow());

  // The microphone: hands-free (server VAD) or push-to-talk (send only while held, then commit).
  let pushing = false;
  let handsFree = false;
  let quietSince = performance.now();
  const recorder = new Recorder(player.context, (pcm, rms) => {
    level.value = Math.min(1, rms * 4);
    if (rms > 0.01) quietSince = performance.now();
    silence.textContent = performance.now() - quietSince > 1500 ? "silence" : "";
    if (handsFree || pushing) transport.sendMic(pcm);
  });

  async function ensureMic(): Promise<boolean> {
    unlock();
    if (recorder.active) return true;
    try {
      await recorder.start();
      micMessage.hidden = true;
      return true;
    } catch (error) {
      micMessage.hidden = false;
      micMessage.textContent = error instanceof MicError ? error.message : micAdvice("other");
      micMessage.dataset.problem = error instanceof MicError ? error.problem : "other";
      return false;
    }
  }

  mic.addEventListener("click", async () => {
    if (handsFree) {
      handsFree = false;
      recorder.stop();
      mic.setAttribute("aria-pressed", "false");
      mic.textContent = "🎤 Start talking";
      level.value = 0;
      return;
    }
    if (!(await ensureMic())) return;
    handsFree = true;
    mic.setAttribute("aria-pressed", "true");
    mic.textContent = "🎤 Listening — press to stop";
  });

  async function pushStart(): Promise<void> {
    if (pushing || handsFree) return;
    if (!(await ensureMic())) return;
    pushing = true;
    hold.classList.add("active");
  }
  function pushEnd(): void {
    if (!pushing) return;
    pushing = false;
    hold.classList.remove("active");
    transport.send({ type: "commit" }, false);
  }
  hold.addEventListener("pointerdown", () => void pushStart());
  hold.addEventListener("pointerup", pushEnd);
  hold.addEventListener("pointerleave", pushEnd);
  const keydown = (event: KeyboardEvent) => {
    const target = event.target as HTMLElement | null;
    if (event.code !== "Space" || event.repeat || (target && ["INPUT", "TEXTAREA", "BUTTON", "SELECT", "SUMMARY", "A"].includes(target.tagName))) return;
    event.preventDefault();
    void pushStart();
  };
  const keyup = (event: KeyboardEvent) => {
    if (event.code === "Space") pushEnd();
  };
  document.addEventListener("keydown", keydown);
  document.addEventListener("keyup", keyup);
  document.addEventListener("pointerdown", unlock);

  transport.connect();
  (window as unknown as { avatarDebug: unknown }).avatarDebug = { player, transport, messages: messageLog, get readyAt() { return readyAt; }, get timings() { return lastTimings; }, get clientLatencyMs() { return clientLatencyMs; } };

  return {
    dispose() {
      transport.close();
      engines.dispose();
      recorder.stop();
      void player.context.close();
      document.removeEventListener("keydown", keydown);
      document.removeEventListener("keyup", keyup);
      document.removeEventListener("pointerdown", unlock);
    },
  };
}
