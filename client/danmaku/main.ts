/**
 * The live-stream page served at `GET /`: a lobby (name, create or open a
 * stream, optional key), then the room — the video with danmaku over it, the
 * composer, the chat and the viewer list. The channel's creator is its
 * operator and the broadcaster; everyone else watches, and viewers relay the
 * stream to further viewers (see `relay.ts`).
 *
 * URL parameters: `c` the stream (a channel id without `#`), `k` the fan-out
 * of the relay tree (broadcaster only, default 4), `server` another
 * signaller's WebSocket URL (default: the one serving the page).
 *
 * @module
 */
import { SignallerClient, SignallerError } from "../mod.ts";
import { RtcSignaller } from "../rtc.ts";
import { newChannelId } from "../../protocol/ids.ts";
import { DanmakuLayer } from "./layer.ts";
import {
  type Danmaku,
  type DanmakuMode,
  danmakuText,
  MAX_DANMAKU,
  PALETTE,
  parsePublic,
  parseRelay,
} from "./messages.ts";
import { Coordinator, Feeder, Receiver } from "./relay.ts";
import { openSource, type Source, type SourceKind } from "./sources.ts";

// ---- small DOM helpers --------------------------------------------------

function $<T extends HTMLElement = HTMLElement>(id: string): T {
  return document.getElementById(id) as T;
}

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<Record<string, string>> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v !== undefined) el.setAttribute(k, v);
  }
  el.append(...children);
  return el;
}

let toastTimer: ReturnType<typeof setTimeout> | undefined;
function toast(text: string): void {
  const el = $("toast");
  el.textContent = text;
  el.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("show"), 3200);
}

/** A pleasant colour per peer, stable across pages. */
function hue(id: string): string {
  let n = 0;
  for (const c of id) n = (n * 31 + c.charCodeAt(0)) >>> 0;
  return `hsl(${n % 360} 70% 70%)`;
}

const app = $("app");
const params = new URLSearchParams(location.search);
const fanout = Math.min(16, Math.max(1, Number.parseInt(params.get("k") ?? "4", 10) || 4));
const serverUrl = params.get("server") ??
  `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`;

// ---- lobby ----------------------------------------------------------------

/** A stream id from a link, an id, or `#id`; undefined if it holds none. */
function streamIdFrom(text: string): string | undefined {
  return text.match(/(?:^|[?&]c=|#)([0-9a-f]{24})(?:$|[&#\s])/i)?.[1]?.toLowerCase() ??
    text.trim().match(/^[0-9a-f]{24}$/i)?.[0].toLowerCase();
}

function lobby(): void {
  const stream = streamIdFrom(params.get("c") ?? "");
  const nameInput = $<HTMLInputElement>("name");
  nameInput.value = localStorage.getItem("signaller.name") ?? "";
  if (stream) {
    $("lobby-heading").textContent = "Join the stream";
    $("lobby-lede").textContent =
      "Pick a name and you're in. Comments you send fly across everyone's screen.";
    $("title-field").hidden = true;
    $("open-form").hidden = true;
    $("go").textContent = "Join stream";
    $("key").parentElement!.querySelector("i")!.textContent = "if the stream has one";
  }
  (nameInput.value ? $<HTMLInputElement>(stream ? "go" : "stream-title") : nameInput).focus();
  const go = (opts: EnterOptions) => {
    $<HTMLButtonElement>("go").disabled = true;
    enter(opts).catch((err) => {
      $<HTMLButtonElement>("go").disabled = false;
      $("lobby-error").textContent = err instanceof Error ? err.message : String(err);
    });
  };
  if (stream && saved?.channel === "#" + stream) {
    // A reload of a page that was in this stream: straight back in.
    const { name, key, title } = saved;
    go({ channel: saved.channel, name, key, title });
  }

  $("lobby-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = nameInput.value.trim();
    if (!name) return;
    localStorage.setItem("signaller.name", name);
    const key = $<HTMLInputElement>("key").value.trim() || undefined;
    const title = $<HTMLInputElement>("stream-title").value.trim();
    const id = stream ?? newChannelId().slice(1);
    if (!stream) {
      const url = new URL(location.href);
      url.searchParams.set("c", id);
      history.replaceState(null, "", url);
    }
    go({ channel: "#" + id, name, key, title });
  });

  $("open-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = streamIdFrom($<HTMLInputElement>("open-link").value);
    if (!id) {
      $("lobby-error").textContent = "That is not a stream link or id.";
      return;
    }
    location.search = `?c=${id}`;
  });
}

