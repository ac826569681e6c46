// Shared by the system-test step and the chat: each engine's state (from /readyz) and a turn's latency readout.
import { h } from "../dom.js";
import { api, ApiError, Component } from "../api.js";
import { TurnTimings } from "../protocol.js";

/** What each component and engine-host capability is, in words. */
const NAMES: Record<string, string> = {
  database: "Database",
  cache: "Cache",
  redis: "Cache server (Redis)",
  "engine-host": "Engine host",
  engines: "Engines",
  llm: "Language model",
  "embedded-llm": "Language model",
  asr: "Speech recognition",
  tts: "Speech (the avatar's voice)",
  landmarks: "Face finder",
  voice: "Voice match",
  moderation: "Safety check",
};

const STATE_WORDS: Record<string, string> = {
  ready: "ready", degraded: "working, with limits", starting: "starting", down: "not working", disabled: "switched off",
  loaded: "ready", ok: "ready", loading: "starting", failed: "not working", error: "not working",
};

function fixFor(state: string, name: string): string | undefined {
  if (state === "starting" || state === "loading") return "It is still loading its models: wait a minute; this list refreshes by itself.";
  if (state === "down" || state === "failed" || state === "error") return `Run \`avatar doctor\` on the server to see why ${NAMES[name] ?? name} is not working; the server restarts engines that crash.`;
  if (state === "disabled" && name === "engines") return "Start the server with AVATAR_ENGINES_ENABLED=true (the default) for live conversation.";
  return undefined;
}

/** Rows: every component, then the engine host's capabilities as engines of their own. */
export function engineRows(components: Component[]): { name: string; state: string; reason?: string }[] {
  const rows: { name: string; state: string; reason?: string }[] = [];
  for (const component of components) {
    rows.push({ name: component.name, state: component.state, reason: component.reason });
    for (const [key, value] of Object.entries(component.details ?? {})) {
      if (key.startsWith("capability.")) rows.push({ name: key.slice("capability.".length), state: value });
    }
  }
  return rows;
}

/** A list of engine states, refreshed every `everyMs` and on demand. */
export class EnginePanel {
  readonly list: HTMLUListElement;
  readonly summary: HTMLElement;
  readonly element: HTMLElement;
  private timer: number | undefined;
  private disposed = false;
  private shown = "";

  constructor(id: string, everyMs = 15_000) {
    this.list = h("ul", { id, class: "engines", "aria-label": "Engine states" });
    this.summary = h("span", { id: `${id}-summary`, class: "engines-summary" }, "Checking the engines…");
    this.element = h("div", { class: "engine-panel" }, this.summary, this.list);
    void this.refresh();
    this.timer = window.setInterval(() => void this.refresh(), everyMs);
  }

  async refresh(): Promise<void> {
    try {
      const report = await api.readiness();
      if (this.disposed) return;
      const rows = engineRows(report.components);
      // Unchanged states leave the list alone: no re-announcement, no focus or hover lost every refresh.
      const signature = JSON.stringify(rows);
      if (signature !== this.shown) this.list.replaceChildren(...rows.map((row) => {
        const words = STATE_WORDS[row.state] ?? row.state;
        const fix = fixFor(row.state, row.name);
        return h("li", { class: `engine ${row.state}`, "data-name": row.name, "data-state": row.state },
          h("span", { class: "engine-name" }, NAMES[row.name] ?? row.name), ": ",
          h("strong", {}, words), row.reason ? ` — ${row.reason}` : "", fix ? h("span", { class: "fix" }, ` ${fix}`) : null);
      }));
      this.shown = signature;
      const waiting = rows.filter((row) => !["ready", "loaded", "ok", "degraded", "disabled"].includes(row.state));
      this.summary.dataset.status = report.status;
      const ready = rows.filter((row) => ["ready", "loaded", "ok"].includes(row.state)).length;
      const others = rows.filter((row) => ["degraded", "disabled"].includes(row.state))
        .map((row) => `${NAMES[row.name] ?? row.name} ${STATE_WORDS[row.state]}`);
      this.summary.textContent = report.status === "ready"
        ? `Engines: ${ready === rows.length ? `all ${ready}` : ready} ready${others.length ? `; ${others.join(", ")}` : ""}`
        : `Engines: ${waiting.length} of ${rows.length} not ready — ${waiting.map((r) => NAMES[r.name] ?? r.name).join(", ")}`;
    } catch (error) {
      if (this.disposed) return;
      this.summary.dataset.status = "unreachable";
      this.summary.textContent = `Engines: the server did not answer (${error instanceof ApiError ? error.text : String(error)})`;
    }
  }

  dispose(): void {
    this.disposed = true;
    window.clearInterval(this.timer);
  }
}

const STAGES: [keyof TurnTimings, string][] = [
  ["asr_final", "speech recognised"], ["first_clause", "first words of the answer written"], ["first_audio", "first audio made"],
  ["first_frame", "first frame rendered"], ["first_frame_shown", "first frame shown here (reported by this browser)"], ["total", "whole turn"],
];

let chips = 0;

/** "Reply in 3.2 s": end of speech (or of the typed message) → first frame shown; the stages on hover and on focus. */
export function latencyChip(timings: TurnTimings, clientMs: number | null = null): HTMLElement | null {
  const shown = timings.first_frame_shown ?? timings.first_frame;
  if (shown === undefined || shown === null) return null;
  const id = `latency-stages-${++chips}`;
  const stages = STAGES.filter(([key]) => timings[key] !== undefined && timings[key] !== null)
    .map(([key, words]) => h("li", { "data-stage": key }, `${words}: ${Math.round(Number(timings[key]))} ms`));
  if (clientMs !== null) stages.push(h("li", { "data-stage": "client" }, `measured in this browser (message sent → frame shown): ${clientMs} ms`));
  const tip = h("span", { id, role: "tooltip", class: "tip" },
    h("span", { class: "tip-title" }, "From the end of your speech (or message) to the avatar's first frame on screen:"), h("ul", {}, ...stages));
  const chip = h("span", { class: "latency-chip", tabindex: 0, role: "note", "aria-describedby": id, "aria-label": `Reply latency ${(shown / 1000).toFixed(1)} seconds` },
    `⏱ ${(shown / 1000).toFixed(1)} s`);
  chip.addEventListener("keydown", (event) => {
    if (event.key === "Escape") chip.blur(); // the stages close with Escape, as a tooltip should
  });
  return h("span", { class: "latency-wrap", "data-ms": Math.round(shown) }, chip, tip);
}
