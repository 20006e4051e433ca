// The realtalk console: one page that talks to `realtalk serve` over the realtalk.v1
// protocol (docs/serve.md, "The browser protocol").
//
// It connects a WebSocket to /ws, sends the microphone as PCM16 24 kHz frames (from
// capture-worklet.js), plays the assistant's frames (playback-worklet.js) and reports what
// it played, and shows what the session reports: transcript, tool calls, handoffs,
// latency, usage and cost, approvals, refusals. No build step, no dependencies.
//
// window.realtalk is a read-only view of the page's state for tests and the curious
// (see the end of this file).

import { Resampler } from "./resample.js";

const PROTOCOL = "realtalk.v1";
const TOKEN_KEY = "realtalk.token";
const MAX_MESSAGE = 16 * 1024;
const MAX_LINES = 500; // transcript entries kept on the page (and in the test hook)
const MAX_EVENTS = 500; // session events kept for the test hook
const BYE_TIMEOUT_MS = 5000; // how long Disconnect waits for the server to close

const REFUSALS = {
  4401: "The server refused the token (wrong, expired or missing).",
  4403: "The server does not accept connections from this page's origin.",
  4404: "The server has no such agent.",
  4429: "The server is at capacity; try again in a moment.",
  4503: "The server is shutting down (draining); try again in a moment.",
};
const CLOSINGS = {
  max_session: "The session reached its maximum length.",
  draining: "The server is shutting down; the session was ended.",
  server_error: "The server had an error and ended the session.",
  bye: "The session ended.",
};

const $ = (id) => document.getElementById(id);
const ui = {
  agent: $("agent"),
  token: $("token"),
  connect: $("connect"),
  switchAgent: $("switch"),
  status: $("status"),
  alert: $("alert"),
  micModes: document.querySelectorAll('input[name="mic"]'),
  ptt: $("ptt"),
  level: $("level"),
  log: $("transcript"),
  form: $("say"),
  text: $("text"),
  send: $("send"),
  sessionAgent: $("session-agent"),
  sessionId: $("session-id"),
  sessionLimit: $("session-limit"),
  latency: $("latency"),
  usageTurn: $("usage-turn"),
  usageSession: $("usage-session"),
};

// --- state ----------------------------------------------------------------------------

const state = {
  ws: null,
  connected: false, // a `ready` arrived and the socket is open
  sessionId: null,
  agent: null, // the active agent
  agents: [],
  epoch: 0,
  sent: 0, // 24 kHz microphone samples sent
  received: 0, // 24 kHz samples received, all epochs
  receivedEpoch: 0, // ... in the current epoch
  playedBefore: 0, // samples played in finished epochs
  playedEpoch: 0, // the newest report of the current epoch
  reports: [], // the newest played reports sent: {epoch, samples}
  epochs: [], // finished epochs: {epoch, received, played} (played: the page's last report)
  refusal: null, // {status, code, reason}
  closing: null,
  lines: [], // transcript entries: {kind, text, ...}
  events: [], // session events, as the server sent them
  errors: [], // `error` messages from the server
  usage: null, // the newest `usage` message
  ptt: false,
  audio: null, // {context, playback, capture, stream, source}
  micMode: "open",
  pendingText: [], // texts sent and not yet echoed as user.text
  assistantLine: null, // the line assistant deltas go to
  tools: new Map(), // call_id -> entry
};

// --- the transcript ----------------------------------------------------------------------

function addLine(kind, text, extra = {}) {
  const entry = { kind, text, ...extra };
  const el = document.createElement("li");
  el.className = `line ${kind}`;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = extra.who || kind;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  el.append(who, body);
  entry.el = el;
  entry.body = body;
  ui.log.append(el);
  state.lines.push(entry);
  if (state.lines.length > MAX_LINES) state.lines.shift().el.remove();
  el.scrollIntoView({ block: "nearest" });
  return entry;
}

function setText(entry, text) {
  entry.text = text;
  entry.body.textContent = text;
}

function detail(entry, text) {
  const small = document.createElement("span");
  small.className = "detail";
  small.textContent = text;
  entry.el.append(small);
  entry.detail = text;
  return small;
}

function say(message, level = "info") {
  ui.status.textContent = message;
  ui.status.dataset.level = level;
}

