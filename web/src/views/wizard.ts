// SetupWizard: persona + consent (creates the avatar: the server keeps the draft), photo, voice samples, then talk.
import { h } from "../dom.js";
import { api, ApiError, Avatar, Box, PhotoResult } from "../api.js";
import { MicError, micAdvice, openMicrophone, Recorder } from "../recorder.js";
import { MediaKind, ServerMessage } from "../protocol.js";
import { Transport } from "../transport.js";
import { Player } from "../player.js";
import { EnginePanel, latencyChip } from "./live.js";

const STEPS = ["Persona & consent", "Photo", "Voice", "Talk"] as const;

export interface WizardHandle {
  dispose(): void;
}

export function renderWizard(root: HTMLElement, avatar: Avatar | null, step: number, go: (hash: string) => void): WizardHandle {
  const progress = h("ol", { class: "steps", "aria-label": "Set-up steps" },
    ...STEPS.map((name, index) => h("li", { class: index < step ? "done" : index === step ? "current" : "", "aria-current": index === step ? "step" : undefined },
      h("span", { class: "num" }, String(index + 1)), " ", name)));
  const bar = h("progress", { max: STEPS.length, value: step + 1, "aria-label": `Step ${step + 1} of ${STEPS.length}` });
  const body = h("div", { class: "step-body" });
  root.replaceChildren(h("section", { class: "wizard", "aria-labelledby": "wizard-title" },
    h("h1", { id: "wizard-title" }, avatar ? `Set up ${avatar.name}` : "New avatar"), bar, progress, body));
  if (step === 0) persona(body, avatar, go);
  else if (avatar && step === 1) photo(body, avatar, go);
  else if (avatar && step === 2) voice(body, avatar, go);
  else if (avatar) return finish(body, avatar, go);
  return { dispose() { /* nothing live on this step */ } };
}

function field(label: string, control: HTMLElement, hint?: string): HTMLElement {
  const id = control.id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null);
}

function alertBox(): HTMLElement {
  return h("div", { class: "form-errors", role: "alert", "aria-live": "assertive" });
}

function showProblem(box: HTMLElement, error: unknown): void {
  const text = error instanceof ApiError ? error.text : String(error);
  box.replaceChildren(h("p", { class: "error" }, text));
}

