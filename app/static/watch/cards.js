// The feed's cards: which events belong together, without any DOM.
//
// Most events are a card of their own. Two kinds of happening are folded:
// - A thread: the begin, progress and end of one poll, prediction, hype
//   train, goal or charity campaign share a card, keyed by the event's own
//   id, which shows the latest state.
// - A gift bomb: Twitch sends a channel.subscription.gift with the total,
//   then one channel.subscribe with is_gift for each recipient, without
//   linking them. Gifted subs of the same tier that happened within a short
//   window of the gift join its card, up to the total.
"use strict";

import { compareKeys, sortKeyOf } from "./time.js";

export const GIFT_WINDOW_MS = 30000;
// Twitch may stamp the first recipients a moment before the gift itself.
const GIFT_EARLY_MS = 2000;

const THREAD_FAMILIES = new Set([
  "channel.poll",
  "channel.prediction",
  "channel.hype_train",
  "channel.goal",
  "channel.charity_campaign",
]);
// Donations belong to a campaign but are each somebody's own act.
const STANDALONE_TYPES = new Set(["channel.charity_campaign.donate"]);

export function createModel() {
  return {
    cards: new Map(),
    // message id -> key of the card that shows it
    owners: new Map(),
    openGifts: new Set(),
    looseGiftedSubs: new Set(),
    oldestCursor: null,
    newestCursor: null,
  };
}

function noteCursor(model, cursor) {
  if (cursor < 0n) return;
  if (model.newestCursor === null || cursor > model.newestCursor) {
    model.newestCursor = cursor;
  }
  if (model.oldestCursor === null || cursor < model.oldestCursor) {
    model.oldestCursor = cursor;
  }
}

export function threadKeyOf(event) {
  const type = String(event.type || "");
  const family = type.slice(0, type.lastIndexOf("."));
  const id = event.event?.id;
  if (!THREAD_FAMILIES.has(family) || STANDALONE_TYPES.has(type)) return null;
  return typeof id === "string" && id ? `thread:${family}:${id}` : null;
}

function isGiftedSub(event) {
  return event.type === "channel.subscribe" && event.event?.is_gift === true;
}

function tierOf(event) {
  return String(event.event?.tier ?? "1000");
}

function giftTotalOf(event) {
  const total = Number(event.event?.total);
  return Number.isInteger(total) && total > 0 ? total : 1;
}

function insertSorted(entries, entry) {
  let index = entries.findIndex((other) => compareKeys(entry.key, other.key) < 0);
  if (index === -1) index = entries.length;
  entries.splice(index, 0, entry);
}

function newCard(model, kind, key, entry) {
  const card = {
    key,
    kind,
    entries: [entry],
    head: entry,
    recipients: [],
    total: kind === "gift" ? giftTotalOf(entry.event) : 0,
    tier: tierOf(entry.event),
    revision: 1,
  };
  model.cards.set(key, card);
  model.owners.set(entry.event.message_id, key);
  return card;
}

export function cardType(card) {
  return String(card.head.event.type || "");
}

export function cardSortKey(card) {
  return card.head.key;
}

function withinGiftWindow(gift, entry) {
  const offset = entry.key.millis - gift.head.key.millis;
  return offset >= -GIFT_EARLY_MS && offset <= GIFT_WINDOW_MS;
}

function findGiftFor(model, entry) {
  let found = null;
  for (const key of model.openGifts) {
    const gift = model.cards.get(key);
    const fits = gift.tier === tierOf(entry.event) && withinGiftWindow(gift, entry);
    // With two bombs of one tier at once, the earlier gets its recipients first.
    if (fits && (!found || compareKeys(gift.head.key, found.head.key) < 0)) {
      found = gift;
    }
  }
  return found;
}

function addRecipient(model, gift, entry) {
  insertSorted(gift.recipients, entry);
  model.owners.set(entry.event.message_id, gift.key);
  if (gift.recipients.length >= gift.total) model.openGifts.delete(gift.key);
  gift.revision += 1;
}

// Gifted subs stored before their gift (or paged in after it) wait as cards
// of their own; the gift takes them over when it arrives.
function gatherLooseRecipients(model, gift) {
  const candidates = [...model.looseGiftedSubs]
    .map((key) => model.cards.get(key))
    .filter((card) => card.tier === gift.tier && withinGiftWindow(gift, card.head))
    .sort((a, b) => compareKeys(a.head.key, b.head.key));

  const gathered = [];
  for (const card of candidates) {
    if (!model.openGifts.has(gift.key)) break;
    model.cards.delete(card.key);
    model.looseGiftedSubs.delete(card.key);
    addRecipient(model, gift, card.head);
    gathered.push(card.key);
  }
  return gathered;
}

function updateThread(model, card, entry) {
  insertSorted(card.entries, entry);
  card.head = card.entries[card.entries.length - 1];
  card.revision += 1;
  model.owners.set(entry.event.message_id, card.key);
}

function addToNewCard(model, entry) {
  const event = entry.event;
  if (event.type === "channel.subscription.gift") {
    const gift = newCard(model, "gift", `gift:${event.message_id}`, entry);
    model.openGifts.add(gift.key);
    return [gift.key, ...gatherLooseRecipients(model, gift)];
  }

  const threadKey = threadKeyOf(event);
  const key = threadKey || `event:${event.message_id}`;
  newCard(model, threadKey ? "thread" : "single", key, entry);
  if (isGiftedSub(event)) model.looseGiftedSubs.add(key);
  return [key];
}

// Adds one event from the server; returns the keys of the cards it created,
// changed or removed (none for a repeat or something that is not an event).
export function addEvent(model, event) {
  if (typeof event?.message_id !== "string") return [];

  const entry = { event, key: sortKeyOf(event) };
  noteCursor(model, entry.key.cursor);
  if (model.owners.has(event.message_id)) return [];

  const gift = isGiftedSub(event) ? findGiftFor(model, entry) : null;
  if (gift) {
    addRecipient(model, gift, entry);
    return [gift.key];
  }

  const thread = model.cards.get(threadKeyOf(event));
  if (thread) {
    updateThread(model, thread, entry);
    return [thread.key];
  }
  return addToNewCard(model, entry);
}

export function removeCard(model, key) {
  const card = model.cards.get(key);
  if (!card) return;

  for (const entry of [...card.entries, ...card.recipients]) {
    model.owners.delete(entry.event.message_id);
  }
  model.cards.delete(key);
  model.openGifts.delete(key);
  model.looseGiftedSubs.delete(key);
}