// ---- identity across reloads ----------------------------------------------

interface Saved {
  id: string;
  resume: string;
  channel: string;
  name: string;
  key?: string;
  title: string;
}

/**
 * The session survives a reload of this tab — the peer id and resume token
 * (so a broadcaster keeps operator rights), name, key and title — but not a
 * duplicated tab: the entry is taken on load and written back when the page
 * is hidden.
 */
function takeSaved(): Saved | undefined {
  const raw = sessionStorage.getItem("signaller.session");
  sessionStorage.removeItem("signaller.session");
  try {
    return raw ? JSON.parse(raw) as Saved : undefined;
  } catch {
    return undefined;
  }
}

const saved = takeSaved();

// ---- the room ---------------------------------------------------------------

interface Member {
  id: string;
  name: string;
  op: boolean;
}

interface EnterOptions {
  channel: string;
  name: string;
  key?: string;
  title: string;
}

async function enter(opts: EnterOptions): Promise<void> {
  const { channel } = opts;
  const resumed = saved?.channel === channel ? saved : undefined;
  let client = new SignallerClient(serverUrl, {
    id: resumed?.id,
    resume: resumed?.resume,
    name: opts.name,
    meta: opts.title ? { title: opts.title } : {},
  });
  try {
    await client.connect();
  } catch (e) {
    if (!resumed) throw new Error(`Cannot reach the server (${(e as Error).message}).`);
    // The saved session is gone (or taken): start a fresh one.
    client = new SignallerClient(serverUrl, { name: opts.name, meta: { title: opts.title } });
    await client.connect();
  }
  let joined;
  try {
    joined = await client.join(channel, opts.key);
  } catch (e) {
    await client.close();
    if (e instanceof SignallerError && e.code === 475) {
      $<HTMLInputElement>("key").focus();
      throw new Error(opts.key ? "That key is not right." : "This stream needs a key.");
    }
    if (e instanceof SignallerError && e.code === 474) {
      throw new Error("You are banned from this stream.");
    }
    throw e;
  }
  const save = () =>
    sessionStorage.setItem(
      "signaller.session",
      JSON.stringify(
        {
          id: client.id,
          resume: client.resumeToken,
          channel,
          name: opts.name,
          key: opts.key,
          title: opts.title,
        } satisfies Partial<Saved>,
      ),
    );
  addEventListener("pagehide", save);
  new Room(client, channel, joined, opts).start();
}

type Joined = Awaited<ReturnType<SignallerClient["join"]>>;

class Room {
  client: SignallerClient;
  channel: string;
  host: string | undefined;
  isHost: boolean;
  title: string;
  members = new Map<string, Member>();
  total: number;
  layer: DanmakuLayer;
  video = $<HTMLVideoElement>("video");
  rtc: RtcSignaller;
  feeder: Feeder;
  receiver: Receiver | undefined;
  coordinator: Coordinator | undefined;
  source: Source | undefined;
  live = false;
  playingReported = false;
  hostLeft = false;
  ended = false;
  #renderQueued = false;

  constructor(client: SignallerClient, channel: string, joined: Joined, opts: EnterOptions) {
    this.client = client;
    this.channel = channel;
    this.isHost = joined.op;
    this.total = joined.total;
    for (const m of joined.members) this.members.set(m.id, { id: m.id, name: m.name, op: m.op });
    this.host = joined.op ? client.id : joined.members.find((m) => m.op)?.id;
    this.title = opts.title;
    this.layer = new DanmakuLayer($("danmaku"));
    this.rtc = new RtcSignaller(client, {
      accept: (remote, tag) => this.receiver?.accept(remote, tag) ?? false,
      onLink: (link) => this.receiver?.onLink(link),
    });
    this.feeder = new Feeder(this.rtc, () => this.renderViewers());
  }