function persona(body: HTMLElement, avatar: Avatar | null, go: (hash: string) => void): void {
  const today = new Date().toISOString().slice(0, 10);
  const name = h("input", { id: "p-name", name: "name", required: true, maxlength: 80, value: avatar?.name ?? "", autocomplete: "off" });
  const age = h("input", { id: "p-age", name: "age", type: "number", min: 0, max: 150, value: avatar?.age ?? "", "aria-describedby": "p-age-hint" });
  const interests = h("input", { id: "p-interests", name: "interests", value: avatar?.interests.join(", ") ?? "", "aria-describedby": "p-interests-hint" });
  const manner = h("input", { id: "p-manner", name: "manner", value: avatar?.manner ?? "", placeholder: "cheerful, short sentences" });
  const languages = h("select", { id: "p-languages", name: "languages" },
    h("option", { value: "en" }, "English"), h("option", { value: "ru" }, "Russian"), h("option", { value: "en,ru" }, "English and Russian"));
  languages.value = avatar?.languages.join(",") || "en";
  const childSafe = h("input", { id: "p-childsafe", name: "childSafe", type: "checkbox", checked: avatar ? avatar.childSafe : true, "aria-describedby": "p-childsafe-hint" });
  const givenBy = h("input", { id: "c-given", name: "givenBy", required: true, value: avatar?.consent?.givenBy ?? "", autocomplete: "name" });
  const basisSelf = h("input", { id: "c-self", type: "radio", name: "basis", value: "self", checked: (avatar?.consent?.basis ?? "self") === "self" });
  const basisPermission = h("input", { id: "c-permission", type: "radio", name: "basis", value: "permission", checked: avatar?.consent?.basis === "permission" });
  const agree = h("input", { id: "c-agree", type: "checkbox", required: true, checked: avatar?.consent !== undefined });
  const errors = alertBox();
  const submit = h("button", { type: "submit", id: "persona-next" }, avatar ? "Save and continue" : "Create and continue");
  const form = h("form", { id: "persona-form", novalidate: true },
    field("Name", name),
    field("Age (optional)", age, "Child-safe mode always stays on under 18 or when the age is unknown."),
    field("Interests", interests, "Comma-separated, e.g. space, drawing"),
    field("Manner of speech", manner),
    field("Languages", languages, "The built-in offline model answers well only in English."),
    h("div", { class: "field inline" }, childSafe, h("label", { for: "p-childsafe" }, "Child-safe conversation")),
    h("p", { class: "hint", id: "p-childsafe-hint" },
      "Filters and fixed, kind scripts around a small model — not a substitute for a grown-up. On prompts written by people who never saw the filters it stopped 93–97 % of unsafe messages and wrongly refused 5–9 % of ordinary ones."),
    h("fieldset", {},
      h("legend", {}, "Consent (required)"),
      field("Who agrees to this avatar being made", givenBy),
      h("fieldset", { class: "plain", role: "radiogroup" },
        h("legend", {}, "On what basis"),
        h("div", { class: "field inline" }, basisSelf, h("label", { for: "c-self" }, "I am the person in the photo")),
        h("div", { class: "field inline" }, basisPermission, h("label", { for: "c-permission" }, "I have the person's (or their guardian's) permission"))),
      h("div", { class: "field inline" }, agree, h("label", { for: "c-agree" }, "I confirm this consent statement is true"))),
    errors, h("div", { class: "actions" }, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const problems: string[] = [];
    if (!name.value.trim()) problems.push("Give the avatar a name.");
    if (!givenBy.value.trim()) problems.push("Say who gives consent.");
    if (!agree.checked) problems.push("Confirm the consent statement.");
    // An emptied age field clears the age: PATCH leaves out what is not sent, so `null` is sent to clear it.
    const ageValue = age.value.trim() === "" ? (avatar?.age !== undefined && avatar?.age !== null ? null : undefined) : Number(age.value);
    if (typeof ageValue === "number" && (!Number.isInteger(ageValue) || ageValue < 0 || ageValue > 150)) problems.push("The age must be a whole number from 0 to 150.");
    else if (!childSafe.checked && (typeof ageValue !== "number" || ageValue < 18)) problems.push("Child-safe conversation must stay on for an age under 18 or an unknown age: tick it, or give an adult's age.");
    if (problems.length) {
      errors.replaceChildren(...problems.map((p) => h("p", { class: "error" }, p)));
      (problems[0].includes("name") ? name : problems[0].includes("consent") ? givenBy : problems[0].startsWith("Child-safe") ? childSafe : age).focus();
      return;
    }
    const input = {
      name: name.value.trim(), age: ageValue,
      interests: interests.value.split(",").map((s) => s.trim()).filter(Boolean),
      manner: manner.value.trim() || undefined, languages: languages.value.split(","), childSafe: childSafe.checked,
      consent: { givenBy: givenBy.value.trim(), basis: basisPermission.checked ? "permission" as const : "self" as const, grantedAt: avatar?.consent?.grantedAt ?? today },
    };
    submit.disabled = true;
    try {
      const saved = avatar ? await api.update(avatar.id, input) : await api.create(input);
      if (input.age === null && saved.age !== undefined && saved.age !== null) {
        // The server kept the age although `"age": null` was sent: say so instead of pretending it is gone.
        const onward = h("button", { type: "button", id: "persona-keep-age", class: "secondary", onclick: () => go(`#/setup/${saved.id}/1`) }, `Continue with the age ${saved.age}`);
        errors.replaceChildren(h("p", { class: "error", id: "age-not-cleared" },
          `The server kept the age (${saved.age}): this server version cannot clear an age once given. Enter the right age, or continue with it.`), onward);
        age.value = String(saved.age);
        submit.disabled = false;
        onward.focus();
        return;
      }
      go(`#/setup/${saved.id}/1`);
    } catch (error) {
      showProblem(errors, error);
      const fields: Record<string, HTMLElement> = { name, age, interests, manner, languages, givenBy };
      const target = error instanceof ApiError ? fields[(error.field ?? "").replace(/^consent\./, "").replace("givenBy", "givenBy")] : undefined;
      target?.setAttribute("aria-invalid", "true");
      target?.focus();
      submit.disabled = false;
    }
  });
  body.replaceChildren(form);
  name.focus();
}

