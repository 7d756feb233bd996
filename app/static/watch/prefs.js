// The viewer's choices of event types, remembered per browser.
//
// "hidden" holds the types the feed filters out, so a type Twitch adds later
// is shown until the viewer hides it; "highlight" and "sound" hold the types
// chosen for a visual highlight and a chime, none by default.
"use strict";

const STORAGE_KEY = "streamfeed.watch.prefs.v1";
const LISTS = ["hidden", "highlight", "sound"];

export function loadPrefs() {
  let saved = {};
  try {
    saved = JSON.parse(window.localStorage.getItem(STORAGE_KEY) || "{}") || {};
  } catch (e) {
    // Storage can be switched off or hold something unreadable; start afresh.
    console.warn("streamfeed: preferences not readable, using defaults", e);
  }

  const prefs = {};
  for (const name of LISTS) {
    const values = Array.isArray(saved[name]) ? saved[name] : [];
    prefs[name] = new Set(values.filter((value) => typeof value === "string"));
  }
  return prefs;
}

export function savePrefs(prefs) {
  const plain = {};
  for (const name of LISTS) plain[name] = [...prefs[name]].sort();
  try {
    window.localStorage.setItem(STORAGE_KEY, JSON.stringify(plain));
  } catch (e) {
    console.warn("streamfeed: preferences not saved", e);
  }
}