  start(): void {
    const { client } = this;
    app.dataset.view = "room";
    app.dataset.role = this.isHost ? "host" : "viewer";
    app.dataset.self = client.id;
    $("lobby").hidden = true;
    $("room").hidden = false;
    document.title = "Signaller Live";
    this.setupControls();
    this.setupComposer();
    this.setupTabs();

    client.on("pubmsg", (e) => e.channel === this.channel && this.onPublic(e.from, e.text));
    client.on("privmsg", (e) => this.onPrivate(e.from, e.text));
    client.on("join", (e) => {
      if (e.channel !== this.channel) return;
      this.total++;
      this.members.set(e.peer.id, { id: e.peer.id, name: e.peer.name, op: false });
      if (e.peer.id === this.host) this.onHostBack();
      this.system(`${e.peer.name} joined`);
      this.renderViewers();
    });
    const gone = (peer: string, how: string) => {
      const m = this.members.get(peer);
      this.members.delete(peer);
      this.total = Math.max(0, this.total - 1);
      if (m && how) this.system(`${m.name} ${how}`);
      this.coordinator?.onLeave(peer);
      this.receiver?.onLeave(peer);
      if (peer === this.host) this.onHostGone();
      this.renderViewers();
    };
    client.on("quit", (e) => e.channel === this.channel && gone(e.peer, "left"));
    client.on("kick", (e) => {
      if (e.channel !== this.channel) return;
      if (e.peer === client.id) {
        return this.end("You were removed", "The host removed you from this stream.");
      }
      gone(e.peer, "was removed by the host");
    });
    client.on("ban", (e) => {
      if (e.channel !== this.channel) return;
      if (e.peer === client.id) {
        return this.end("You were banned", "The host banned you from this stream.");
      }
      if (this.members.has(e.peer)) gone(e.peer, "was banned by the host");
    });
    client.on("reconnecting", () => toast("Connection lost — reconnecting…"));
    client.on("resumed", ({ lost }) => {
      if (lost.includes(this.channel)) {
        this.end(
          "Disconnected",
          "You were away too long and left the stream. Join again to watch.",
        );
      } else toast("Reconnected");
    });
    client.on("close", ({ cause }) => {
      if (cause !== "user") this.end("Disconnected", "The connection to the server was closed.");
    });
    addEventListener("pagehide", () => this.leave());

    if (this.isHost) this.startHost();
    else void this.startViewer();
    void this.loadMembers();
    // Big streams send no join/quit events: the count is read again now and then.
    setInterval(() => void this.refreshCount(), 30_000);
    this.renderTitle();
    this.renderViewers();
  }

  // ---- host ---------------------------------------------------------------

  startHost(): void {
    const { client } = this;
    this.coordinator = new Coordinator(client, this.feeder, {
      fanout,
      onChange: () => this.renderViewers(),
    });
    $("studio").hidden = false;
    $("mute").hidden = true;
    this.overlay("You're not live yet", "Pick a source below and press Go live.", false);
    this.system("Your stream is ready. Share the link so people can watch.", "tip");
    $("golive").addEventListener("click", () => void (this.live ? this.stopLive() : this.goLive()));
    for (const input of document.querySelectorAll<HTMLInputElement>("input[name=source]")) {
      input.addEventListener("change", () => {
        if (this.live) void this.goLive();
      });
    }
    // After a reload the tree is new: viewers ask again for a parent.
    if (this.total > 1) void client.pubmsg(this.channel, JSON.stringify({ relay: "reset" }));
  }

  async goLive(): Promise<void> {
    const kind = document.querySelector<HTMLInputElement>("input[name=source]:checked")!
      .value as SourceKind;
    const button = $<HTMLButtonElement>("golive");
    button.disabled = true;
    let source: Source;
    try {
      source = await openSource(kind, this.title || `${this.client.name}'s stream`);
    } catch (e) {
      toast(
        kind === "pattern"
          ? `Cannot start: ${(e as Error).message}`
          : `No access to the ${kind}: ${(e as Error).message}`,
      );
      button.disabled = false;
      return;
    }
    const old = this.source;
    this.source = source;
    this.video.srcObject = source.stream;
    this.video.muted = true;
    void this.video.play().catch(() => {});
    this.feeder.setTracks(
      source.stream.getVideoTracks()[0] ?? null,
      source.stream.getAudioTracks()[0] ?? null,
    );
    old?.stop();
    // The screen share ended from the browser's own "stop sharing" button.
    source.stream.getVideoTracks()[0]?.addEventListener("ended", () => {
      if (this.source === source) void this.stopLive();
    });
    button.disabled = false;
    if (!this.live) {
      this.live = true;
      this.coordinator!.live = true;
      void this.client.pubmsg(this.channel, JSON.stringify({ live: true })).catch(() => {});
    }
    this.overlay();
    this.renderTitle();
  }

