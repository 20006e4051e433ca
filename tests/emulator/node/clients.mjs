// The official Node SDK's two Realtime WebSocket clients against `realtalk emulator`.
//
//   node [--experimental-websocket] clients.mjs websocket|ws BASE_URL API_KEY
//
// BASE_URL is the emulator's https base URL (e.g. https://127.0.0.1:8765/v1): the SDK
// makes it wss://.../v1/realtime itself. Runs a text turn, a tool round trip and an audio
// turn (speech in, audio out) against the scenario of tests/emulator/test_node_sdk.py and
// prints one JSON line: what each turn produced, for the Python test to check.
import { OpenAI } from 'openai';
import { OpenAIRealtimeWebSocket } from 'openai/realtime/websocket';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';

const [kind, baseURL, apiKey] = process.argv.slice(2);
const TIMEOUT_MS = 20000;

const client = new OpenAI({ apiKey, baseURL });
const rt =
  kind === 'ws'
    ? new OpenAIRealtimeWS({ model: 'gpt-realtime' }, client)
    : new OpenAIRealtimeWebSocket({ model: 'gpt-realtime' }, client);

const received = [];
let waiter = null;
const errors = [];
rt.on('error', (err) => {
  errors.push(String(err.message));
  if (waiter) waiter.fail(new Error(`SDK error: ${err.message}`));
});
rt.on('event', (event) => {
  received.push(event);
  if (waiter && event.type === waiter.type) waiter.done();
});

/** Resolve with the events received since `from` once one of `type` arrives. */
function until(type, from) {
  return new Promise((resolve, reject) => {
    const found = () => received.slice(from).some((e) => e.type === type);
    if (found()) return resolve(received.slice(from));
    const timer = setTimeout(() => reject(new Error(`no ${type} within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
    waiter = {
      type,
      done: () => { clearTimeout(timer); waiter = null; resolve(received.slice(from)); },
      fail: (err) => { clearTimeout(timer); waiter = null; reject(err); },
    };
  });
}

function opened() {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('socket did not open')), TIMEOUT_MS);
    const ok = () => { clearTimeout(timer); resolve(); };
    const bad = (e) => { clearTimeout(timer); reject(new Error(`socket error: ${e?.message ?? e}`)); };
    if (kind === 'ws') { rt.socket.once('open', ok); rt.socket.once('error', bad); }
    else { rt.socket.addEventListener('open', ok); rt.socket.addEventListener('error', bad); }
  });
}

function userText(text) {
  rt.send({
    type: 'conversation.item.create',
    item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] },
  });
}

function texts(events) {
  return events.filter((e) => e.type === 'response.output_text.done').map((e) => e.text);
}

/** PCM16 24 kHz mono: 500 ms silence, 800 ms of a 440 Hz tone, 700 ms silence. */
function speech() {
  const rate = 24000;
  const samples = new Int16Array(rate * 2);
  for (let i = rate / 2; i < rate / 2 + (rate * 8) / 10; i++) {
    samples[i] = Math.round(0.3 * 32767 * Math.sin((2 * Math.PI * 440 * i) / rate));
  }
  return Buffer.from(samples.buffer);
}

async function main() {
  await opened();
  const result = { subprotocol: rt.socket.protocol };
  let mark = received.length;
  rt.send({
    type: 'session.update',
    session: {
      type: 'realtime',
      output_modalities: ['text'],
      tools: [{ type: 'function', name: 'get_weather', parameters: { type: 'object' } }],
    },
  });
  await until('session.updated', mark);
  result.first = received[0].type;

  // A text turn.
  mark = received.length;
  userText('hello');
  rt.send({ type: 'response.create' });
  result.text = texts(await until('response.done', mark));

  // A tool round trip.
  mark = received.length;
  userText("What's the weather?");
  rt.send({ type: 'response.create' });
  const call = (await until('response.done', mark)).find(
    (e) => e.type === 'response.function_call_arguments.done',
  );
  result.call = { name: call.name, arguments: JSON.parse(call.arguments) };
  mark = received.length;
  rt.send({
    type: 'conversation.item.create',
    item: { type: 'function_call_output', call_id: call.call_id, output: 'sunny' },
  });
  rt.send({ type: 'response.create' });
  result.after_tool = texts(await until('response.done', mark));

  // An audio turn: speech in (server VAD answers it), audio and its transcript out.
  mark = received.length;
  rt.send({
    type: 'session.update',
    session: {
      type: 'realtime',
      output_modalities: ['audio'],
      audio: { input: { transcription: { model: 'gpt-4o-mini-transcribe' } } },
    },
  });
  await until('session.updated', mark);
  mark = received.length;
  const audio = speech();
  for (let at = 0; at < audio.length; at += 4800) {
    rt.send({ type: 'input_audio_buffer.append', audio: audio.subarray(at, at + 4800).toString('base64') });
  }
  const events = await until('response.done', mark);
  const types = events.map((e) => e.type);
  result.vad = ['input_audio_buffer.speech_started', 'input_audio_buffer.speech_stopped'].every((t) =>
    types.includes(t),
  );
  result.audio_bytes = events
    .filter((e) => e.type === 'response.output_audio.delta')
    .reduce((n, e) => n + Buffer.from(e.delta, 'base64').length, 0);
  result.transcript = events
    .filter((e) => e.type === 'response.output_audio_transcript.done')
    .map((e) => e.transcript);
  result.status = events.at(-1).response.status;
  // The input transcription is asynchronous: it may come after the response.
  const heard = (await until('conversation.item.input_audio_transcription.completed', mark)).find(
    (e) => e.type === 'conversation.item.input_audio_transcription.completed',
  );
  result.heard = heard.transcript;
  result.errors = errors;
  rt.close();
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${kind}: ${err.stack ?? err}\n`);
    process.exit(1);
  },
);
