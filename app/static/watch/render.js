// The DOM of one card and of its detail view.
//
// Every string from the server goes in as text, never as markup: summaries
// and payloads quote chat messages, reward titles and names that viewers
// typed.
"use strict";

import { cardType } from "./cards.js";
import { describeAge, formatExact, isTimestamp } from "./time.js";

export function createElement(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

export function typeClass(type) {
  const slug = String(type || "unknown")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-");
  return `type-${slug}`;
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

function nameOf(event) {
  const body = event.event || {};
  return String(body.user_name || body.user_login || "Anonymous");
}

function renderTime(key) {
  const time = createElement("time", "event-time");
  time.dateTime = new Date(key.millis).toISOString();
  time.title = formatExact(key.millis);
  time.textContent = describeAge(key.millis, Date.now());

  // The age changes every second; inside a live region a screen reader
  // would announce each change, so it is hidden from assistive technology.
  time.setAttribute("aria-hidden", "true");
  return time;
}

let panelCount = 0;

// A button that shows and hides a panel below it; the panel is built on
// first opening, since most cards are never opened.
function disclosure(label, className, fill) {
  const button = createElement("button", "disclosure", label);
  const panel = createElement("div", className);
  panelCount += 1;
  panel.id = `event-panel-${panelCount}`;
  panel.hidden = true;
  button.type = "button";
  button.setAttribute("aria-expanded", "false");
  button.setAttribute("aria-controls", panel.id);

  button.addEventListener("click", () => setOpen(button, panel, fill, panel.hidden));
  return { button, panel, open: () => setOpen(button, panel, fill, true) };
}

function setOpen(button, panel, fill, open) {
  if (open && !panel.dataset.filled) {
    panel.dataset.filled = "true";
    fill(panel);
  }
  panel.hidden = !open;
  button.setAttribute("aria-expanded", String(open));
}

function progressText(card) {
  const count = card.recipients.length;
  if (count >= card.total) return plural(count, "recipient");
  return `${count} of ${plural(card.total, "recipient")} so far`;
}

function fillRecipients(panel, card) {
  const names = createElement("ol", "recipient-list");
  for (const entry of card.recipients) {
    names.append(createElement("li", "", nameOf(entry.event)));
  }
  panel.append(names);
}

function fillDetails(panel, card) {
  panel.append(renderEventDetails(card.head.event));
  if (card.kind === "thread" && card.entries.length > 1) {
    const first = formatExact(card.entries[0].key.millis);
    const note = `Latest of ${card.entries.length} updates; the first came ${first}.`;
    panel.append(createElement("p", "details-note", note));
  }
}

function renderMeta(card, labelOf, parts) {
  const meta = createElement("div", "event-meta");
  const type = cardType(card);
  const label = createElement("span", "event-type", labelOf(type));
  label.title = type;
  meta.append(label);

  if (card.kind === "thread" && card.entries.length > 1) {
    const updates = plural(card.entries.length, "update");
    meta.append(createElement("span", "event-updates", updates));
  }
  if (card.head.event.backfilled) {
    const note = createElement("span", "event-backfilled", "backfilled");
    note.title = "Fetched from Twitch when the channel was connected, not delivered live";
    meta.append(note);
  }
  for (const part of parts) meta.append(part.button);
  meta.append(renderTime(card.head.key));
  return meta;
}

// Builds the card's list item. `parts` lets the view reopen what was open.
export function renderCard(card, labelOf) {
  const head = card.head.event;
  const kindClass = `event-${card.kind}`;
  const item = createElement("li", `event ${typeClass(cardType(card))} ${kindClass}`);
  item.dataset.messageId = card.entries[0].event.message_id;
  item.dataset.cardKey = card.key;
  item.dataset.type = cardType(card);
  item.append(createElement("p", "event-summary", String(head.summary ?? "")));

  const parts = [];
  if (card.kind === "gift") {
    item.append(createElement("p", "event-progress", progressText(card)));
    if (card.recipients.length > 0) {
      const fill = (panel) => fillRecipients(panel, card);
      parts.push(disclosure("Recipients", "event-recipients", fill));
    }
  }
  parts.push(disclosure("Details", "event-details", (panel) => fillDetails(panel, card)));

  item.append(renderMeta(card, labelOf, parts));
  for (const part of parts) item.append(part.panel);
  item.parts = parts;
  return item;
}

function addRow(list, term, value) {
  list.append(createElement("dt", "", term), renderValue(value));
}

export function renderEventDetails(event) {
  const list = createElement("dl", "fields");
  addRow(list, "type", `${event.type ?? ""} (version ${event.version ?? "?"})`);
  addRow(list, "message id", event.message_id);
  addRow(list, "cursor", event.cursor);
  addRow(list, "happened", event.occurred_at);
  addRow(list, "received", event.received_at);
  addRow(list, "event", event.event ?? null);
  return list;
}

function renderScalar(value) {
  if (value === null || value === undefined) return createElement("dd", "field-none", "none");
  if (typeof value === "boolean") return createElement("dd", "field-flag", value ? "yes" : "no");

  const text = String(value);
  const cell = createElement("dd", "field-value", text);
  if (isTimestamp(value)) {
    cell.append(createElement("span", "field-local", ` (${formatExact(Date.parse(value))})`));
  }
  return cell;
}

// One payload value as a definition: objects become nested lists of their
// fields, arrays numbered lists, and everything else text.
function renderValue(value) {
  if (Array.isArray(value)) {
    const cell = createElement("dd", "field-array");
    if (value.length === 0) cell.textContent = "empty list";
    else cell.append(renderArray(value));
    return cell;
  }
  if (value && typeof value === "object") {
    const cell = createElement("dd", "field-object");
    cell.append(renderObject(value));
    return cell;
  }
  return renderScalar(value);
}

function renderObject(object) {
  const list = createElement("dl", "fields");
  const keys = Object.keys(object);
  if (keys.length === 0) list.append(createElement("dd", "field-none", "no fields"));
  for (const key of keys) addRow(list, key, object[key]);
  return list;
}

function renderArray(values) {
  const list = createElement("ol", "field-items");
  values.forEach((value) => {
    const item = createElement("li");
    const wrapper = createElement("dl", "fields");
    wrapper.append(renderValue(value));
    item.append(wrapper);
    list.append(item);
  });
  return list;
}
