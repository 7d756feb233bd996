// A short chime made with Web Audio, for the types the viewer chose.
//
// Browsers only let a page make sound after the viewer interacted with it,
// so the chime stays muted until the viewer turns sound on with a click.
"use strict";

const MIN_GAP_MS = 800;
const NOTES_HZ = [660, 880];
const NOTE_SECONDS = 0.16;
const VOLUME = 0.12;

export function createSound() {
  return { context: null, on: false, played: 0, lastAt: -Infinity };
}

// Call from a click handler: that is what lets the audio context start.
export function turnSoundOn(sound) {
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!Context) return false;

  sound.context = sound.context || new Context();
  sound.context.resume();
  sound.on = true;
  return true;
}

export function turnSoundOff(sound) {
  sound.on = false;
}

function playNote(context, frequency, startAt) {
  const oscillator = context.createOscillator();
  const gain = context.createGain();
  oscillator.type = "sine";
  oscillator.frequency.value = frequency;

  // A quick rise and an exponential fall, so the note does not click.
  gain.gain.setValueAtTime(0.0001, startAt);
  gain.gain.exponentialRampToValueAtTime(VOLUME, startAt + 0.02);
  gain.gain.exponentialRampToValueAtTime(0.0001, startAt + NOTE_SECONDS);

  oscillator.connect(gain).connect(context.destination);
  oscillator.start(startAt);
  oscillator.stop(startAt + NOTE_SECONDS + 0.02);
}

// Plays at most one chime per MIN_GAP_MS, however many events arrive.
export function chime(sound) {
  const now = performance.now();
  if (!sound.on || !sound.context || now - sound.lastAt < MIN_GAP_MS) return false;

  sound.lastAt = now;
  const startAt = sound.context.currentTime;
  NOTES_HZ.forEach((frequency, index) => {
    playNote(sound.context, frequency, startAt + index * NOTE_SECONDS);
  });
  sound.played += 1;
  return true;
}
