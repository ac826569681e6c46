// AudioWorklet: the microphone at the context's rate → 16 kHz mono PCM16 frames of 40 ms, plus a level (RMS).
// Bundled on its own into Public/recorder-worklet.js.

declare const sampleRate: number;
declare function registerProcessor(name: string, processor: unknown): void;
declare class AudioWorkletProcessor {
  readonly port: MessagePort;
  constructor();
}

const TARGET_RATE = 16000;
const FRAME = 640; // 40 ms at 16 kHz

class MicProcessor extends AudioWorkletProcessor {
  private readonly step = sampleRate / TARGET_RATE;
  private phase = 0;
  private acc = 0;
  private accCount = 0;
  private out = new Int16Array(FRAME);
  private filled = 0;
  private sumSquares = 0;

  process(inputs: Float32Array[][]): boolean {
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    const channels = input.length;
    const length = input[0].length;
    for (let i = 0; i < length; i++) {
      let sample = 0;
      for (let c = 0; c < channels; c++) sample += input[c][i];
      sample /= channels;
      // Box-filter decimation: average the input samples that fall into each output sample.
      this.acc += sample;
      this.accCount++;
      this.phase += 1;
      if (this.phase >= this.step) {
        this.phase -= this.step;
        const value = Math.max(-1, Math.min(1, this.acc / this.accCount));
        this.acc = 0;
        this.accCount = 0;
        this.out[this.filled++] = Math.round(value * 32767);
        this.sumSquares += value * value;
        if (this.filled === FRAME) {
          const rms = Math.sqrt(this.sumSquares / FRAME);
          this.port.postMessage({ pcm: this.out, rms }, [this.out.buffer]);
          this.out = new Int16Array(FRAME);
          this.filled = 0;
          this.sumSquares = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("avatar-mic", MicProcessor);

export {};