function alertUser(message) {
  ui.alert.textContent = message;
  ui.alert.hidden = !message;
}

// --- numbers ----------------------------------------------------------------------------

const ms = (value) =>
  value == null ? "–" : value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${Math.round(value)} ms`;
const duration = (s) => (s >= 3600 ? `${+(s / 3600).toFixed(1)} h` : s >= 60 ? `${+(s / 60).toFixed(1)} min` : `${s} s`);
const usd = (value) => (value == null ? "–" : `$${value < 0.01 ? value.toFixed(5) : value.toFixed(4)}`);
const count = (value) => (value == null ? "–" : Number(value).toLocaleString("en-US"));

// Tokens by kind of a usage object, {tokens: {input_text: 12, ...}, cost_usd} (or flat),
// folded into what the page shows: cached kinds together, images only when used.
function tokens(usage) {
  const source = usage && typeof usage.tokens === "object" && usage.tokens ? usage.tokens : usage || {};
  const out = { input_text: 0, input_audio: 0, input_image: 0, input_cached: 0, output_text: 0, output_audio: 0, total: 0 };
  for (const [kind, value] of Object.entries(source)) {
    const n = Number(value);
    if (!Number.isFinite(n) || !/^(input|output)_/.test(kind)) continue;
    if (kind.startsWith("input_cached")) out.input_cached += n;
    else if (kind in out) out[kind] += n;
    out.total += n;
  }
  return out;
}

function showUsage(target, usage) {
  target.replaceChildren();
  if (!usage) return;
  const t = tokens(usage);
  const rows = [
    ["input text", count(t.input_text)],
    ["input audio", count(t.input_audio)],
    ...(t.input_image ? [["input image", count(t.input_image)]] : []),
    ["input cached", count(t.input_cached)],
    ["output text", count(t.output_text)],
    ["output audio", count(t.output_audio)],
    ["cost (est.)", usage.cost_usd == null ? "no price" : usd(usage.cost_usd)],
  ];
  for (const [name, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = value;
    target.append(dt, dd);
  }
}

// --- agents and the token -----------------------------------------------------------------

function setAgents(names, active) {
  const previous = ui.agent.value;
  state.agents = names.slice();
  ui.agent.replaceChildren();
  for (const name of names) {
    const option = document.createElement("option");
    option.value = option.textContent = name;
    ui.agent.append(option);
  }
  const pick = active || previous;
  if (pick && names.includes(pick)) ui.agent.value = pick;
}

async function loadAgents() {
  try {
    const response = await fetch("agents", { headers: { accept: "application/json" } });
    if (!response.ok) return;
    const data = await response.json();
    // A list of names (or of {name}), or {agents: [...], default: NAME}.
    const list = Array.isArray(data) ? data : data.agents || [];
    const names = list.map((a) => (typeof a === "string" ? a : a && a.name)).filter(Boolean);
    if (names.length && !state.connected) setAgents(names, data.default || data.default_agent);
  } catch {
    // The list comes with `ready` anyway.
  }
}

// A token in the page's address, `#token=...` (the fragment never reaches the server) or
// `?token=...`: taken once into this tab's sessionStorage, then removed from the address
// bar and the history entry.
function takeTokenFromUrl() {
  const url = new URL(window.location.href);
  const fragment = new URLSearchParams(url.hash.slice(1));
  const token = fragment.get("token") ?? url.searchParams.get("token");
  if (token === null) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  url.searchParams.delete("token");
  fragment.delete("token");
  const hash = fragment.toString();
  history.replaceState(history.state, "", url.pathname + url.search + (hash ? `#${hash}` : ""));
}

function currentToken() {
  return ui.token.value.trim();
}

// --- audio -------------------------------------------------------------------------------

// The AudioContext, made at once (inside the click that asked for it, so it may start),
// with its worklets loaded and the player connected.
async function startAudio() {
  const context = new AudioContext({ latencyHint: "interactive" });
  await context.audioWorklet.addModule("static/playback-worklet.js");
  await context.audioWorklet.addModule("static/capture-worklet.js");
  const playback = new AudioWorkletNode(context, "realtalk-playback", {
    numberOfInputs: 0,
    numberOfOutputs: 1,
    outputChannelCount: [1],
  });
  playback.port.onmessage = (event) => onPlayback(event.data);
  playback.connect(context.destination);
  if (context.state !== "running") await context.resume();
  state.audio = { context, playback, capture: null, stream: null, source: null };
}

