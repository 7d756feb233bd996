// The feed list on the page: cards newest first, filters, pause.
//
// The view follows the model card by card. While paused, cards that are
// new or changed are held back and counted, and the list stays as it is
// until the viewer resumes; nothing is dropped meanwhile.
"use strict";

import { cardSortKey, removeCard } from "./cards.js";
import { renderCard } from "./render.js";
import { compareKeys, describeAge } from "./time.js";

export const MAX_CARDS = 500;

// hooks: labelOf(type), isVisible(card), isHighlighted(card), onChange(view)
export function createFeedView(list, hooks) {
  return {
    list,
    hooks,
    items: [],
    byKey: new Map(),
    paused: false,
    held: new Set(),
    limit: MAX_CARDS,
  };
}

function decorate(view, item, card) {
  item.element.hidden = !view.hooks.isVisible(card);
  item.element.classList.toggle("is-highlighted", view.hooks.isHighlighted(card));
}

function place(view, item) {
  let index = view.items.findIndex((other) => compareKeys(item.sortKey, other.sortKey) > 0);
  if (index === -1) index = view.items.length;
  view.list.insertBefore(item.element, view.items[index]?.element ?? null);
  view.items.splice(index, 0, item);
}

function unplace(view, item) {
  view.items.splice(view.items.indexOf(item), 1);
  item.element.remove();
}

function openParts(element) {
  return element.parts.filter((part) => !part.panel.hidden).map((part) => part.panel.className);
}

function build(view, card, keepOpen = []) {
  const element = renderCard(card, view.hooks.labelOf);
  for (const part of element.parts) {
    if (keepOpen.includes(part.panel.className)) part.open();
  }
  return {
    key: card.key,
    sortKey: cardSortKey(card),
    revision: card.revision,
    element,
    time: element.querySelector("time"),
  };
}

function insertItem(view, card) {
  const item = build(view, card);
  decorate(view, item, card);
  place(view, item);
  view.byKey.set(card.key, item);
}

// A changed card is rebuilt in place, keeping its open parts open, and
// moves when its latest update changed when it happened.
function updateItem(view, old, card) {
  const item = build(view, card, openParts(old.element));
  decorate(view, item, card);
  old.element.replaceWith(item.element);
  view.items[view.items.indexOf(old)] = item;
  view.byKey.set(card.key, item);

  if (compareKeys(item.sortKey, old.sortKey) !== 0) {
    unplace(view, item);
    place(view, item);
  }
}

function apply(view, model, key) {
  const card = model.cards.get(key);
  const item = view.byKey.get(key);
  if (!card) {
    if (item) unplace(view, item);
    view.byKey.delete(key);
  } else if (!item) {
    insertItem(view, card);
  } else if (item.revision !== card.revision) {
    updateItem(view, item, card);
  }
}

// Shows what changed in these cards; `now` skips the pause, for cards the
// viewer asked for (older pages go below and move nothing in view).
export function showCards(view, model, keys, { now = false } = {}) {
  for (const key of keys) {
    if (view.paused && (!now || view.held.has(key))) view.held.add(key);
    else apply(view, model, key);
  }
  trim(view, model);
  view.hooks.onChange(view);
}

function trim(view, model) {
  while (view.items.length > view.limit) {
    const oldest = view.items[view.items.length - 1];
    unplace(view, oldest);
    view.byKey.delete(oldest.key);
    removeCard(model, oldest.key);
  }
}

export function pause(view) {
  view.paused = true;
  view.hooks.onChange(view);
}

export function resume(view, model) {
  view.paused = false;
  const held = [...view.held];
  view.held.clear();
  showCards(view, model, held);
}

// Cards that arrived during the pause, as many as the filters let through.
export function countHeld(view, model) {
  let count = 0;
  for (const key of view.held) {
    const card = model.cards.get(key);
    if (card && !view.byKey.has(key) && view.hooks.isVisible(card)) count += 1;
  }
  return count;
}

export function countVisible(view) {
  return view.items.filter((item) => !item.element.hidden).length;
}

export function redecorate(view, model) {
  for (const item of view.items) decorate(view, item, model.cards.get(item.key));
  view.hooks.onChange(view);
}

export function refreshAges(view) {
  const now = Date.now();
  for (const item of view.items) {
    const age = describeAge(item.sortKey.millis, now);
    if (item.time.textContent !== age) item.time.textContent = age;
  }
}
