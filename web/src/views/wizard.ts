// SetupWizard: persona + consent (creates the avatar: the server keeps the draft), photo, voice samples, then talk.
import { h } from "../dom.js";
import { api, ApiError, Avatar, PhotoResult } from "../api.js";
import { MicError, micAdvice, openMicrophone } from "../recorder.js";

const STEPS = ["Persona & consent", "Photo", "Voice", "Talk"] as const;

export function renderWizard(root: HTMLElement, avatar: Avatar | null, step: number, go: (hash: string) => void): void {
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
  else if (avatar) finish(body, avatar, go);
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
  const childSafe = h("input", { id: "p-childsafe", name: "childSafe", type: "checkbox", checked: avatar ? avatar.childSafe : true });
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
    const ageValue = age.value.trim() === "" ? undefined : Number(age.value);
    if (ageValue !== undefined && (!Number.isInteger(ageValue) || ageValue < 0 || ageValue > 150)) problems.push("The age must be a whole number from 0 to 150.");
    if (problems.length) {
      errors.replaceChildren(...problems.map((p) => h("p", { class: "error" }, p)));
      (problems[0].includes("name") ? name : problems[0].includes("consent") ? givenBy : age).focus();
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

function photo(body: HTMLElement, avatar: Avatar, go: (hash: string) => void): void {
  const file = h("input", { id: "photo-file", type: "file", accept: "image/jpeg,image/png,image/webp", "aria-describedby": "photo-help" });
  const drop = h("label", { class: "dropzone", for: "photo-file" }, "Drop a photo here, or choose one");
  const status = h("p", { id: "photo-status", role: "status", "aria-live": "polite" });
  const errors = alertBox();
  errors.id = "photo-errors";
  const original = h("canvas", { id: "photo-original", width: 320, height: 320, role: "img", "aria-label": "Your photo with the detected face box" });
  const aligned = h("img", { id: "photo-aligned", alt: "The aligned face crop the avatar will use", width: 256, height: 256 });
  const warnings = h("ul", { id: "photo-warnings", class: "warnings" });
  const next = h("button", { type: "button", id: "photo-next", disabled: !avatar.photo }, "Continue");
  const previews = h("div", { class: "previews", hidden: !avatar.photo },
    h("figure", {}, original, h("figcaption", {}, "Your photo, with the face found")),
    h("figure", {}, aligned, h("figcaption", {}, "What the avatar will use")));
  body.replaceChildren(
    h("p", { id: "photo-help" }, "A clear, front-facing photo of one face, well lit, at least 200 pixels wide (JPEG, PNG or WebP, up to 20 MB)."),
    h("div", { class: "field" }, drop, file), status, errors, warnings, previews,
    h("div", { class: "actions" }, h("button", { type: "button", class: "secondary", onclick: () => go(`#/setup/${avatar.id}/0`) }, "Back"), next));

  function show(result: { url: string; previewUrl: string; faceBox: { x: number; y: number; width: number; height: number }; warnings: string[] }, local?: Blob): void {
    previews.hidden = false;
    aligned.src = `${result.previewUrl}?t=${Date.now()}`;
    warnings.replaceChildren(...result.warnings.map((w) => h("li", {}, w)));
    const image = new Image();
    image.onload = () => {
      const ctx = original.getContext("2d");
      if (!ctx) return;
      const scale = Math.min(original.width / image.naturalWidth, original.height / image.naturalHeight);
      const w = image.naturalWidth * scale;
      const hgt = image.naturalHeight * scale;
      ctx.clearRect(0, 0, original.width, original.height);
      ctx.drawImage(image, 0, 0, w, hgt);
      ctx.strokeStyle = "#19c37d";
      ctx.lineWidth = 3;
      ctx.strokeRect(result.faceBox.x * scale, result.faceBox.y * scale, result.faceBox.width * scale, result.faceBox.height * scale);
    };
    image.src = local ? URL.createObjectURL(local) : result.url;
  }
  if (avatar.photo) show(avatar.photo);

  async function upload(blob: File): Promise<void> {
    errors.replaceChildren();
    status.textContent = `Uploading ${blob.name} and looking for the face…`;
    next.disabled = true;
    try {
      const result: PhotoResult = await api.photo(avatar.id, blob, blob.name);
      status.textContent = result.warnings.length ? "The face was found, with things you may want to fix:" : "The face was found. This photo works well.";
      show(result, blob);
      next.disabled = false;
    } catch (error) {
      status.textContent = "";
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

function finish(body: HTMLElement, avatar: Avatar, go: (hash: string) => void): void {
  const engines = h("ul", { id: "engines", class: "reports" });
  body.replaceChildren(
    h("p", {}, `${avatar.name} is ready. The conversation starts with the avatar on screen: type, or press the microphone button and speak.`),
    h("h2", {}, "Engines on this server"), engines,
    h("div", { class: "actions" },
      h("button", { type: "button", class: "secondary", onclick: () => go(`#/setup/${avatar.id}/2`) }, "Back"),
      h("button", { type: "button", id: "start-chat", onclick: () => go(`#/chat/${avatar.id}`) }, `Talk to ${avatar.name}`)));
  void api.readiness().then((report) => {
    engines.replaceChildren(...report.components.map((c) => h("li", { class: `engine ${c.state}` }, `${c.name}: ${c.state}${c.reason ? ` — ${c.reason}` : ""}`)));
  }).catch((error) => engines.replaceChildren(h("li", { class: "error" }, String(error))));
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