async function startMicrophone() {
  const audio = state.audio;
  if (!audio || audio.capture || audio.asking) return;
  let stream;
  audio.asking = true;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    });
  } catch (error) {
    alertUser(`The microphone is not available (${error.name}): type instead, or allow the microphone and reconnect.`);
    return;
  } finally {
    audio.asking = false;
  }
  if (state.audio !== audio || state.micMode === "off") {
    stream.getTracks().forEach((track) => track.stop()); // disconnected, or turned off, meanwhile
    return;
  }
  stream.getAudioTracks()[0]?.addEventListener("ended", () => {
    if (state.audio === audio && audio.stream === stream) alertUser("The microphone stopped (unplugged or taken away).");
  });
  const source = audio.context.createMediaStreamSource(stream);
  const capture = new AudioWorkletNode(audio.context, "realtalk-capture", {
    numberOfInputs: 1,
    numberOfOutputs: 1,
    outputChannelCount: [1],
  });
  capture.port.onmessage = (event) => onCapture(event.data);
  source.connect(capture);
  capture.connect(audio.context.destination); // it outputs silence; this keeps it running
  Object.assign(audio, { stream, source, capture });
}

function stopMicrophone() {
  const audio = state.audio;
  if (!audio || !audio.capture) return;
  audio.capture.port.onmessage = null;
  audio.source.disconnect();
  audio.capture.disconnect();
  audio.stream.getTracks().forEach((track) => track.stop());
  Object.assign(audio, { stream: null, source: null, capture: null });
  ui.level.value = 0;
}

function stopAudio() {
  stopMicrophone();
  if (state.audio) state.audio.context.close();
  state.audio = null;
}

function onCapture(message) {
  if (message.type === "inject-full") {
    say("Injected audio refused: over 10 s already queued.", "warn");
    return;
  }
  if (message.type !== "frame") return;
  ui.level.value = Math.min(1, message.level * 4);
  const live = state.micMode === "open" || (state.micMode === "ptt" && state.ptt);
  if (live && state.connected && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(message.pcm);
    state.sent += message.pcm.byteLength >> 1;
  }
}

function onPlayback(message) {
  if (message.type === "overflow") {
    say("The reply is longer than the page can queue; some audio was skipped.", "warn");
    return;
  }
  if (message.type !== "played" || message.epoch !== state.epoch) return; // a cleared epoch
  state.playedEpoch = Math.max(state.playedEpoch, message.samples);
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify({ type: "played", epoch: message.epoch, samples: message.samples }));
    state.reports.push({ epoch: message.epoch, samples: message.samples });
    if (state.reports.length > 200) state.reports.shift();
  }
}

function onAudioFrame(buffer) {
  const samples = buffer.byteLength >> 1;
  state.received += samples;
  state.receivedEpoch += samples;
  if (state.audio) state.audio.playback.port.postMessage({ type: "audio", epoch: state.epoch, pcm: buffer }, [buffer]);
}

function onClear(epoch) {
  state.epochs.push({ epoch: state.epoch, received: state.receivedEpoch, played: state.playedEpoch });
  if (state.epochs.length > 50) state.epochs.shift();
  state.playedBefore += state.playedEpoch;
  state.epoch = epoch;
  state.receivedEpoch = 0;
  state.playedEpoch = 0;
  if (state.audio) state.audio.playback.port.postMessage({ type: "clear", epoch });
}

// --- the connection ----------------------------------------------------------------------

