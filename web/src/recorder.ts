// The microphone: getUserMedia (echo cancellation, noise suppression, AGC on) → AudioWorklet → 16 kHz PCM16 frames.
export type MicProblem = "insecure" | "unsupported" | "denied" | "no-device" | "busy" | "other";

export class MicError extends Error {
  constructor(readonly problem: MicProblem, message: string) {
    super(message);
  }
}

/** What to tell a person for each way the microphone can fail. */
export function micAdvice(problem: MicProblem): string {
  switch (problem) {
    case "insecure": {
      const port = location.port ? `:${location.port}` : "";
      return `The microphone works only on a secure page, and ${location.origin} is not one (browsers allow it on HTTPS, localhost and 127.0.0.1). ` +
        `To fix it: on the computer that runs the server, open http://localhost${port} or http://127.0.0.1${port}; from another device, put HTTPS in front of the server ` +
        `(or, for a test, add ${location.origin} to chrome://flags/#unsafely-treat-insecure-origin-as-secure). You can still type.`;
    }
    case "unsupported":
      return "This browser cannot record audio here (no getUserMedia or AudioWorklet). Use a current Chromium, Firefox or Safari, or type instead.";
    case "denied":
      return "Microphone access was refused. Allow it in the browser's site settings (the lock or camera icon next to the address), then press the microphone button again. You can still type.";
    case "no-device":
      return "No microphone was found. Plug one in (or enable it in the system settings) and press the microphone button again. You can still type.";
    case "busy":
      return "The microphone is in use by another program or could not be started. Close that program and try again.";
    default:
      return "The microphone could not be started. Try again, or type instead.";
  }
}

/** getUserMedia with every failure turned into a MicError that says what to do. */
export async function openMicrophone(audio: MediaTrackConstraints): Promise<MediaStream> {
  if (!window.isSecureContext) throw new MicError("insecure", micAdvice("insecure"));
  if (!navigator.mediaDevices?.getUserMedia) throw new MicError("unsupported", micAdvice("unsupported"));
  try {
    return await navigator.mediaDevices.getUserMedia({ audio });
  } catch (error) {
    const name = error instanceof DOMException ? error.name : "";
    if (name === "NotAllowedError" || name === "SecurityError") throw new MicError("denied", micAdvice("denied"));
    if (name === "NotFoundError" || name === "OverconstrainedError") throw new MicError("no-device", micAdvice("no-device"));
    if (name === "NotReadableError" || name === "AbortError") throw new MicError("busy", micAdvice("busy"));
    throw new MicError("other", `${micAdvice("other")} (${String(error)})`);
  }
}

export class Recorder {
  private stream: MediaStream | null = null;
  private node: AudioWorkletNode | null = null;
  private source: MediaStreamAudioSourceNode | null = null;
  private loaded = false;

  constructor(private readonly context: AudioContext, private readonly onFrame: (pcm: Int16Array, rms: number) => void) {}

  get active(): boolean {
    return this.stream !== null;
  }

  async start(): Promise<void> {
    // An insecure page has no AudioWorklet either: say what is really wrong (the origin), not "unsupported".
    if (!window.isSecureContext) throw new MicError("insecure", micAdvice("insecure"));
    if (!this.context.audioWorklet) throw new MicError("unsupported", micAdvice("unsupported"));
    const stream = await openMicrophone({ echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 });
    if (!this.loaded) {
      await this.context.audioWorklet.addModule("recorder-worklet.js");
      this.loaded = true;
    }
    if (this.context.state === "suspended") await this.context.resume();
    const node = new AudioWorkletNode(this.context, "avatar-mic", { numberOfInputs: 1, numberOfOutputs: 0 });
    node.port.onmessage = (event: MessageEvent<{ pcm: Int16Array; rms: number }>) => this.onFrame(event.data.pcm, event.data.rms);
    const source = this.context.createMediaStreamSource(stream);
    source.connect(node);
    this.stream = stream;
    this.node = node;
    this.source = source;
  }

  stop(): void {
    this.source?.disconnect();
    this.node?.port.close();
    this.node?.disconnect();
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.stream = null;
    this.node = null;
    this.source = null;
  }
}
