// Live events of one conversation over its WebSocket, with reconnect and resume.
//
// The server replays the stored events after `latest_event_id` and then forwards live ones,
// without gaps. So the stream only has to remember the highest id it delivered and
// reconnect with it: nothing is lost across a drop, and an event seen twice (a replay
// overlapping what arrived just before the drop) is delivered once. Frames without an id
// are status notices (`{"status_update": true, "type": "error", "message"}`).

import type { AgentEvent } from "../api/types";

export type StreamStatus = "connecting" | "open" | "reconnecting" | "closed";

export interface Notice {
  type: string;
  id?: string;
  message: string;
}

/** The part of `WebSocket` the stream uses (so tests can pass a fake). */
export interface SocketLike {
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  close(code?: number, reason?: string): void;
}

export interface StreamHandlers {
  onEvent(event: AgentEvent): void;
  onStatus?(status: StreamStatus): void;
  onNotice?(notice: Notice): void;
}

export interface StreamOptions {
  /** Builds the socket for a URL (default: the browser's `WebSocket`). */
  connect?: (url: string) => SocketLike;
  /** Schedules a reconnect (default: `setTimeout`). */
  schedule?: (fn: () => void, ms: number) => unknown;
  cancel?: (handle: unknown) => void;
  /** Base of the URL, e.g. `ws://host:3000` (default: from `location`). */
  origin?: string;
}

/** `ws(s)://host` for the page's own origin. */
export function wsOrigin(location: { protocol: string; host: string }): string {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
}

/** The socket URL resuming after `latestId` (-1: everything). */
export function socketUrl(origin: string, conversationId: string, latestId: number): string {
  return `${origin}/api/conversations/${encodeURIComponent(conversationId)}/events/socket?latest_event_id=${latestId}`;
}

/**
 * Close code of a server that is restarting (a deploy): it has handed its conversations to
 * other servers, so the stream reconnects at once (the load balancer picks a live one).
 */
export const SERVICE_RESTART = 1012;

/** Delay before reconnect attempt `attempt` (0-based): 0.5 s doubling up to 10 s. */
export function reconnectDelay(attempt: number): number {
  return Math.min(500 * 2 ** attempt, 10_000);
}

/** What one frame is: an event, a notice, or nothing we understand. */
export function parseFrame(
  data: unknown,
): { event: AgentEvent } | { notice: Notice } | undefined {
  if (typeof data !== "string") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const record = value as Record<string, unknown>;
  if (typeof record.id === "number" && ("action" in record || "observation" in record)) {
    return { event: record as unknown as AgentEvent };
  }
  if (record.status_update === true) {
    return {
      notice: {
        type: typeof record.type === "string" ? record.type : "info",
        id: typeof record.id === "string" ? record.id : undefined,
        message: typeof record.message === "string" ? record.message : "",
      },
    };
  }
  return undefined;
}

export class EventStream {
  private socket: SocketLike | undefined;
  private attempt = 0;
  private timer: unknown;
  private disposed = false;
  private latest: number;
  private readonly connectFn: (url: string) => SocketLike;
  private readonly schedule: (fn: () => void, ms: number) => unknown;
  private readonly cancel: (handle: unknown) => void;
  private readonly origin: string;

  constructor(
    private readonly conversationId: string,
    private readonly handlers: StreamHandlers,
    options: StreamOptions = {},
    /** Resume after this id (-1: from the start). */
    latestId = -1,
  ) {
    this.latest = latestId;
    this.connectFn = options.connect ?? ((url) => new WebSocket(url) as unknown as SocketLike);
    this.schedule = options.schedule ?? ((fn, ms) => setTimeout(fn, ms));
    this.cancel = options.cancel ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
    this.origin = options.origin ?? wsOrigin(window.location);
  }

  /** The highest event id delivered so far. */
  get latestId(): number {
    return this.latest;
  }

  start(): void {
    this.open("connecting");
  }

  /** Closes for good: no reconnect. */
  dispose(): void {
    this.disposed = true;
    if (this.timer !== undefined) this.cancel(this.timer);
    this.timer = undefined;
    const socket = this.socket;
    this.socket = undefined;
    if (socket) {
      socket.onclose = null;
      socket.close(1000, "leaving");
    }
    this.handlers.onStatus?.("closed");
  }

  /** Drops the current socket and reconnects now (e.g. after the page was hidden). */
  reconnectNow(): void {
    if (this.disposed) return;
    if (this.timer !== undefined) this.cancel(this.timer);
    this.timer = undefined;
    const socket = this.socket;
    this.socket = undefined;
    if (socket) {
      socket.onclose = null;
      socket.close(1000, "reconnecting");
    }
    this.attempt = 0;
    this.open("reconnecting");
  }

  private open(status: StreamStatus): void {
    this.handlers.onStatus?.(status);
    const socket = this.connectFn(socketUrl(this.origin, this.conversationId, this.latest));
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.handlers.onStatus?.("open");
    };
    socket.onmessage = (message) => this.onFrame(message.data);
    socket.onerror = () => {
      // A close always follows; the reconnect happens there.
    };
    socket.onclose = (ev) => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      this.scheduleReconnect(ev?.code === SERVICE_RESTART);
    };
  }

  private onFrame(data: unknown): void {
    const frame = parseFrame(data);
    if (!frame) return;
    if ("notice" in frame) {
      this.handlers.onNotice?.(frame.notice);
      return;
    }
    if (frame.event.id <= this.latest) return;
    this.latest = frame.event.id;
    this.handlers.onEvent(frame.event);
  }

  /** `now`: the server asked for it (1012); not a failure, so no back-off. */
  private scheduleReconnect(now = false): void {
    if (this.disposed) return;
    this.handlers.onStatus?.("reconnecting");
    const delay = now ? 0 : reconnectDelay(this.attempt);
    if (!now) this.attempt += 1;
    this.timer = this.schedule(() => {
      this.timer = undefined;
      if (!this.disposed) this.open("reconnecting");
    }, delay);
  }
}