function wsUrl(agent) {
  const url = new URL("ws", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.search = agent ? `?agent=${encodeURIComponent(agent)}` : "";
  return url.href;
}

// What a WebSocket subprotocol may hold (an RFC 7230 token).
const TOKEN_CHARS = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

async function connect() {
  if (state.ws || state.starting) return;
  alertUser("");
  const token = currentToken();
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
  if (token && !TOKEN_CHARS.test(token)) {
    alertUser("The token has characters a WebSocket subprotocol cannot carry (spaces, commas, quotes…).");
    return;
  }
  const protocols = [PROTOCOL];
  if (token) protocols.push(`realtalk.token.${token}`);
  state.playedBefore += state.playedEpoch; // the total goes on over connections
  Object.assign(state, {
    refusal: null, closing: null, epoch: 0, receivedEpoch: 0, playedEpoch: 0, ptt: false,
  });
  state.starting = true;
  say("Connecting…");
  try {
    // Audio first (the AudioContext is made during the click), so no frame arrives
    // before the player exists.
    await startAudio();
  } catch (error) {
    stopAudio();
    alertUser(`Audio cannot start in this browser (${error.message}); text still works.`);
  }
  let ws;
  try {
    ws = new WebSocket(wsUrl(ui.agent.value), protocols);
  } catch (error) {
    state.starting = false;
    stopAudio();
    alertUser(`Cannot connect: ${error.message}`);
    say("Not connected.", "error");
    return;
  }
  state.starting = false;
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  ws.onmessage = (event) => {
    if (typeof event.data === "string") onMessage(event.data);
    else onAudioFrame(event.data);
  };
  ws.onclose = (event) => onClose(ws, event);
  ws.onerror = () => {}; // the close event says what happened
  setBusy(true);
}

function disconnect() {
  const ws = state.ws;
  if (!ws) return;
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "bye" }));
  say("Disconnecting…");
  if (ws.readyState === WebSocket.CONNECTING) ws.close();
  // The server answers bye with closing and a close; a server that does not is left.
  setTimeout(() => ws.readyState === WebSocket.CLOSED || ws.close(), BYE_TIMEOUT_MS);
}

function send(message) {
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN || !state.connected) return false;
  ws.send(JSON.stringify(message));
  return true;
}

function onClose(ws, event) {
  if (state.ws !== ws) return;
  state.ws = null;
  const wasConnected = state.connected;
  state.connected = false;
  stopAudio();
  setBusy(false);
  state.ptt = false;
  ui.ptt.setAttribute("aria-pressed", "false");
  const refusal = REFUSALS[event.code];
  if (refusal) {
    const reason = state.refusal ? state.refusal.reason : "";
    if (!state.refusal) state.refusal = { status: event.code - 4000, code: null, reason: event.reason };
    alertUser(`${refusal}${reason ? ` ${reason}` : ""} (${event.code - 4000})`);
    say("Refused.", "error");
  } else if (state.closing) {
    const text = CLOSINGS[state.closing.code] || "The session ended.";
    if (state.closing.code !== "bye") alertUser(`${text} ${state.closing.reason || ""}`.trim());
    say("Disconnected.");
  } else if (event.code === 1008) {
    alertUser(`The server closed the session: ${event.reason || "policy violation"}.`);
    say("Disconnected.", "error");
  } else if (event.code === 1000 || event.code === 1001) {
    say("Disconnected.");
  } else if (!wasConnected) {
    alertUser("Cannot reach the server, or it refused the connection before it started (see the server's log).");
    say("Not connected.", "error");
  } else {
    alertUser(`The connection was lost (${event.code}${event.reason ? `: ${event.reason}` : ""}).`);
    say("Disconnected.", "error");
  }
  finishAssistantLine();
  for (const callId of [...approvals.keys()]) endApproval(callId, "not answered: the session ended");
}

function onMessage(text) {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    return;
  }
  switch (message.type) {
    case "ready":
      return onReady(message);
    case "event":
      return onEvent(message.event || {});
    case "usage":
      return onUsage(message);
    case "clear":
      return onClear(message.epoch);
    case "approval":
      return onApproval(message);
    case "error":
      state.errors.push(message.message);
      if (state.errors.length > 50) state.errors.shift();
      addLine("error", message.message, { who: "page error" });
      return;
    case "refused":
      state.refusal = { status: message.status, code: message.code, reason: message.reason };
      return;
    case "closing":
      state.closing = { code: message.code, reason: message.reason };
      return;
    default:
      return;
  }
}