  async stopLive(): Promise<void> {
    this.source?.stop();
    this.source = undefined;
    this.video.srcObject = null;
    this.feeder.setTracks(null, null);
    this.live = false;
    this.coordinator!.live = false;
    this.overlay("You're off air", "Press Go live to start again.", false);
    this.renderTitle();
    await this.client.pubmsg(this.channel, JSON.stringify({ live: false })).catch(() => {});
  }

  // ---- viewer ---------------------------------------------------------------

  async startViewer(): Promise<void> {
    const { client } = this;
    this.overlay("Connecting to the stream…", "", true);
    if (!this.host) {
      // The host is not in the first page of members: ask for the operators.
      const info = await client.whois(this.channel as `#${string}`).catch(() => undefined);
      this.host = info?.operators[0];
    }
    const receiver = this.receiver = new Receiver(client, {
      stream: (stream) => {
        this.feeder.setTracks(
          stream?.getVideoTracks()[0] ?? null,
          stream?.getAudioTracks()[0] ?? null,
        );
        if (this.video.srcObject !== (stream ?? null)) {
          this.playingReported = false;
          this.video.srcObject = stream ?? null;
          void this.video.play().catch(() => {});
        }
      },
      route: (parent, depth, live) => {
        app.dataset.parent = parent ?? "";
        this.live = live;
        const via = parent && parent !== this.host ? this.members.get(parent)?.name : undefined;
        this.showRoute();
        $("route").textContent = depth === undefined
          ? ""
          : depth <= 1
          ? "Direct from the host"
          : `Relayed by ${via ?? "a viewer"} · ${depth} hops`;
        this.renderTitle();
        this.renderOverlay();
      },
      connected: () => this.renderOverlay(),
    });
    receiver.host = this.host;
    this.video.addEventListener("playing", () => {
      app.dataset.playing = "true";
      this.renderOverlay();
      if (!this.playingReported) {
        this.playingReported = true;
        receiver.playing();
      }
    });
    if (!this.host || !this.members.has(this.host)) {
      this.onHostGone();
      return;
    }
    this.video.muted = true;
    receiver.want();
  }

