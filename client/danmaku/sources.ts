/**
 * What a broadcaster can stream: the camera (and microphone), the screen, or
 * a generated test pattern — colour bars, a moving sweep, a clock and a beep
 * once a second — drawn on a canvas, so a stream can go live on a machine
 * with no devices at all.
 */

/** Where the picture comes from. */
export type SourceKind = "pattern" | "camera" | "screen";

/** An open source: its stream, and how to release the devices. */
export interface Source {
  kind: SourceKind;
  stream: MediaStream;
  stop(): void;
}

/** Opens a source; may ask the user for permission (camera, screen). */
export async function openSource(kind: SourceKind, label: string): Promise<Source> {
  if (kind === "pattern") return testPattern(label);
  const stream = kind === "camera"
    ? await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 1280 }, height: { ideal: 720 } },
      audio: { echoCancellation: true, noiseSuppression: true },
    })
    : await navigator.mediaDevices.getDisplayMedia({ video: true, audio: true });
  return { kind, stream, stop: () => stream.getTracks().forEach((t) => t.stop()) };
}

const BARS = ["#c0c0c0", "#c0c000", "#00c0c0", "#00c000", "#c000c0", "#c00000", "#0000c0"];

/** A 1280×720 canvas test pattern at 30 frames a second, with a 1 kHz beep each second. */
function testPattern(label: string): Source {
  const canvas = document.createElement("canvas");
  canvas.width = 1280;
  canvas.height = 720;
  const g = canvas.getContext("2d")!;
  const started = performance.now();
  let audio: AudioContext | undefined;
  let beeps: ReturnType<typeof setInterval> | undefined;
  const draw = () => {
    const t = performance.now() - started;
    const { width: w, height: h } = canvas;
    const barH = h * 0.62;
    BARS.forEach((c, i) => {
      g.fillStyle = c;
      g.fillRect(Math.floor(i * w / BARS.length), 0, Math.ceil(w / BARS.length), barH);
    });
    g.fillStyle = "#101018";
    g.fillRect(0, barH, w, h - barH);
    // A sweep across the lower band: motion makes a frozen stream obvious.
    const x = (t / 4000 % 1) * w;
    const grad = g.createLinearGradient(x - 160, 0, x, 0);
    grad.addColorStop(0, "rgba(120,140,255,0)");
    grad.addColorStop(1, "rgba(120,140,255,0.9)");
    g.fillStyle = grad;
    g.fillRect(x - 160, barH, 160, h - barH);
    // A flash in sync with the beep, for checking audio/video sync.
    const flash = (audio ? audio.currentTime % 1 : t % 1000 / 1000) < 0.1;
    g.fillStyle = flash ? "#ffffff" : "#2a2a3a";
    g.beginPath();
    g.arc(w - 90, barH + (h - barH) / 2, 34, 0, Math.PI * 2);
    g.fill();
    g.fillStyle = "#ffffff";
    g.textBaseline = "middle";
    g.font = "600 64px system-ui, sans-serif";
    const clock = new Date().toLocaleTimeString([], { hour12: false });
    g.fillText(`${clock}.${String(Math.floor(t % 1000 / 100))}`, 48, barH + (h - barH) * 0.4);
    g.font = "28px system-ui, sans-serif";
    g.fillStyle = "#aab";
    g.fillText(`${label} · test pattern`, 48, barH + (h - barH) * 0.75);
  };
  draw();
  // A timer, not animation frames: frames stop in a hidden tab, timers only slow down.
  const timer = setInterval(draw, 1000 / 30);
  const stream = canvas.captureStream(30);
  try {
    audio = new AudioContext();
    const osc = audio.createOscillator();
    osc.frequency.value = 1000;
    const gain = audio.createGain();
    gain.gain.value = 0;
    // A 100 ms beep at the start of every second, scheduled ahead on the audio clock.
    const ctx = audio;
    let next = Math.ceil(ctx.currentTime) + 1;
    const schedule = () => {
      for (; next < ctx.currentTime + 60; next++) {
        gain.gain.setValueAtTime(0.08, next);
        gain.gain.setValueAtTime(0, next + 0.1);
      }
    };
    schedule();
    beeps = setInterval(schedule, 20_000);
    const dest = audio.createMediaStreamDestination();
    osc.connect(gain).connect(dest);
    osc.start();
    void audio.resume();
    for (const track of dest.stream.getAudioTracks()) stream.addTrack(track);
  } catch {
    // No audio here: the pattern is picture only.
  }
  return {
    kind: "pattern",
    stream,
    stop: () => {
      clearInterval(timer);
      clearInterval(beeps);
      stream.getTracks().forEach((t) => t.stop());
      void audio?.close();
    },
  };
}