function onReady(message) {
  state.connected = true;
  state.sessionId = message.session_id;
  state.agent = message.agent;
  setAgents(message.agents || [], message.agent);
  ui.sessionAgent.textContent = message.agent;
  ui.sessionId.textContent = message.session_id;
  ui.sessionLimit.textContent = message.max_session_s ? duration(message.max_session_s) : "none";
  setBusy(true);
  say(`Connected to ${message.agent}.`, "ok");
  if (state.micMode !== "off") startMicrophone();
}

// --- session events ----------------------------------------------------------------------

function finishAssistantLine(text) {
  const line = state.assistantLine;
  if (!line) return;
  if (text) setText(line, text);
  line.el.removeAttribute("aria-busy");
  state.assistantLine = null;
}

function onEvent(event) {
  state.events.push(event);
  if (state.events.length > MAX_EVENTS) state.events.shift();
  switch (event.type) {
    case "connected":
      state.agent = event.agent;
      ui.sessionAgent.textContent = event.agent;
      return;
    case "user.text": {
      const at = state.pendingText.indexOf(event.text);
      if (at >= 0) state.pendingText.splice(at, 1); // shown when it was sent
      else addLine("user", event.text, { who: "you (typed)" });
      return;
    }
    case "user.transcript":
      if (event.text) addLine("user", event.text, { who: "you" });
      return;
    case "assistant.delta": {
      let line = state.assistantLine;
      if (!line || line.agent !== event.agent) {
        finishAssistantLine();
        line = state.assistantLine = addLine("assistant", "", { who: event.agent, agent: event.agent });
        line.el.setAttribute("aria-busy", "true");
      }
      setText(line, line.text + event.delta);
      return;
    }
    case "assistant.done":
      if (state.assistantLine) finishAssistantLine(event.text);
      else if (event.text) addLine("assistant", event.text, { who: event.agent, agent: event.agent });
      return;
    case "tool.started": {
      finishAssistantLine();
      const entry = addLine("tool", `${event.name}(${event.arguments})`, {
        who: "tool", name: event.name, arguments: event.arguments, callId: event.call_id,
      });
      detail(entry, "running…");
      state.tools.set(event.call_id, entry);
      if (state.tools.size > 100) state.tools.delete(state.tools.keys().next().value);
      return;
    }
    case "tool.finished": {
      let entry = state.tools.get(event.call_id);
      if (!entry) entry = addLine("tool", `${event.name}(…)`, { who: "tool", name: event.name });
      entry.el.querySelector(".detail")?.remove();
      entry.status = event.status;
      entry.output = event.output;
      entry.durationMs = event.duration_s * 1000;
      detail(entry, `${event.status} in ${ms(entry.durationMs)} → ${event.output}`);
      entry.el.dataset.status = event.status;
      endApproval(event.call_id, event.status);
      return;
    }
    case "handoff": {
      finishAssistantLine();
      const call = event.call_id && state.tools.get(event.call_id);
      if (call && !call.status) { // transfer_to_<agent>: the handoff is its outcome
        call.el.querySelector(".detail")?.remove();
        call.status = "handoff";
        detail(call, `handed off to ${event.target}`);
      }
      state.agent = event.target;
      ui.sessionAgent.textContent = event.target;
      if (state.agents.includes(event.target)) ui.agent.value = event.target;
      say(`Connected: ${event.target} is talking.`, "ok");
      addLine("handoff", `${event.source} → ${event.target}${event.call_id ? "" : " (switched)"}`, {
        who: "handoff", source: event.source, target: event.target,
      });
      return;
    }
    case "turn.done": {
      finishAssistantLine();
      const latency = `first reply ${ms(event.first_delta_ms)} · done ${ms(event.done_ms)}`;
      ui.latency.textContent = latency;
      const entry = addLine("turn", latency, {
        who: "turn", firstDeltaMs: event.first_delta_ms, doneMs: event.done_ms, status: event.status,
      });
      if (event.status && event.status !== "completed") {
        detail(entry, `${event.status}${event.status_reason ? `: ${event.status_reason}` : ""}`);
      }
      state.turnLine = entry;
      return;
    }
    case "interrupted": {
      finishAssistantLine();
      // Nothing dropped: the reply had been heard to its end when the user spoke.
      const text = event.dropped_ms > 0
        ? `you interrupted: cut at ${ms(event.played_ms)}, ${ms(event.dropped_ms)} not played`
        : `you spoke after the reply (all ${ms(event.played_ms)} heard)`;
      addLine("interrupted", text, {
        who: "barge-in", playedMs: event.played_ms, droppedMs: event.dropped_ms,
      });
      return;
    }
    case "reconnected":
      addLine("note", `reconnected to the model (${event.reason})`, { who: "note" });
      return;
    case "warning":
      addLine("warning", event.message, { who: "warning" });
      return;
    case "error":
      addLine("error", event.message, { who: "error" });
      return;
    default:
      return;
  }
}

