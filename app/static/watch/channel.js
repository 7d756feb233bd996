// The channel's state on the page: online or offline, title and category,
// and which event types are live here and why the others are not.
//
// The server gives the state when the page opens and on each refresh; the
// feed's stream.online, stream.offline and channel.update events change it
// in between. A change only applies when it happened after the state shown,
// so an event that arrives late never overrides a newer one.
"use strict";

import { createElement } from "./render.js";
import { compareKeys, formatExact, stampKey } from "./time.js";

const REFRESH_MS = 60000;
const STATUS_TEXT = { online: "Live", offline: "Offline", unknown: "Status unknown" };

export function createChannel(login, state) {
  const channel = {
    login,
    streamerId: state.streamer?.id ?? null,
    stream: { status: "unknown", key: null, startedAt: null },
    info: { title: "", category: "", key: null },
    refreshing: null,
    badge: document.getElementById("stream-status"),
    title: document.getElementById("stream-title"),
    category: document.getElementById("stream-category"),
    summary: document.getElementById("availability"),
  };
  applyState(channel, state);
  return channel;
}

function isNewer(key, shown) {
  return shown === null || compareKeys(key, shown) > 0;
}

function setStream(channel, status, key, startedAt) {
  if (!isNewer(key, channel.stream.key)) return;
  channel.stream = { status, key, startedAt };

  const badge = channel.badge;
  badge.dataset.status = status;
  badge.textContent = STATUS_TEXT[status] || STATUS_TEXT.unknown;
  const since = startedAt ? Date.parse(startedAt) : key.millis;
  badge.title = status === "unknown" ? "" : `${badge.textContent} since ${formatExact(since)}`;
}

function setInfo(channel, title, category, key) {
  if (!isNewer(key, channel.info.key)) return;
  channel.info = { title, category, key };
  channel.title.textContent = title || "No title set";
  channel.category.textContent = category;
  channel.category.hidden = !category;
}

export function applyEvent(channel, event) {
  const key = stampKey(event.occurred_at, event.cursor);
  const body = event.event || {};
  if (event.type === "stream.online") {
    setStream(channel, "online", key, body.started_at || null);
  } else if (event.type === "stream.offline") {
    setStream(channel, "offline", key, null);
  } else if (event.type === "channel.update") {
    setInfo(channel, String(body.title ?? ""), String(body.category_name ?? ""), key);
  }
}

export function applyState(channel, state) {
  channel.streamerId = state.streamer?.id ?? channel.streamerId;
  const stream = state.stream || {};
  if (stream.occurred_at) {
    setStream(channel, stream.status, stampKey(stream.occurred_at), stream.started_at);
  }
  if (state.info?.occurred_at) {
    const info = state.info;
    setInfo(channel, String(info.title ?? ""), String(info.category ?? ""), stampKey(info.occurred_at));
  }
  if (Array.isArray(state.types)) showAvailability(channel, state.types);
}

function showTypeStatus(type) {
  const cell = document.querySelector(`.type-status[data-type="${CSS.escape(type.type)}"]`);
  if (!cell) return;

  cell.dataset.live = String(Boolean(type.live));
  if (type.live) {
    cell.replaceChildren(createElement("span", "type-live", "Live"));
    return;
  }
  cell.replaceChildren(createElement("span", "type-reason", String(type.reason ?? "")));
  if (type.scope) {
    cell.append(createElement("span", "type-scope", `needs ${type.scope}`));
  }
}

function showAvailability(channel, types) {
  types.forEach(showTypeStatus);

  const live = types.filter((type) => type.live).length;
  const reasons = new Map();
  for (const type of types.filter((each) => !each.live)) {
    reasons.set(type.reason, (reasons.get(type.reason) || 0) + 1);
  }

  const lead = createElement("p", "availability-lead", `Live here: ${live} of ${types.length} event types.`);
  const list = createElement("ul", "availability-reasons");
  for (const [reason, count] of reasons) {
    list.append(createElement("li", "", `${count} ${count === 1 ? "type" : "types"}: ${reason}`));
  }
  channel.summary.replaceChildren(lead, list);
}

export async function refresh(channel) {
  if (channel.refreshing) return channel.refreshing;

  const url = `/api/streamers/${encodeURIComponent(channel.login)}/channel`;
  channel.refreshing = fetch(url, { headers: { Accept: "application/json" } })
    .then((response) => (response.ok ? response.json() : null))
    .then((state) => state && applyState(channel, state))
    .catch((e) => console.warn("streamfeed: channel state not refreshed", e))
    .finally(() => {
      channel.refreshing = null;
    });
  return channel.refreshing;
}

export function keepRefreshing(channel) {
  window.setInterval(() => refresh(channel), REFRESH_MS);
}
