// The live event feed of the watch page.
//
// Events arrive over a websocket as {"kind": "events", "events": [...]}
// frames. The feed shows them newest first, ordered by when they happened,
// keyed by message id so a resent event is never shown twice. After a
// dropped connection it reconnects with the largest cursor seen, and the
// server sends whatever was stored in between.
"use strict";

const MAX_ITEMS = 500;
const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 10000;
const CLOCK_TICK_MS = 1000;

const STATUS_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
};

function toCursor(value) {
  return /^\d+$/.test(String(value)) ? BigInt(value) : -1n;
}

function sortKeyOf(event) {
  const stamp = event.occurred_at || event.received_at || "";
  const fraction = (/\.(\d+)/.exec(stamp) || ["", ""])[1];

  return {
    millis: Date.parse(stamp) || 0,
    // Date keeps milliseconds only, while stored times carry microseconds;
    // without the rest, events in the same millisecond would tie.
    subMillis: Number(fraction.slice(3, 9).padEnd(6, "0")),
    cursor: toCursor(event.cursor),
  };
}

function compareKeys(a, b) {
  return (
    a.millis - b.millis ||
    a.subMillis - b.subMillis ||
    (a.cursor > b.cursor) - (a.cursor < b.cursor)
  );
}

function typeClass(type) {
  const slug = String(type || "unknown")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-");
  return `type-${slug}`;
}

function describeAge(millis, now) {
  const seconds = Math.max(0, Math.floor((now - millis) / 1000));
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;

  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;

  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} d ago`;
}

function formatExact(millis) {
  return new Date(millis).toLocaleString(undefined, {
    dateStyle: "medium",
    timeStyle: "medium",
  });
}

function createElement(tag, className, text) {
  const element = document.createElement(tag);
  element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

function renderTime(event, millis) {
  const time = createElement("time", "event-time");
  time.dateTime = event.occurred_at || event.received_at || "";
  time.title = formatExact(millis);
  time.textContent = describeAge(millis, Date.now());

  // The age changes every second; inside a live region a screen reader
  // would announce each change, so it is hidden from assistive technology.
  time.setAttribute("aria-hidden", "true");
  return time;
}

// Every string from the server goes in as text, never as markup: summaries
// quote chat messages and reward titles that viewers typed.
function renderItem(event, key) {
  const item = createElement("li", `event ${typeClass(event.type)}`);
  item.dataset.messageId = event.message_id;

  const summary = createElement("p", "event-summary", String(event.summary ?? ""));
  const meta = createElement("p", "event-meta");
  meta.append(
    createElement("span", "event-type", String(event.type ?? "")),
    renderTime(event, key.millis),
  );

  item.append(summary, meta);
  return item;
}

function createFeed(list, emptyLine) {
  return { list, emptyLine, items: [], ids: new Set(), lastCursor: null };
}

function rememberCursor(feed, cursor) {
  if (cursor >= 0n && (feed.lastCursor === null || cursor > feed.lastCursor)) {
    feed.lastCursor = cursor;
  }
}

function addEvent(feed, event) {
  if (typeof event?.message_id !== "string") return;

  const key = sortKeyOf(event);
  rememberCursor(feed, key.cursor);
  if (feed.ids.has(event.message_id)) return;

  let index = feed.items.findIndex((item) => compareKeys(key, item.key) > 0);
  if (index === -1) index = feed.items.length;
  if (index >= MAX_ITEMS) return;

  const element = renderItem(event, key);
  const time = element.querySelector("time");
  feed.list.insertBefore(element, feed.items[index]?.element ?? null);
  feed.items.splice(index, 0, { id: event.message_id, key, element, time });
  feed.ids.add(event.message_id);
}

function trimFeed(feed) {
  while (feed.items.length > MAX_ITEMS) {
    const oldest = feed.items.pop();
    oldest.element.remove();
    feed.ids.delete(oldest.id);
  }
  feed.emptyLine.hidden = feed.items.length > 0;
}

function addEvents(feed, events) {
  if (!Array.isArray(events)) return;
  for (const event of events) addEvent(feed, event);
  trimFeed(feed);
}

function refreshAges(feed) {
  const now = Date.now();
  for (const item of feed.items) {
    const age = describeAge(item.key.millis, now);
    if (item.time.textContent !== age) item.time.textContent = age;
  }
}

function showStatus(status, state) {
  status.dataset.state = state;
  status.textContent = STATUS_TEXT[state];
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

function connect(link) {
  const socket = new WebSocket(socketUrl(link.path, link.feed.lastCursor));
  link.socket = socket;
  link.greeted = false;

  socket.addEventListener("message", (message) => receive(link, message));
  socket.addEventListener("close", () => scheduleReconnect(link, socket));
}

function receive(link, message) {
  const frame = parseFrame(message.data);

  // The server always opens with an events frame, so the first frame, not
  // the open event, is what proves the connection works.
  if (!link.greeted) {
    link.greeted = true;
    link.retryMs = FIRST_RETRY_MS;
    showStatus(link.status, "live");
  }

  if (frame?.kind === "events") addEvents(link.feed, frame.events);
}

function scheduleReconnect(link, socket) {
  if (link.socket !== socket) return;

  const delay = Math.max(link.retryMs, link.holdMs);
  link.retryMs = Math.min(link.retryMs * 2, MAX_RETRY_MS);
  link.holdMs = 0;

  showStatus(link.status, "reconnecting");
  window.setTimeout(() => connect(link), delay);
}

// Lets the browser test, or a developer at the console, cut the connection
// the way a server restart would, optionally staying down for holdMs.
function dropConnection(link, holdMs = 0) {
  link.holdMs = holdMs;
  link.socket.close();
}

function start() {
  const list = document.getElementById("feed");
  if (!list) return;

  const feed = createFeed(list, document.getElementById("feed-empty"));
  const link = {
    feed,
    path: list.dataset.wsPath,
    status: document.getElementById("feed-status"),
    socket: null,
    greeted: false,
    retryMs: FIRST_RETRY_MS,
    holdMs: 0,
  };

  connect(link);
  window.setInterval(() => refreshAges(feed), CLOCK_TICK_MS);
  window.streamfeedDebug = {
    dropConnection: (holdMs) => dropConnection(link, holdMs),
  };
}

start();
