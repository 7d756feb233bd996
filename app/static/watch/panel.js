// The "Event types" panel: per type, whether the feed shows it, highlights
// it and chimes for it. Every change is saved for this browser at once.
"use strict";

import { savePrefs } from "./prefs.js";

// Each checkbox says which list it edits; "show" is the inverse of hidden.
function isChecked(prefs, pref, type) {
  return pref === "show" ? !prefs.hidden.has(type) : prefs[pref].has(type);
}

function setChecked(prefs, pref, type, checked) {
  if (pref === "show") {
    if (checked) prefs.hidden.delete(type);
    else prefs.hidden.add(type);
  } else if (checked) {
    prefs[pref].add(type);
  } else {
    prefs[pref].delete(type);
  }
}

function typeBoxes(panel, group) {
  const scope = group ? `[data-group="${CSS.escape(group)}"] ` : "";
  return [...panel.querySelectorAll(`${scope}input[data-pref]`)];
}

function showGroupState(panel, toggle) {
  const boxes = typeBoxes(panel, toggle.dataset.group).filter(
    (box) => box.dataset.pref === "show",
  );
  const shown = boxes.filter((box) => box.checked).length;
  toggle.checked = shown === boxes.length;
  toggle.indeterminate = shown > 0 && shown < boxes.length;
}

export function bindPanel(panel, prefs, onChange) {
  const toggles = [...panel.querySelectorAll("input.group-show")];
  const refreshGroups = () => toggles.forEach((toggle) => showGroupState(panel, toggle));

  for (const box of typeBoxes(panel)) {
    box.checked = isChecked(prefs, box.dataset.pref, box.dataset.type);
    box.addEventListener("change", () => {
      setChecked(prefs, box.dataset.pref, box.dataset.type, box.checked);
      savePrefs(prefs);
      refreshGroups();
      onChange();
    });
  }

  for (const toggle of toggles) {
    toggle.addEventListener("change", () => {
      for (const box of typeBoxes(panel, toggle.dataset.group)) {
        if (box.dataset.pref !== "show") continue;
        box.checked = toggle.checked;
        setChecked(prefs, "show", box.dataset.type, toggle.checked);
      }
      savePrefs(prefs);
      refreshGroups();
      onChange();
    });
  }
  refreshGroups();
}

export function bindDisclosure(button, panel) {
  button.addEventListener("click", () => {
    const open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    panel.hidden = !open;
  });
}
