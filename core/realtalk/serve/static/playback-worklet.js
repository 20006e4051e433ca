// The speaker side of the console: an AudioWorklet that plays the assistant's audio
// (PCM16 LE mono 24 kHz frames, resampled to the AudioContext's rate) and says how much
// of it was actually rendered, so the server can cut a reply at what the user heard.
//
// Messages from the page:
//   {type: "audio", epoch: N, pcm: ArrayBuffer}  queue a frame of epoch N (stale epochs
//                                                  are dropped)
//   {type: "clear", epoch: N}                      drop the queue at once, start epoch N
// Messages to the page:
//   {type: "played", epoch: N, samples: M}  24 kHz samples rendered since epoch N began,
//       every ~20 ms while playing and once when the queue runs dry
//   {type: "overflow", epoch: N, samples: M}  a frame did not fit in the bounded queue
//       (about 87 s of audio) and was dropped
//
// A stream starts once 120 ms are queued (or 120 ms after its first frame), so audio
// that arrives at real-time pace plays without gaps.

import { Resampler, pcm16ToFloat } from "./resample.js";

const RATE = 24000;
const CAPACITY = 1 << 21; // 24 kHz samples the queue holds at most (~87 s)
const PREBUFFER = Math.round(RATE * 0.12);

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.resampler = new Resampler(RATE, sampleRate, CAPACITY);
    this.epoch = 0;
    this.playing = false;
    this.waited = 0; // output frames since the first frame of a stream arrived, before it starts
    this.reported = 0; // the samples of the latest report
    this.sinceReport = 0; // output frames rendered since the latest report
    this.interval = Math.round(sampleRate * 0.02);
    this.port.onmessage = (event) => this.onMessage(event.data);
  }

  onMessage(message) {
    if (message.type === "audio") {
      if (message.epoch !== this.epoch) return; // sent before a clear we have seen
      const samples = pcm16ToFloat(message.pcm);
      if (!this.resampler.push(samples)) {
        this.port.postMessage({ type: "overflow", epoch: this.epoch, samples: samples.length });
      }
    } else if (message.type === "clear") {
      this.epoch = message.epoch;
      this.resampler.reset();
      this.playing = false;
      this.waited = 0;
      this.reported = 0;
      this.sinceReport = 0;
    }
  }

  // 24 kHz samples rendered since the epoch began: those whose time has passed.
  get played() {
    return Math.min(this.resampler.end, Math.ceil(this.resampler.time));
  }

  report() {
    const samples = this.played;
    this.reported = samples;
    this.sinceReport = 0;
    this.port.postMessage({ type: "played", epoch: this.epoch, samples });
  }

  process(inputs, outputs) {
    const output = outputs[0];
    const out = output[0];
    const r = this.resampler;
    if (!this.playing && r.pending()) {
      const queued = r.end - this.played;
      this.waited += out.length;
      if (queued >= PREBUFFER || this.waited >= sampleRate * 0.12) {
        this.playing = true;
        this.waited = 0;
      }
    }
    if (this.playing) {
      let i = 0;
      // What the queue has; missing look-ahead at its end counts as silence.
      for (; i < out.length && r.pending(); i++) out[i] = r.next();
      this.sinceReport += i;
      if (!r.pending()) {
        this.playing = false; // ran dry: say so at once
        this.report();
      } else if (this.sinceReport >= this.interval) {
        this.report();
      }
    }
    for (let c = 1; c < output.length; c++) output[c].set(out);
    return true;
  }
}

registerProcessor("realtalk-playback", PlaybackProcessor);