/** The server's photo warnings in words a person understands (the original stays in the element's title). */
export function plainWarning(warning: string): string {
  let m: RegExpMatchArray | null;
  if ((m = warning.match(/^(\d+) faces detected/))) return `This photo shows ${m[1]} faces. The avatar uses the largest one (outlined below); for the best result, pick a photo of just this person.`;
  if (/found by scanning|very small in the image/.test(warning)) return "The face is small in this photo, so the avatar may look blurry or move oddly. A closer portrait (head and shoulders) works better.";
  if ((m = warning.match(/^The face is (\d+) px wide/))) return `The face is small (${m[1]} pixels wide). A photo where the face is at least 200 pixels wide animates more sharply.`;
  if (/touches the image border/.test(warning)) return "The face touches the edge of the photo, so part of it may be cut off. Pick a photo with some space around the head.";
  if (/head is turned/.test(warning)) return "The head is turned away from the camera. A photo looking straight into the camera animates better.";
  if (/face is dark/.test(warning)) return "The face is dark. A photo in brighter, even light looks better.";
  return warning;
}

function photo(body: HTMLElement, avatar: Avatar, go: (hash: string) => void): void {
  const file = h("input", { id: "photo-file", type: "file", accept: "image/jpeg,image/png,image/webp", "aria-describedby": "photo-help" });
  const drop = h("label", { class: "dropzone", for: "photo-file" }, "Drop a photo here, or choose one");
  const status = h("p", { id: "photo-status", role: "status", "aria-live": "polite" });
  const errors = alertBox();
  errors.id = "photo-errors";
  const original = h("canvas", { id: "photo-original", width: 320, height: 320, role: "img", "aria-label": "Your photo" });
  const aligned = h("img", { id: "photo-aligned", alt: "The aligned face crop the avatar will use", width: 256, height: 256 });
  const alignedWait = h("p", { id: "photo-aligned-wait", class: "muted", hidden: true }, "Looking for the face…");
  const warnings = h("ul", { id: "photo-warnings", class: "warnings", "aria-label": "Things to know about this photo" });
  const next = h("button", { type: "button", id: "photo-next", disabled: !avatar.photo }, "Continue");
  const originalCaption = h("figcaption", {}, "Your photo, with the face found");
  const alignedFigure = h("figure", { id: "photo-aligned-figure" }, aligned, alignedWait, h("figcaption", {}, "What the avatar will use"));
  const previews = h("div", { class: "previews", hidden: !avatar.photo },
    h("figure", {}, original, originalCaption), alignedFigure);
  body.replaceChildren(
    h("p", { id: "photo-help" }, "A clear, front-facing photo of one face, well lit, at least 200 pixels wide (JPEG, PNG or WebP, up to 20 MB)."),
    h("div", { class: "field" }, drop, file), status, errors, warnings, previews,
    h("div", { class: "actions" }, h("button", { type: "button", class: "secondary", onclick: () => go(`#/setup/${avatar.id}/0`) }, "Back"), next));

  let picture: HTMLImageElement | null = null;
  let pictureUrl: string | null = null;

  /** Draws the photo, letterboxed, with the face box when there is one. */
  function draw(box?: Box): void {
    const ctx = original.getContext("2d");
    if (!ctx || !picture) return;
    const scale = Math.min(original.width / picture.naturalWidth, original.height / picture.naturalHeight);
    ctx.clearRect(0, 0, original.width, original.height);
    ctx.drawImage(picture, 0, 0, picture.naturalWidth * scale, picture.naturalHeight * scale);
    if (!box) return;
    ctx.lineWidth = 3;
    ctx.strokeStyle = "#000000";
    ctx.strokeRect(box.x * scale - 1, box.y * scale - 1, box.width * scale + 2, box.height * scale + 2);
    ctx.strokeStyle = "#19c37d";
    ctx.strokeRect(box.x * scale, box.y * scale, box.width * scale, box.height * scale);
  }

  function load(src: string): Promise<boolean> {
    return new Promise((resolve) => {
      const image = new Image();
      image.onload = () => {
        picture = image;
        resolve(true);
      };
      image.onerror = () => resolve(false);
      image.src = src;
    });
  }

  /** The picked photo at once, before the server has looked at it. */
  async function showLocal(blob: File): Promise<void> {
    if (pictureUrl) URL.revokeObjectURL(pictureUrl);
    pictureUrl = URL.createObjectURL(blob);
    warnings.replaceChildren();
    aligned.hidden = true;
    alignedWait.hidden = false;
    alignedWait.textContent = "Looking for the face…";
    previews.hidden = false;
    const shown = await load(pictureUrl);
    if (!shown) {
      // Not an image the browser can show; the server's answer says what is wrong with it.
      original.dataset.shown = "none";
      return;
    }
    draw();
    original.dataset.shown = "local";
    original.dataset.localAt = String(Math.round(performance.now()));
    original.setAttribute("aria-label", `Your photo ${blob.name}, waiting for the face to be found`);
    originalCaption.textContent = "Your photo (looking for the face…)";
  }

  async function showResult(result: { url: string; previewUrl: string; faceBox: Box; warnings: string[]; faces?: number }, name: string, local: boolean): Promise<void> {
    previews.hidden = false;
    aligned.hidden = false;
    alignedWait.hidden = true;
    aligned.src = `${result.previewUrl}?t=${Date.now()}`;
    warnings.replaceChildren(...result.warnings.map((w) => h("li", { class: "warning", title: w }, plainWarning(w))));
    if (!local || !picture) await load(result.url);
    draw(result.faceBox);
    original.dataset.shown = "face";
    original.dataset.faceFor = name;
    original.dataset.faceAt = String(Math.round(performance.now()));
    original.setAttribute("aria-label", `Your photo, with the face the avatar will use outlined${result.faces && result.faces > 1 ? ` (the largest of ${result.faces} faces)` : ""}`);
    originalCaption.textContent = "Your photo, with the face found";
  }
  if (avatar.photo) void showResult(avatar.photo, "", false);

  async function upload(blob: File): Promise<void> {
    errors.replaceChildren();
    status.textContent = `Uploading ${blob.name} and looking for the face…`;
    next.disabled = true;
    original.dataset.shown = "";
    const local = showLocal(blob);
    try {
      const result: PhotoResult = await api.photo(avatar.id, blob, blob.name);
      await local;
      status.textContent = result.warnings.length ? "The face was found, with things you may want to fix:" : "The face was found. This photo works well.";
      await showResult(result, blob.name, true);
      avatar.photo = result;
      next.disabled = false;
    } catch (error) {
      await local;
      status.textContent = avatar.photo ? "This photo cannot be used; the earlier photo is still the avatar's." : "";
      alignedWait.textContent = "No crop: the photo was not accepted.";
      showProblem(errors, error);
      next.disabled = !avatar.photo;
    }
  }
  file.addEventListener("change", () => {
    const chosen = file.files?.[0];
    if (chosen) void upload(chosen);
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const chosen = event.dataTransfer?.files?.[0];
    if (chosen) void upload(chosen);
  });
  next.addEventListener("click", () => go(`#/setup/${avatar.id}/2`));
}

