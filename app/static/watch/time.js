// Times of events: sort keys, ages ("2 min ago") and exact local times.
"use strict";

function toCursor(value) {
  return /^\d+$/.test(String(value)) ? BigInt(value) : -1n;
}

// The key events and cards are ordered by: when it happened, then arrival.
export function sortKeyOf(event) {
  return stampKey(event?.occurred_at || event?.received_at || "", event?.cursor);
}

export function stampKey(stamp, cursor) {
  const fraction = (/\.(\d+)/.exec(stamp || "") || ["", ""])[1];

  return {
    millis: Date.parse(stamp) || 0,
    // Date keeps milliseconds only, while stored times carry microseconds;
    // without the rest, events in the same millisecond would tie.
    subMillis: Number(fraction.slice(3, 9).padEnd(6, "0")),
    cursor: toCursor(cursor),
  };
}

export function compareKeys(a, b) {
  return (
    a.millis - b.millis ||
    a.subMillis - b.subMillis ||
    (a.cursor > b.cursor) - (a.cursor < b.cursor)
  );
}

export function describeAge(millis, now) {
  const seconds = Math.max(0, Math.floor((now - millis) / 1000));
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;

  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;

  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} d ago`;
}

export function formatExact(millis) {
  return new Date(millis).toLocaleString(undefined, {
    dateStyle: "medium",
    timeStyle: "medium",
  });
}

const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

export function isTimestamp(value) {
  return typeof value === "string" && RFC3339.test(value) && !isNaN(Date.parse(value));
}
