// The watch page: the live event feed of one streamer, its controls and the
// channel's state, wired together.
//
// Events come from the websocket (and from "Load older"), go into the card
// model, and the feed view shows the cards that changed.
"use strict";

import { addEvent, cardType, createModel } from "./cards.js";
import { applyEvent, createChannel, keepRefreshing, refresh } from "./channel.js";
import { startEmbeds } from "./embeds.js";
import {
  countHeld,
  countVisible,
  createFeedView,
  pause,
  redecorate,
  refreshAges,
  resume,
  showCards,
} from "./feedview.js";
import { connect, createLink, dropConnection } from "./link.js";
import { bindDisclosure, bindPanel } from "./panel.js";
import { loadPrefs } from "./prefs.js";
import { chime, createSound, turnSoundOff, turnSoundOn } from "./sound.js";

const CLOCK_TICK_MS = 1000;
// The server opens the feed with this many of the latest events.
const PAGE_SIZE = 50;
const OTHER_TYPES = "other";

function byId(id) {
  return document.getElementById(id);
}

function readState() {
  try {
    return JSON.parse(byId("channel-state").textContent);
  } catch (e) {
    console.warn("streamfeed: no channel state in the page", e);
    return { streamer: {}, stream: {}, info: null, types: [] };
  }
}

function createPage(list, state, prefs) {
  const labels = new Map(state.types.map((type) => [type.type, type.label]));
  const filterKey = (type) => (labels.has(type) ? type : OTHER_TYPES);
  const page = {
    login: list.dataset.login,
    prefs,
    filterKey,
    model: createModel(),
    sound: createSound(),
    channel: createChannel(list.dataset.login, state),
    historyDone: false,
  };

  page.view = createFeedView(list, {
    labelOf: (type) => labels.get(type) || type,
    isVisible: (card) => !prefs.hidden.has(filterKey(cardType(card))),
    isHighlighted: (card) => prefs.highlight.has(filterKey(cardType(card))),
    onChange: () => showCounts(page),
  });
  return page;
}

function showCounts(page) {
  const { view, model } = page;
  const held = view.paused ? countHeld(view, model) : 0;
  const badge = byId("new-badge");
  badge.hidden = held === 0;
  badge.textContent = `${held} new`;

  const empty = byId("feed-empty");
  empty.hidden = view.items.length > 0 && countVisible(view) > 0;
  empty.textContent =
    view.items.length === 0
      ? `No events yet for ${page.login}`
      : "Every event here is hidden by the filters in Event types.";
  showHistoryEnd(page);
}

function showHistoryEnd(page) {
  const hasEvents = page.view.items.length > 0;
  byId("load-older").hidden = page.historyDone || !hasEvents;
  byId("history-end").hidden = !page.historyDone || !hasEvents;
}

function wantsChime(page, event) {
  return page.prefs.sound.has(page.filterKey(String(event.type || "")));
}

// Adds events to the model and shows them; `live` events may chime.
function takeEvents(page, events, { live, now = false }) {
  const changed = [];
  let ring = false;
  for (const event of events) {
    const keys = addEvent(page.model, event);
    if (keys.length === 0) continue;

    changed.push(...keys);
    applyEvent(page.channel, event);
    ring = ring || (live && wantsChime(page, event));
  }

  showCards(page.view, page.model, changed, { now });
  if (ring) chime(page.sound);
  if (events.length > 0 && page.channel.streamerId === null) refresh(page.channel);
}

function receiveEvents(page, events, first) {
  const list = page.view.list;
  // The opening backlog is not news; a screen reader should not read it out.
  if (first) list.setAttribute("aria-busy", "true");
  takeEvents(page, events, { live: !first });
  if (first) {
    list.removeAttribute("aria-busy");
    page.historyDone = events.length < PAGE_SIZE;
    showHistoryEnd(page);
  }
}

async function fetchOlder(page) {
  const cursor = page.model.oldestCursor;
  const query = new URLSearchParams({ limit: String(PAGE_SIZE), before: cursor.toString() });
  const login = encodeURIComponent(page.login);
  const response = await fetch(`/api/streamers/${login}/events?${query}`);
  if (!response.ok) throw new Error(`status ${response.status}`);
  return response.json();
}

async function loadOlder(page) {
  const button = byId("load-older");
  const note = byId("history-note");
  if (page.model.oldestCursor === null) return;

  button.disabled = true;
  try {
    const older = await fetchOlder(page);
    const events = Array.isArray(older.events) ? older.events.reverse() : [];
    page.view.limit += events.length;
    page.view.list.setAttribute("aria-busy", "true");
    takeEvents(page, events, { live: false, now: true });
    page.view.list.removeAttribute("aria-busy");

    page.historyDone = !older.next_cursor;
    note.textContent = `${events.length} older events loaded.`;
  } catch (e) {
    console.warn("streamfeed: older events not loaded", e);
    note.textContent = "Older events could not be loaded; try again.";
  } finally {
    button.disabled = false;
    showHistoryEnd(page);
  }
}

function togglePause(page) {
  const button = byId("pause");
  if (page.view.paused) resume(page.view, page.model);
  else pause(page.view);

  button.textContent = page.view.paused ? "Resume" : "Pause";
  button.classList.toggle("is-paused", page.view.paused);
}

function toggleSound(page) {
  const button = byId("sound");
  const sound = page.sound;
  if (sound.on) turnSoundOff(sound);
  else if (!turnSoundOn(sound)) button.disabled = true;

  button.setAttribute("aria-pressed", String(sound.on));
  button.textContent = sound.on ? "Sound on" : "Sound off";
}

function bindControls(page) {
  byId("pause").addEventListener("click", () => togglePause(page));
  byId("new-badge").addEventListener("click", () => togglePause(page));
  byId("sound").addEventListener("click", () => toggleSound(page));
  byId("load-older").addEventListener("click", () => loadOlder(page));

  bindDisclosure(byId("types-toggle"), byId("types-panel"));
  bindPanel(byId("types-panel"), page.prefs, () => redecorate(page.view, page.model));
}

function startLink(page, list) {
  let greetings = 0;
  const link = createLink(list.dataset.wsPath, byId("feed-status"), {
    cursor: () => page.model.newestCursor,
    onEvents: (events, first) => receiveEvents(page, events, first),
    // After a reconnect the subscriptions may have changed meanwhile.
    onConnected: () => greetings++ > 0 && refresh(page.channel),
  });
  connect(link);
  return link;
}

function start() {
  const list = byId("feed");
  if (!list) return;

  startEmbeds();
  const page = createPage(list, readState(), loadPrefs());
  bindControls(page);
  showCounts(page);

  const link = startLink(page, list);
  keepRefreshing(page.channel);
  window.setInterval(() => refreshAges(page.view), CLOCK_TICK_MS);
  window.streamfeedDebug = {
    dropConnection: (holdMs) => dropConnection(link, holdMs),
    chimesPlayed: () => page.sound.played,
  };
}

start();