function onUsage(message) {
  state.usage = { turn: message.turn, session: message.session };
  showUsage(ui.usageTurn, message.turn);
  showUsage(ui.usageSession, message.session);
  const line = state.turnLine;
  if (line && message.turn) {
    const t = tokens(message.turn);
    detail(line, `${count(t.total)} tokens · ${usd(message.turn.cost_usd)}`);
  }
}

// --- approvals ---------------------------------------------------------------------------

const approvals = new Map(); // call_id -> {el, buttons}

function onApproval(message) {
  finishAssistantLine();
  const entry = addLine("approval", `${message.agent} wants to run ${message.tool}(${JSON.stringify(message.arguments)})`, {
    who: "approve?", callId: message.call_id, tool: message.tool,
  });
  entry.el.setAttribute("role", "group");
  entry.el.setAttribute("aria-label", `Approve ${message.tool}?`);
  const allow = document.createElement("button");
  allow.type = "button";
  allow.textContent = "Allow";
  allow.className = "allow";
  const deny = document.createElement("button");
  deny.type = "button";
  deny.textContent = "Deny";
  deny.className = "deny";
  const answer = (ok) => {
    if (send({ type: "approve", call_id: message.call_id, allow: ok })) {
      endApproval(message.call_id, ok ? "allowed" : "denied");
    }
  };
  allow.onclick = () => answer(true);
  deny.onclick = () => answer(false);
  const box = document.createElement("span");
  box.className = "buttons";
  box.append(allow, deny);
  entry.el.append(box);
  approvals.set(message.call_id, { entry, box });
  allow.focus();
}

function endApproval(callId, outcome) {
  const approval = approvals.get(callId);
  if (!approval) return;
  approvals.delete(callId);
  approval.box.remove();
  approval.entry.answer = outcome;
  detail(approval.entry, outcome);
}

// --- controls ----------------------------------------------------------------------------

function setBusy(open) {
  ui.connect.textContent = open ? "Disconnect" : "Connect";
  ui.connect.setAttribute("aria-pressed", open ? "true" : "false");
  ui.token.disabled = open;
  ui.switchAgent.disabled = !state.connected;
  ui.text.disabled = ui.send.disabled = !state.connected;
  ui.ptt.disabled = !(state.connected && state.micMode === "ptt");
}

function setPtt(down) {
  if (state.micMode !== "ptt" || !state.connected || state.ptt === down) return;
  state.ptt = down;
  ui.ptt.setAttribute("aria-pressed", down ? "true" : "false");
  send({ type: "ptt", down });
}

function setMicMode(mode) {
  if (state.ptt) setPtt(false);
  state.micMode = mode;
  ui.ptt.disabled = !(state.connected && mode === "ptt");
  if (mode === "off") stopMicrophone();
  else if (state.connected) startMicrophone();
}