  #routeTimer: ReturnType<typeof setTimeout> | undefined;
  /** Shows where the stream comes from for a few seconds (it stays on hover). */
  showRoute(): void {
    const chip = $("route");
    chip.classList.remove("quiet");
    clearTimeout(this.#routeTimer);
    this.#routeTimer = setTimeout(() => chip.classList.add("quiet"), 6000);
  }

  onHostGone(): void {
    this.hostLeft = true;
    this.live = false;
    this.renderTitle();
    this.renderOverlay();
  }

  onHostBack(): void {
    this.hostLeft = false;
    this.receiver?.want();
    this.renderOverlay();
  }

  renderOverlay(): void {
    if (this.isHost) return;
    const hostName = this.host ? this.members.get(this.host)?.name : undefined;
    if (this.hostLeft) {
      this.overlay("The host is not here", "The stream continues when they come back.", false);
    } else if (!this.receiver?.live) {
      this.overlay(
        `Waiting for ${hostName ?? "the host"} to go live`,
        "Comments work already — say hello.",
        true,
      );
    } else if (this.video.srcObject && !this.video.paused && this.video.readyState >= 2) {
      this.overlay();
    } else {
      this.overlay("Connecting to the stream…", "", true);
    }
  }

  // ---- messages -------------------------------------------------------------

  onPublic(from: string, text: string): void {
    const msg = parsePublic(text);
    if (msg.kind === "danmaku") {
      this.layer.add({ ...msg.danmaku });
      this.chat(from, msg.danmaku);
    } else if (msg.kind === "chat") {
      this.layer.add({ text: msg.text, color: "#ffffff", mode: "scroll" });
      this.chat(from, { text: msg.text, color: "#ffffff", mode: "scroll" });
    } else if (from === this.host && msg.kind === "live") {
      this.receiver?.setLive(msg.live);
      this.live = msg.live;
      this.renderTitle();
      this.renderOverlay();
    } else if (from === this.host && msg.kind === "reset") {
      this.receiver?.want();
    }
  }

  onPrivate(from: string, text: string): void {
    const msg = parseRelay(text);
    if (!msg) return;
    if (this.coordinator) {
      const coordinator = this.coordinator;
      if (this.members.has(from)) coordinator.onMessage(from, msg);
      else void this.isMember(from).then((yes) => yes && coordinator.onMessage(from, msg));
    } else if (from === this.host) {
      if (msg.relay === "feed") this.feeder.feed(msg.child);
      else this.receiver?.onMessage(from, msg);
    }
  }

  /**
   * Whether `peer` is in the stream though no join event said so (big streams
   * send none): only members get the stream, so a key cannot be bypassed.
   */
  async isMember(peer: string): Promise<boolean> {
    const info = await this.client.whois(peer).catch(() => undefined);
    if (!info || !("channels" in info) || !info.channels.includes(this.channel)) return false;
    this.members.set(peer, { id: peer, name: info.name, op: false });
    this.renderViewers();
    return true;
  }

  // ---- chat and composer ----------------------------------------------------

  system(text: string, tag?: string): void {
    const li = h("li", { class: "sys" });
    if (tag) li.append(h("span", { class: "tag" }, tag));
    li.append(text);
    this.appendChat(li);
  }

  chat(from: string, d: Danmaku, own = false): HTMLLIElement {
    const name = own
      ? this.client.name
      : this.members.get(from)?.name ?? `viewer ${from.slice(-4)}`;
    const who = h("span", { class: "who" }, name);
    who.style.color = hue(from);
    const dot = h("span", { class: "swatch", "aria-hidden": "true" });
    dot.style.background = d.color;
    const li = h("li", {}, dot, who, d.text);
    if (from === this.host) who.append(h("span", { class: "pill pill-host" }, "host"));
    this.appendChat(li);
    return li;
  }

  appendChat(li: HTMLLIElement): void {
    const list = $("chat");
    const panel = $("panel-chat");
    const atBottom = panel.scrollHeight - panel.scrollTop - panel.clientHeight < 40;
    list.append(li);
    while (list.childElementCount > 300) list.firstElementChild!.remove();
    if (atBottom) panel.scrollTop = panel.scrollHeight;
  }

  setupComposer(): void {
    const colors = $("colors");
    PALETTE.forEach((c, i) => {
      const input = h("input", {
        type: "radio",
        name: "color",
        value: c.value,
        "aria-label": c.name,
        title: c.name,
      });
      input.style.setProperty("--swatch", c.value);
      if (i === 0) input.checked = true;
      colors.append(h("label", {}, input));
    });
    const text = $<HTMLInputElement>("dm-text");
    text.maxLength = MAX_DANMAKU;
    $("composer").addEventListener("submit", (e) => {
      e.preventDefault();
      const value = text.value.trim();
      if (!value) return;
      const d: Danmaku = {
        text: value,
        color: document.querySelector<HTMLInputElement>("input[name=color]:checked")!.value,
        mode: document.querySelector<HTMLInputElement>("input[name=mode]:checked")!
          .value as DanmakuMode,
      };
      text.value = "";
      // Your own comment shows at once; the server does not echo it back.
      this.layer.add({ ...d, own: true });
      const li = this.chat(this.client.id, d, true);
      this.client.pubmsg(this.channel, danmakuText(d)).catch((err) => {
        li.classList.add("failed");
        toast(
          err instanceof SignallerError && err.code === 263
            ? "Slow down a little — too many comments."
            : "Your comment was not sent.",
        );
      });
    });
  }

  // ---- viewers ---------------------------------------------------------------

  async loadMembers(): Promise<void> {
    // The join reply lists the first page; more pages fill the list up to 500.
    let offset: number | undefined = this.members.size;
    while (offset !== undefined && offset < 500 && offset < this.total) {
      const page: Awaited<ReturnType<SignallerClient["peers"]>> | undefined = await this.client
        .peers(this.channel, offset).catch(() => undefined);
      if (!page) break;
      for (const p of page.peers) this.members.set(p.id, { id: p.id, name: p.name, op: p.op });
      this.total = page.total;
      offset = page.next;
    }
    this.renderViewers();
  }

  async refreshCount(): Promise<void> {
    const info = await this.client.whois(this.channel as `#${string}`).catch(() => undefined);
    if (!info) return;
    this.total = info.total ?? info.members.length;
    this.renderViewers();
  }

  renderViewers(): void {
    if (this.#renderQueued) return;
    this.#renderQueued = true;
    requestAnimationFrame(() => {
      this.#renderQueued = false;
      this.#renderViewers();
    });
  }

  #renderViewers(): void {
    const hostHere = this.host !== undefined && this.members.has(this.host);
    const watching = Math.max(0, this.total - (hostHere ? 1 : 0));
    $("watching-count").textContent = String(watching);
    $("viewer-count").textContent = String(watching);
    app.dataset.viewers = String(watching);
    const tree = this.coordinator?.tree;
    if (tree) {
      let depth = 0;
      for (const n of tree.walk()) depth = Math.max(depth, n.depth);
      const direct = tree.childrenOf(tree.root).length;
      $("tree-info").textContent = tree.size === 0
        ? `Each viewer can pass the stream on to ${fanout} more.`
        : `You send to ${direct} of ${fanout} direct viewers; the rest get it relayed` +
          ` (${depth} ${depth === 1 ? "hop" : "hops"} deep${
            tree.waiting.length ? `, ${tree.waiting.length} waiting` : ""
          }).`;
    }
    const list = $("viewers");
    const items: HTMLLIElement[] = [];
    const sorted = [...this.members.values()].sort((a, b) =>
      Number(b.id === this.host) - Number(a.id === this.host) ||
      Number(b.id === this.client.id) - Number(a.id === this.client.id) ||
      a.name.localeCompare(b.name)
    );
    for (const m of sorted) {
      const avatar = h("span", { class: "avatar", "aria-hidden": "true" }, [...m.name][0] ?? "?");
      avatar.style.background = hue(m.id);
      const name = h("span", { class: "who-name" }, m.name);
      if (m.id === this.host) name.append(h("span", { class: "pill pill-host" }, "host"));
      if (m.id === this.client.id) name.append(h("span", { class: "pill" }, "you"));
      const box = h("span", { class: "who-box" }, name);
      if (tree && m.id !== this.host) {
        const parent = tree.parentOf(m.id);
        const depth = tree.depthOf(m.id);
        box.append(
          h(
            "span",
            { class: "who-sub" },
            parent === undefined
              ? "waiting for the stream"
              : parent === tree.root
              ? "direct"
              : `via ${this.members.get(parent)?.name ?? "a viewer"} · ${depth} hops`,
          ),
        );
      }
      const li = h("li", { "data-peer": m.id }, avatar, box);
      if (this.isHost && m.id !== this.client.id) {
        const kick = h(
          "button",
          { type: "button", class: "btn", "aria-label": `Kick ${m.name}` },
          "Kick",
        );
        const ban = h(
          "button",
          { type: "button", class: "btn btn-danger", "aria-label": `Ban ${m.name}` },
          "Ban",
        );
        kick.addEventListener("click", () => this.moderate("kick", m));
        ban.addEventListener("click", () => this.moderate("ban", m));
        li.append(h("span", { class: "mod" }, kick, ban));
      }
      items.push(li);
    }
    // Keep keyboard focus on the same row's button across a re-render.
    const focused = document.activeElement;
    const focusPeer = focused instanceof HTMLElement && list.contains(focused)
      ? [focused.closest("li")?.dataset.peer, focused.textContent]
      : undefined;
    list.replaceChildren(...items);
    if (focusPeer) {
      const row = list.querySelector(`li[data-peer="${focusPeer[0]}"]`);
      [...row?.querySelectorAll("button") ?? []].find((b) => b.textContent === focusPeer[1])
        ?.focus();
    }
    const hidden = this.total - this.members.size;
    $("viewers-more").textContent = hidden > 0 ? `and ${hidden} more` : "";
  }

  async moderate(action: "kick" | "ban", m: Member): Promise<void> {
    if (action === "ban" && !confirm(`Ban ${m.name}? They won't be able to come back.`)) return;
    try {
      if (action === "kick") await this.client.kick(m.id, this.channel);
      else await this.client.ban(m.id, this.channel);
      toast(`${m.name} was ${action === "kick" ? "removed" : "banned"}.`);
    } catch (e) {
      toast(`Could not ${action} ${m.name}: ${(e as Error).message}`);
    }
  }

  // ---- controls ---------------------------------------------------------------

  setupControls(): void {
    const pause = $("dm-pause");
    const hide = $("dm-hide");
    const mute = $("mute");
    const togglePause = () => {
      if (this.layer.paused) this.layer.resume();
      else this.layer.pause();
      pause.setAttribute("aria-pressed", String(this.layer.paused));
      pause.querySelector(".label")!.textContent = this.layer.paused ? "Resume" : "Pause";
    };
    const toggleHide = () => {
      const off = $("danmaku").classList.toggle("off");
      hide.setAttribute("aria-pressed", String(off));
      hide.querySelector(".label")!.textContent = off ? "Comments off" : "Comments on";
    };
    const renderMute = () => {
      mute.classList.toggle("muted", this.video.muted);
      mute.querySelector(".label")!.textContent = this.video.muted ? "Unmute" : "Mute";
    };
    const toggleMute = () => {
      this.video.muted = !this.video.muted;
      renderMute();
    };
    const fullscreen = () => {
      if (document.fullscreenElement) void document.exitFullscreen();
      else void $("stage").requestFullscreen?.().catch(() => {});
    };
    pause.addEventListener("click", togglePause);
    hide.addEventListener("click", toggleHide);
    mute.addEventListener("click", toggleMute);
    $("fullscreen").addEventListener("click", fullscreen);
    this.video.addEventListener("volumechange", renderMute);
    renderMute();
    // Single-key shortcuts, as video players have them — not while typing.
    addEventListener("keydown", (e) => {
      const t = e.target as HTMLElement;
      if (e.ctrlKey || e.metaKey || e.altKey || t.closest("input, textarea, dialog")) return;
      const key = e.key.toLowerCase();
      if (key === "p") togglePause();
      else if (key === "h") toggleHide();
      else if (key === "m" && !this.isHost) toggleMute();
      else if (key === "f") fullscreen();
      else if (key === "/" || key === "c") {
        e.preventDefault();
        $("dm-text").focus();
      } else return;
    });
    $("share").addEventListener("click", () => void this.share());
    $("leave").addEventListener("click", () => {
      this.leave();
      location.href = "/";
    });
  }

  async share(): Promise<void> {
    const url = new URL(location.href);
    url.search = `?c=${this.channel.slice(1)}`;
    try {
      await navigator.clipboard.writeText(url.href);
      toast("Link copied — send it to your viewers.");
    } catch {
      prompt("Copy this link and send it to your viewers:", url.href);
    }
  }

  setupTabs(): void {
    const tabs = [$("tab-chat"), $("tab-viewers")];
    const select = (i: number) => {
      tabs.forEach((t, j) => {
        t.setAttribute("aria-selected", String(i === j));
        t.tabIndex = i === j ? 0 : -1;
        $(t.getAttribute("aria-controls")!).hidden = i !== j;
      });
      tabs[i].focus();
    };
    tabs.forEach((t, i) => {
      t.addEventListener("click", () => select(i));
      t.addEventListener("keydown", (e) => {
        if (e.key === "ArrowRight" || e.key === "ArrowLeft") select(1 - i);
      });
    });
  }

  renderTitle(): void {
    const hostName = this.host ? this.members.get(this.host)?.name : undefined;
    const title = this.title || (hostName ? `${hostName}'s stream` : "Live stream");
    $("title").textContent = title;
    document.title = `${this.live ? "● " : ""}${title} · Signaller Live`;
    $("live-badge").hidden = !this.live;
    app.dataset.live = String(this.live);
    const label = $("golive-label");
    label.textContent = this.live ? "End stream" : "Go live";
    $("golive").classList.toggle("on", this.live);
    if (!this.isHost && !this.title && this.host) void this.loadTitle(this.host);
  }

  #titleAsked = false;
  async loadTitle(host: string): Promise<void> {
    if (this.#titleAsked) return;
    this.#titleAsked = true;
    const info = await this.client.whois(host).catch(() => undefined);
    const t = info && "meta" in info ? info.meta.title : undefined;
    if (typeof t === "string" && t) {
      this.title = t.slice(0, 60);
      this.renderTitle();
    }
  }

  overlay(title?: string, sub = "", busy = false): void {
    const el = $("overlay");
    el.classList.toggle("gone", title === undefined);
    $("overlay-title").textContent = title ?? "";
    $("overlay-sub").textContent = sub;
    $("spinner").hidden = !busy;
  }

  leave(): void {
    if (this.ended) return;
    this.ended = true;
    this.source?.stop();
    this.rtc.close();
    this.receiver?.close();
    // Best effort while the page goes away: the others see us leave at once.
    void this.client.quit(this.channel).catch(() => {});
  }

  end(title: string, text: string): void {
    this.leave();
    void this.client.close();
    $("ended-title").textContent = title;
    $("ended-text").textContent = text;
    const dialog = $<HTMLDialogElement>("ended");
    dialog.addEventListener("close", () => location.href = "/");
    if (!dialog.open) dialog.showModal();
  }
}

lobby();
