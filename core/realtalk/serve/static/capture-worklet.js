// The microphone side of the console: an AudioWorklet that turns the microphone (at the
// AudioContext's rate) into PCM16 little-endian mono 24 kHz frames of 20 ms (480 samples,
// 960 bytes), the binary frames of the realtalk.v1 protocol.
//
// Messages from the page: {type: "inject", samples: Float32Array} adds samples (at the
// context rate) to the microphone signal, one render quantum at a time, as if they had
// been spoken; the test hook uses it to speak while the assistant plays. The injected
// queue is bounded (10 s); what does not fit is refused with {type: "inject-full"}.
// Messages to the page: {type: "frame", pcm: ArrayBuffer, level: rms 0..1}.

import { Resampler, floatToPcm16 } from "./resample.js";

const RATE = 24000;
const FRAME = 480; // 20 ms at 24 kHz

class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    // sampleRate: the AudioContext's rate, a global of the worklet scope.
    this.resampler = new Resampler(sampleRate, RATE, 8192);
    this.frame = new DataView(new ArrayBuffer(2 * FRAME));
    this.filled = 0;
    this.energy = 0;
    this.injected = []; // Float32Arrays at the context rate, played in order
    this.injectedOffset = 0;
    this.injectedLength = 0;
    this.injectedMax = Math.round(sampleRate * 10);
    this.port.onmessage = (event) => this.onMessage(event.data);
  }

  onMessage(message) {
    if (message.type === "inject") {
      if (this.injectedLength + message.samples.length > this.injectedMax) {
        this.port.postMessage({ type: "inject-full" });
        return;
      }
      this.injected.push(message.samples);
      this.injectedLength += message.samples.length;
    }
  }

  // Mix queued injected samples into `block` (the mono microphone block).
  mixInjected(block) {
    let i = 0;
    while (i < block.length && this.injected.length) {
      const head = this.injected[0];
      const take = Math.min(block.length - i, head.length - this.injectedOffset);
      for (let j = 0; j < take; j++) block[i + j] += head[this.injectedOffset + j];
      i += take;
      this.injectedOffset += take;
      this.injectedLength -= take;
      if (this.injectedOffset === head.length) {
        this.injected.shift();
        this.injectedOffset = 0;
      }
    }
  }

  process(inputs) {
    const input = inputs[0];
    const size = input && input.length ? input[0].length : 128;
    const block = new Float32Array(size);
    if (input && input.length) {
      // Mono: the mean of the channels (a microphone is usually one already).
      for (let c = 0; c < input.length; c++) {
        const channel = input[c];
        for (let i = 0; i < size; i++) block[i] += channel[i] / input.length;
      }
    }
    if (this.injected.length) this.mixInjected(block);
    this.resampler.push(block);
    while (this.resampler.ready()) {
      const value = this.resampler.next();
      this.energy += value * value;
      this.frame.setInt16(2 * this.filled++, floatToPcm16(value), true);
      if (this.filled === FRAME) {
        const pcm = this.frame.buffer;
        this.port.postMessage({ type: "frame", pcm, level: Math.sqrt(this.energy / FRAME) }, [pcm]);
        this.frame = new DataView(new ArrayBuffer(2 * FRAME));
        this.filled = 0;
        this.energy = 0;
      }
    }
    return true; // keep running while the node is connected
  }
}

registerProcessor("realtalk-capture", CaptureProcessor);