$("connection").addEventListener("submit", (event) => {
  event.preventDefault();
  if (state.ws) disconnect();
  else connect();
});
ui.switchAgent.addEventListener("click", () => {
  const agent = ui.agent.value;
  if (agent && agent !== state.agent) send({ type: "switch", agent });
});
for (const radio of ui.micModes) {
  radio.addEventListener("change", () => radio.checked && setMicMode(radio.value));
}
ui.ptt.addEventListener("pointerdown", (event) => {
  ui.ptt.setPointerCapture(event.pointerId);
  setPtt(true);
});
for (const kind of ["pointerup", "pointercancel", "lostpointercapture"]) {
  ui.ptt.addEventListener(kind, () => setPtt(false));
}
// Space is push-to-talk anywhere but in a field that takes typing.
const typing = (el) => el && (el.tagName === "INPUT" && el.type !== "radio" || el.tagName === "TEXTAREA" || el.tagName === "SELECT");
window.addEventListener("keydown", (event) => {
  if (event.code !== "Space" || state.micMode !== "ptt" || !state.connected || typing(event.target)) return;
  event.preventDefault();
  if (!event.repeat) setPtt(true);
});
window.addEventListener("keyup", (event) => {
  if (event.code !== "Space" || state.micMode !== "ptt" || typing(event.target)) return;
  event.preventDefault();
  setPtt(false);
});
window.addEventListener("blur", () => setPtt(false));

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.text.value.trim();
  if (!text) return;
  const message = JSON.stringify({ type: "text", text });
  if (new TextEncoder().encode(message).length > MAX_MESSAGE) {
    say(`That message is too long (the limit is ${MAX_MESSAGE} bytes).`, "warn");
    return;
  }
  if (!send({ type: "text", text })) return;
  finishAssistantLine();
  state.pendingText.push(text);
  if (state.pendingText.length > 20) state.pendingText.shift();
  addLine("user", text, { who: "you (typed)" });
  ui.text.value = "";
});

window.addEventListener("pagehide", () => {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify({ type: "bye" }));
});

// --- start -------------------------------------------------------------------------------

takeTokenFromUrl();
ui.token.value = sessionStorage.getItem(TOKEN_KEY) || "";
ui.token.addEventListener("change", () => {
  const token = currentToken();
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
});
state.micMode = [...ui.micModes].find((radio) => radio.checked)?.value || "open";
setBusy(false);
loadAgents();
say("Not connected.");

// --- the test hook -----------------------------------------------------------------------

// Speak `samples` (Float32Array or array, at `rate` Hz, default 24 kHz) into the
// microphone path: they are resampled to the AudioContext's rate here, then mixed into
// the microphone signal by the capture worklet in real time, one render quantum at a
// time, and leave as ordinary 20 ms frames. Needs a running microphone. Returns the
// number of samples queued at the context rate.
function injectMicrophone(samples, rate = 24000) {
  const audio = state.audio;
  if (!audio || !audio.capture) throw new Error("injectMicrophone: the microphone is not running");
  const input = Float32Array.from(samples);
  const resampler = new Resampler(rate, audio.context.sampleRate, input.length + 64);
  resampler.push(input);
  const out = [];
  while (resampler.pending()) out.push(resampler.next());
  const pcm = Float32Array.from(out);
  audio.capture.port.postMessage({ type: "inject", samples: pcm }, [pcm.buffer]);
  return pcm.length;
}

const plain = (entry) => {
  const { el, body, ...rest } = entry;
  return rest;
};

window.realtalk = Object.freeze({
  get connected() { return state.connected; },
  get sessionId() { return state.sessionId; },
  get agent() { return state.agent; },
  get agents() { return state.agents.slice(); },
  get epoch() { return state.epoch; },
  /** 24 kHz samples the page played (rendered), all epochs. */
  get playedSamples() { return state.playedBefore + state.playedEpoch; },
  /** 24 kHz microphone samples sent to the server. */
  get sentSamples() { return state.sent; },
  /** Whether push-to-talk is held. */
  get ptt() { return state.ptt; },
  /** 24 kHz samples received, all epochs. */
  get receivedSamples() { return state.received; },
  get receivedEpochSamples() { return state.receivedEpoch; },
  /** The newest played reports sent to the server, oldest first. */
  get reports() { return state.reports.map((r) => ({ ...r })); },
  /** Finished epochs: {epoch, received, played} at the moment the clear arrived. */
  get epochs() { return state.epochs.map((e) => ({ ...e })); },
  get refusal() { return state.refusal && { ...state.refusal }; },
  get closing() { return state.closing && { ...state.closing }; },
  get transcript() { return state.lines.map(plain); },
  get events() { return state.events.map((e) => ({ ...e })); },
  get errors() { return state.errors.slice(); },
  get usage() { return state.usage && JSON.parse(JSON.stringify(state.usage)); },
  get microphone() { return Boolean(state.audio && state.audio.capture); },
  get audioRate() { return state.audio ? state.audio.context.sampleRate : null; },
  get alert() { return ui.alert.hidden ? "" : ui.alert.textContent; },
  injectMicrophone,
});
