// The websocket that brings a streamer's events, reconnecting when dropped.
//
// Frames are {"kind": "events", "events": [...]}, oldest first. After a
// dropped connection the link reconnects with the largest cursor seen, and
// the server sends whatever was stored in between. A page that fell too far
// behind gets {"kind": "resync"}: the server closes, and the link
// reconnects at once from its last cursor.
"use strict";

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 10000;

const STATUS_TEXT = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
};

// hooks: cursor() -> BigInt | null, onEvents(events, first), onConnected()
export function createLink(path, status, hooks) {
  return {
    path,
    status,
    hooks,
    socket: null,
    greeted: false,
    everGreeted: false,
    retryMs: FIRST_RETRY_MS,
    holdMs: 0,
    resync: false,
  };
}

function showStatus(link, state) {
  link.status.dataset.state = state;
  link.status.textContent = STATUS_TEXT[state];
}

function socketUrl(path, cursor) {
  const url = new URL(path, window.location.href);
  url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
  if (cursor !== null) url.searchParams.set("after", cursor.toString());
  return url.href;
}

function parseFrame(data) {
  try {
    return JSON.parse(data);
  } catch (e) {
    console.warn("streamfeed: ignored a frame that is not JSON", e);
    return null;
  }
}

export function connect(link) {
  const socket = new WebSocket(socketUrl(link.path, link.hooks.cursor()));
  link.socket = socket;
  link.greeted = false;

  socket.addEventListener("message", (message) => receive(link, message));
  socket.addEventListener("close", () => scheduleReconnect(link, socket));
}

function receive(link, message) {
  const frame = parseFrame(message.data);
  const first = !link.everGreeted;

  // The server always opens with an events frame, so the first frame, not
  // the open event, is what proves the connection works.
  if (!link.greeted) {
    link.greeted = true;
    link.everGreeted = true;
    link.retryMs = FIRST_RETRY_MS;
    showStatus(link, "connected");
    link.hooks.onConnected();
  }

  if (frame?.kind === "events" && Array.isArray(frame.events)) {
    link.hooks.onEvents(frame.events, first);
  } else if (frame?.kind === "resync") {
    link.resync = true;
    link.socket.close();
  }
}

function scheduleReconnect(link, socket) {
  if (link.socket !== socket) return;

  // A resync is no failure: come back at once, from the last cursor shown.
  const delay = link.resync ? 0 : Math.max(link.retryMs, link.holdMs);
  if (!link.resync) link.retryMs = Math.min(link.retryMs * 2, MAX_RETRY_MS);
  link.resync = false;
  link.holdMs = 0;

  showStatus(link, "reconnecting");
  window.setTimeout(() => connect(link), delay);
}

// Lets the browser test, or a developer at the console, cut the connection
// the way a server restart would, optionally staying down for holdMs.
export function dropConnection(link, holdMs = 0) {
  link.holdMs = holdMs;
  link.socket.close();
}