function voice(body: HTMLElement, avatar: Avatar, go: (hash: string) => void): void {
  const file = h("input", { id: "voice-file", type: "file", accept: "audio/*", multiple: true, "aria-describedby": "voice-help" });
  const status = h("p", { id: "voice-status", role: "status", "aria-live": "polite" });
  const errors = alertBox();
  errors.id = "voice-errors";
  const reports = h("ul", { id: "voice-reports", class: "reports" });
  const profile = h("p", { id: "voice-profile", class: "note" });
  const record = h("button", { type: "button", id: "voice-record", class: "secondary", "aria-pressed": "false" }, "● Record a sample");
  const recordTime = h("span", { id: "voice-record-time", class: "muted", "aria-live": "polite" });
  body.replaceChildren(
    h("p", { id: "voice-help" }, "Optional. Upload a few recordings of the person speaking (any common audio format, 10 s to a few minutes each, a quiet room). Offline, Avatar makes an approximate voice match — a base voice moved toward these samples — not a clone."),
    h("div", { class: "field" }, h("label", { for: "voice-file" }, "Voice samples"), file),
    h("div", { class: "actions" }, record, recordTime), status, errors, reports, profile,
    h("div", { class: "actions" },
      h("button", { type: "button", class: "secondary", onclick: () => go(`#/setup/${avatar.id}/1`) }, "Back"),
      h("button", { type: "button", id: "voice-next", onclick: () => go(`#/setup/${avatar.id}/3`) }, "Continue")));

  function report(sample: { originalName?: string; seconds: number; verdict: string; problems: { message: string }[]; conversions: string[]; notes: string[] }): HTMLElement {
    return h("li", { class: `report ${sample.verdict}` },
      h("strong", {}, `${sample.originalName ?? "sample"} — ${sample.seconds.toFixed(1)} s — ${sample.verdict}`),
      ...sample.problems.map((p) => h("p", { class: "warning" }, p.message)),
      ...sample.conversions.map((c) => h("p", { class: "muted" }, c)),
      ...sample.notes.map((n) => h("p", { class: "muted" }, n)));
  }
  void api.voice(avatar.id).then((existing) => {
    reports.replaceChildren(...existing.samples.map(report));
    if (existing.profile) profile.textContent = `Voice: ${existing.profile.label}`;
  }).catch(() => undefined);

  async function send(blob: Blob, name: string): Promise<void> {
    status.textContent = `Checking ${name}… (the voice match is rebuilt; this takes a few seconds)`;
    try {
      const result = await api.voiceSample(avatar.id, blob, name);
      reports.append(report(result.sample));
      profile.textContent = result.profile ? `Voice: ${result.profile.label}` : result.profileStatus ?? "";
      status.textContent = `${name} checked.`;
    } catch (error) {
      status.textContent = "";
      showProblem(errors, error);
    }
  }
  file.addEventListener("change", async () => {
    for (const chosen of Array.from(file.files ?? [])) await send(chosen, chosen.name);
  });

  // Recording in the browser: MediaRecorder (WebM/Opus in Chromium); the server converts it with ffmpeg.
  let recorder: MediaRecorder | null = null;
  let timer: number | undefined;
  record.addEventListener("click", async () => {
    if (recorder) {
      recorder.stop();
      return;
    }
    errors.replaceChildren();
    let stream: MediaStream;
    try {
      stream = await openMicrophone({ echoCancellation: false, noiseSuppression: false, autoGainControl: true, channelCount: 1 });
    } catch (error) {
      errors.replaceChildren(h("p", { class: "error" }, error instanceof MicError ? error.message : micAdvice("other")));
      return;
    }
    const chunks: Blob[] = [];
    const started = performance.now();
    recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (event) => chunks.push(event.data);
    recorder.onstop = () => {
      window.clearInterval(timer);
      for (const track of stream.getTracks()) track.stop();
      const type = recorder?.mimeType || "audio/webm";
      recorder = null;
      record.textContent = "● Record a sample";
      record.setAttribute("aria-pressed", "false");
      recordTime.textContent = "";
      const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
      // The server's ffprobe finds no audio stream in Chromium's MediaRecorder WebM (seen 2026-12-02): decode it
      // here and upload a plain 16-bit mono WAV instead.
      void toWav(new Blob(chunks, { type }))
        .then((wav) => send(wav, `recording-${stamp}.wav`))
        .catch((error) => showProblem(errors, `The recording could not be decoded (${String(error)}). Upload a file instead.`));
    };
    recorder.start(1000);
    record.textContent = "■ Stop recording";
    record.setAttribute("aria-pressed", "true");
    timer = window.setInterval(() => {
      recordTime.textContent = `Recording… ${Math.round((performance.now() - started) / 1000)} s (read a few sentences aloud; 10 s or more)`;
    }, 500);
  });
}

