// The player and chat columns: Twitch's frames when Twitch can be reached.
//
// Twitch's embed script is loaded first as a probe. Without internet access
// it fails to load, and each column says why it is empty instead of
// showing the browser's error page inside a frame.
"use strict";

const PROBE_URL = "https://player.twitch.tv/js/embed/v1.js";
const PROBE_TIMEOUT_MS = 15000;

function showFrames(slots) {
  for (const slot of slots) {
    const frame = document.createElement("iframe");
    frame.src = slot.dataset.src;
    frame.title = slot.dataset.title;
    if (slot.dataset.allowfullscreen) frame.allowFullscreen = true;
    slot.replaceChildren(frame);
    slot.dataset.state = "embedded";
  }
}

function showOffline(slots) {
  for (const slot of slots) {
    const note = slot.parentElement.querySelector(".embed-offline");
    slot.dataset.state = "offline";
    slot.hidden = true;
    if (note) note.hidden = false;
  }
}

export function startEmbeds() {
  const slots = [...document.querySelectorAll(".embed-slot")];
  if (slots.length === 0) return;

  let settled = false;
  const settle = (reachable) => {
    if (settled) return;
    settled = true;
    if (reachable) showFrames(slots);
    else showOffline(slots);
  };

  const probe = document.createElement("script");
  probe.src = PROBE_URL;
  probe.async = true;
  probe.addEventListener("load", () => settle(true));
  probe.addEventListener("error", () => settle(false));
  window.setTimeout(() => settle(false), PROBE_TIMEOUT_MS);
  document.head.append(probe);
}
