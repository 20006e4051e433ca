// A streaming windowed-sinc resampler, shared by the capture and playback worklets.
//
// The input is one stream of mono float samples (indices 0, 1, 2, ... since the stream
// began). Output sample m sits at input time t = m * inRate / outRate and is the
// Blackman-windowed sinc interpolation of the input around t, low-passed below the
// lower Nyquist frequency (an anti-aliasing filter when downsampling, an anti-imaging
// filter when upsampling). The kernel is tabulated once; each output costs 2*W taps.
//
// The input lives in a ring buffer of fixed capacity: push() refuses what does not fit,
// so whoever feeds it decides what to do with too much audio (the queue is bounded).

const PHASES = 128; // kernel table entries per input sample
const ZEROS = 8; // zero crossings of the sinc kept on each side

export class Resampler {
  constructor(inRate, outRate, capacity) {
    this.inRate = inRate;
    this.outRate = outRate;
    this.step = inRate / outRate; // input samples per output sample
    this.passthrough = inRate === outRate;
    // Cutoff as a fraction of the input Nyquist frequency, a little below the lower one.
    const cutoff = Math.min(1, outRate / inRate) * 0.92;
    this.width = Math.ceil(ZEROS / cutoff); // W: input samples on each side of t
    const size = 2 * this.width * PHASES + 2;
    this.kernel = new Float32Array(size);
    for (let i = 0; i < size; i++) {
      const d = i / PHASES - this.width; // distance in input samples
      const x = d / this.width;
      if (Math.abs(x) > 1) continue;
      const window = 0.42 + 0.5 * Math.cos(Math.PI * x) + 0.08 * Math.cos(2 * Math.PI * x);
      const arg = Math.PI * cutoff * d;
      const sinc = d === 0 ? 1 : Math.sin(arg) / arg;
      this.kernel[i] = cutoff * sinc * window;
    }
    this.capacity = capacity;
    this.ring = new Float32Array(capacity);
    this.reset();
  }

  // Forget everything: a new stream starts at index 0.
  reset() {
    this.end = 0; // input samples pushed (the next index)
    this.produced = 0; // output samples made; the next one sits at produced * step
  }

  // The input time of the next output sample.
  get time() {
    return this.produced * this.step;
  }

  // Input samples still needed by the filter or not yet reached: what the ring holds.
  get held() {
    return this.end - Math.max(0, Math.floor(this.time) - this.width);
  }

  // Append input samples; false (and nothing appended) when they do not fit.
  push(samples) {
    if (this.held + samples.length > this.capacity) return false;
    const cap = this.capacity;
    let at = this.end % cap;
    for (let i = 0; i < samples.length; i++) {
      this.ring[at] = samples[i];
      at = at + 1 === cap ? 0 : at + 1;
    }
    this.end += samples.length;
    return true;
  }

  // Input sample k (0 outside what was pushed: before the stream or not yet there).
  sample(k) {
    if (k < 0 || k >= this.end) return 0;
    return this.ring[k % this.capacity];
  }

  // Whether the next output has all the input it needs (no look-ahead past the end).
  ready() {
    if (this.passthrough) return this.time < this.end;
    return Math.floor(this.time) + this.width < this.end;
  }

  // Whether the next output sits before the end of the input (the missing look-ahead,
  // if any, counts as silence: used to play the tail of a stream that has run dry).
  pending() {
    return this.time < this.end;
  }

  // The next output sample; advances the output clock.
  next() {
    const t = this.time;
    this.produced++;
    if (this.passthrough) return this.sample(t);
    const base = Math.floor(t);
    const w = this.width;
    let acc = 0;
    let norm = 0;
    for (let k = base - w + 1; k <= base + w; k++) {
      const pos = (t - k + w) * PHASES;
      const i = Math.floor(pos);
      const f = pos - i;
      const h = this.kernel[i] + f * (this.kernel[i + 1] - this.kernel[i]);
      acc += h * this.sample(k);
      norm += h;
    }
    // Normalised per phase, so a constant input comes out unchanged (no ripple at DC).
    return norm > 0 ? acc / norm : 0;
  }
}

// PCM16 little-endian bytes -> float samples in -1..1.
export function pcm16ToFloat(buffer) {
  const view = new DataView(buffer);
  const out = new Float32Array(buffer.byteLength >> 1);
  for (let i = 0; i < out.length; i++) out[i] = view.getInt16(2 * i, true) / 32768;
  return out;
}

// A float sample in -1..1 -> a PCM16 value (clipped).
export function floatToPcm16(value) {
  const v = Math.max(-1, Math.min(1, value));
  return v < 0 ? Math.round(v * 32768) : Math.round(v * 32767);
}