const GREETING = "Hello! Please greet me in one short sentence.";

/** The system test: each engine's state, then a real session — the avatar greets (face + voice), the person speaks
 * and sees the transcript, and the latency of each turn with its stages. */
function finish(body: HTMLElement, avatar: Avatar, go: (hash: string) => void): WizardHandle {
  const engines = new EnginePanel("engines", 5000);
  const canvas = h("canvas", { id: "test-canvas", width: 256, height: 256, role: "img", "aria-label": `${avatar.name}, the live avatar in the system test` });
  const connection = h("span", { id: "test-connection", class: "pill", "data-state": "connecting", role: "status" }, "Connecting…");
  const stateLabel = h("span", { id: "test-state", class: "pill", "data-state": "idle" }, "Not started");
  const greet = h("button", { type: "button", id: "test-greeting", disabled: true }, "▶ Hear a greeting");
  const mic = h("button", { type: "button", id: "test-mic", class: "secondary", "aria-pressed": "false", disabled: true }, "🎤 Say something");
  const level = h("meter", { id: "test-level", min: 0, max: 1, low: 0.02, value: 0, "aria-label": "Microphone level" });
  const heard = h("p", { id: "test-transcript", "aria-live": "polite" });
  const said = h("p", { id: "test-reply", "aria-live": "polite" });
  const latency = h("p", { id: "test-latency", class: "latency" });
  const problems = h("div", { id: "test-errors", class: "errors", role: "alert" });
  body.replaceChildren(
    h("p", {}, `Check that ${avatar.name} works here before the conversation: hear a greeting (face and voice), then say something and read what the server heard.`),
    h("h2", { id: "engines-title" }, "Engines on this server"), engines.summary, engines.list,
    h("h2", {}, "Try it"),
    h("div", { class: "system-test" },
      h("div", { class: "canvas-wrap small" }, canvas),
      h("div", {},
        h("div", { class: "stage-bar" }, connection, stateLabel),
        h("div", { class: "actions" }, greet, mic, level),
        heard, said, latency, problems)),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "secondary", onclick: () => go(`#/setup/${avatar.id}/2`) }, "Back"),
      h("button", { type: "button", id: "start-chat", onclick: () => go(`#/chat/${avatar.id}`) }, `Talk to ${avatar.name}`)));

  const preview = new Image();
  preview.onload = () => canvas.getContext("2d")?.drawImage(preview, 0, 0, canvas.width, canvas.height);
  if (avatar.photo?.previewUrl) preview.src = avatar.photo.previewUrl;

  const player = new Player(canvas, {
    onStarted: (turn, playedMs) => transport.send({ type: "playback", turn, event: "started", played_ms: playedMs }, false),
    onProgress: (turn, playedMs) => transport.send({ type: "playback", turn, event: "progress", played_ms: playedMs }, false),
    onEnded: (turn, playedMs) => transport.send({ type: "playback", turn, event: "ended", played_ms: playedMs }, false),
  });
  let listening = false;
  const recorder = new Recorder(player.context, (pcm, rms) => {
    level.value = Math.min(1, rms * 4);
    if (listening) transport.sendMic(pcm);
  });
  function stopMic(): void {
    listening = false;
    recorder.stop();
    level.value = 0;
    mic.setAttribute("aria-pressed", "false");
    mic.textContent = "🎤 Say something";
  }
  const transport = new Transport({ avatar: avatar.id, language: "auto" }, {
    onConnection(state, detail) {
      connection.dataset.state = state;
      connection.textContent = detail;
      greet.disabled = mic.disabled = state !== "open";
    },
    onReady() { /* the buttons are enabled by onConnection */ },
    onMessage(message: ServerMessage) {
      switch (message.type) {
        case "state":
          stateLabel.dataset.state = message.state;
          stateLabel.textContent = { idle: "Ready", listening: "Listening…", thinking: "Thinking…", speaking: "Speaking" }[message.state];
          break;
        case "transcript":
          heard.textContent = message.kind === "partial" ? (message.text ? `Hearing: “${message.text}”` : "") : `The server heard: “${message.text}”`;
          if (message.kind === "final") {
            heard.dataset.final = "true";
            stopMic(); // one utterance is the test; the avatar answers it
          }
          break;
        case "reply":
          if (message.done) {
            said.textContent = `${avatar.name}: ${message.text}`;
            player.markDone(message.turn);
          } else if (!said.dataset.turn || said.dataset.turn !== String(message.turn)) {
            said.dataset.turn = String(message.turn);
            said.textContent = `${avatar.name}: ${message.delta}`;
          } else said.textContent = (said.textContent ?? "") + message.delta;
          break;
        case "interrupted":
          player.flush(message.turn);
          break;
        case "turn_end": {
          player.markDone(message.turn);
          const chip = latencyChip(message.timings);
          if (chip) {
            latency.replaceChildren("Latency of this turn (end of speech or message → first frame shown): ", chip);
            latency.dataset.ms = chip.dataset.ms;
          }
          void engines.refresh();
          break;
        }
        case "error":
          problems.append(h("p", { class: "error" }, `${message.message}${message.fix ? ` What to do: ${message.fix}` : ""}`));
          void engines.refresh();
          break;
        default:
          break;
      }
    },
    onMedia(header, payload) {
      if (header.kind === MediaKind.AvatarAudio) player.audio(header, payload);
      else if (header.kind === MediaKind.VideoFrame) player.video(header, payload);
    },
    onFatal(reason) {
      problems.replaceChildren(h("p", { class: "error" }, `The live test cannot start: ${reason}`));
      greet.disabled = mic.disabled = true;
    },
  });
  greet.addEventListener("click", () => {
    player.unlock();
    said.textContent = "";
    delete said.dataset.turn;
    transport.send({ type: "text", text: GREETING });
  });
  mic.addEventListener("click", async () => {
    player.unlock();
    if (listening) {
      stopMic();
      return;
    }
    problems.replaceChildren();
    try {
      await recorder.start();
    } catch (error) {
      problems.replaceChildren(h("p", { class: "error", id: "test-mic-message" }, error instanceof MicError ? error.message : micAdvice("other")));
      return;
    }
    listening = true;
    heard.textContent = "Listening — say a short sentence.";
    delete heard.dataset.final;
    mic.setAttribute("aria-pressed", "true");
    mic.textContent = "🎤 Listening — press to stop";
  });
  transport.connect();
  return {
    dispose() {
      transport.close();
      engines.dispose();
      recorder.stop();
      void player.context.close();
    },
  };
}

/** A recorded blob (WebM/Opus) → 16-bit mono WAV at its own sample rate. */
async function toWav(blob: Blob): Promise<Blob> {
  const context = new OfflineAudioContext(1, 1, 48000);
  const audio = await context.decodeAudioData(await blob.arrayBuffer());
  const length = audio.length;
  const mono = new Float32Array(length);
  for (let c = 0; c < audio.numberOfChannels; c++) {
    const data = audio.getChannelData(c);
    for (let i = 0; i < length; i++) mono[i] += data[i] / audio.numberOfChannels;
  }
  const out = new DataView(new ArrayBuffer(44 + length * 2));
  const text = (at: number, value: string) => { for (let i = 0; i < value.length; i++) out.setUint8(at + i, value.charCodeAt(i)); };
  text(0, "RIFF"); out.setUint32(4, 36 + length * 2, true); text(8, "WAVE");
  text(12, "fmt "); out.setUint32(16, 16, true); out.setUint16(20, 1, true); out.setUint16(22, 1, true);
  out.setUint32(24, audio.sampleRate, true); out.setUint32(28, audio.sampleRate * 2, true); out.setUint16(32, 2, true); out.setUint16(34, 16, true);
  text(36, "data"); out.setUint32(40, length * 2, true);
  for (let i = 0; i < length; i++) out.setInt16(44 + i * 2, Math.round(Math.max(-1, Math.min(1, mono[i])) * 32767), true);
  return new Blob([out.buffer], { type: "audio/wav" });
}
