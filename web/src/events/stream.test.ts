import { describe, expect, it } from "vitest";
import { EventStream, parseFrame, reconnectDelay, socketUrl, wsOrigin, type SocketLike } from "./stream";
import type { AgentEvent } from "../api/types";

class FakeSocket implements SocketLike {
  onopen: SocketLike["onopen"] = null;
  onmessage: SocketLike["onmessage"] = null;
  onclose: SocketLike["onclose"] = null;
  onerror: SocketLike["onerror"] = null;
  closed = false;
  constructor(readonly url: string) {}
  close() {
    this.closed = true;
  }
  // Test helpers
  open() {
    this.onopen?.({});
  }
  receive(value: unknown) {
    this.onmessage?.({ data: typeof value === "string" ? value : JSON.stringify(value) });
  }
  drop(code = 1006) {
    this.onclose?.({ code, reason: "" });
  }
}

function harness(latestId = -1) {
  const sockets: FakeSocket[] = [];
  const timers: { fn: () => void; ms: number }[] = [];
  const events: AgentEvent[] = [];
  const statuses: string[] = [];
  const notices: string[] = [];
  const stream = new EventStream(
    "abc",
    {
      onEvent: (e) => events.push(e),
      onStatus: (s) => statuses.push(s),
      onNotice: (n) => notices.push(n.message),
    },
    {
      origin: "ws://host",
      connect: (url) => {
        const socket = new FakeSocket(url);
        sockets.push(socket);
        return socket;
      },
      schedule: (fn, ms) => timers.push({ fn, ms }),
      cancel: () => undefined,
    },
    latestId,
  );
  return { stream, sockets, timers, events, statuses, notices };
}

const event = (id: number) => ({ id, timestamp: "", source: "agent", message: "", action: "message", args: { content: `m${id}` } });

describe("socket URLs and delays", () => {
  it("builds the socket URL with the resume point", () => {
    expect(socketUrl("wss://example.com", "a b", 41)).toBe(
      "wss://example.com/api/conversations/a%20b/events/socket?latest_event_id=41",
    );
    expect(wsOrigin({ protocol: "https:", host: "x.io" })).toBe("wss://x.io");
    expect(wsOrigin({ protocol: "http:", host: "localhost:3000" })).toBe("ws://localhost:3000");
  });

  it("backs off from half a second to at most ten", () => {
    expect([0, 1, 2, 3, 4, 5, 10].map(reconnectDelay)).toEqual([500, 1000, 2000, 4000, 8000, 10000, 10000]);
  });
});

describe("parseFrame", () => {
  it("tells events, notices and junk apart", () => {
    expect(parseFrame(JSON.stringify(event(3)))).toEqual({ event: event(3) });
    expect(parseFrame('{"status_update": true, "type": "error", "id": "STATUS$ERROR", "message": "boom"}')).toEqual({
      notice: { type: "error", id: "STATUS$ERROR", message: "boom" },
    });
    expect(parseFrame("not json")).toBeUndefined();
    expect(parseFrame('{"id": 1}')).toBeUndefined();
    expect(parseFrame(new ArrayBuffer(2))).toBeUndefined();
  });
});

describe("EventStream", () => {
  it("starts from the beginning and delivers events in order", () => {
    const h = harness();
    h.stream.start();
    expect(h.sockets[0].url).toBe("ws://host/api/conversations/abc/events/socket?latest_event_id=-1");
    h.sockets[0].open();
    h.sockets[0].receive(event(0));
    h.sockets[0].receive(event(1));
    expect(h.events.map((e) => e.id)).toEqual([0, 1]);
    expect(h.stream.latestId).toBe(1);
    expect(h.statuses).toEqual(["connecting", "open"]);
  });

  it("reconnects after a drop, resuming after the last event it delivered", () => {
    const h = harness();
    h.stream.start();
    h.sockets[0].open();
    h.sockets[0].receive(event(0));
    h.sockets[0].receive(event(1));
    h.sockets[0].drop();
    expect(h.statuses.at(-1)).toBe("reconnecting");
    expect(h.timers).toHaveLength(1);
    expect(h.timers[0].ms).toBe(500);
    h.timers[0].fn();
    expect(h.sockets[1].url).toMatch(/latest_event_id=1$/);
    h.sockets[1].open();
    // A replay overlapping what was already delivered is not delivered twice.
    h.sockets[1].receive(event(1));
    h.sockets[1].receive(event(2));
    expect(h.events.map((e) => e.id)).toEqual([0, 1, 2]);
  });

  it("reconnects at once when the server restarts (1012), then backs off as usual", () => {
    const h = harness();
    h.stream.start();
    h.sockets[0].open();
    h.sockets[0].receive(event(4));
    h.sockets[0].drop(1012);
    expect(h.statuses.at(-1)).toBe("reconnecting");
    expect(h.timers.map((t) => t.ms)).toEqual([0]);
    h.timers[0].fn();
    expect(h.sockets[1].url).toMatch(/latest_event_id=4$/);
    // The next server is not up yet: an ordinary drop backs off from the start.
    h.sockets[1].drop();
    expect(h.timers.map((t) => t.ms)).toEqual([0, 500]);
  });

  it("backs off while the server stays away, and resets after a successful open", () => {
    const h = harness();
    h.stream.start();
    h.sockets[0].drop();
    h.timers[0].fn();
    h.sockets[1].drop();
    h.timers[1].fn();
    h.sockets[2].drop();
    expect(h.timers.map((t) => t.ms)).toEqual([500, 1000, 2000]);
    h.timers[2].fn();
    h.sockets[3].open();
    h.sockets[3].drop();
    expect(h.timers.at(-1)?.ms).toBe(500);
  });

  it("resumes from a given id", () => {
    const h = harness(7);
    h.stream.start();
    expect(h.sockets[0].url).toMatch(/latest_event_id=7$/);
  });

  it("passes notices on without moving the resume point", () => {
    const h = harness();
    h.stream.start();
    h.sockets[0].receive({ status_update: true, type: "error", message: "Too many conversations" });
    expect(h.notices).toEqual(["Too many conversations"]);
    expect(h.stream.latestId).toBe(-1);
  });

  it("does not reconnect once disposed", () => {
    const h = harness();
    h.stream.start();
    h.stream.dispose();
    expect(h.sockets[0].closed).toBe(true);
    h.sockets[0].drop();
    expect(h.timers).toHaveLength(0);
    expect(h.statuses.at(-1)).toBe("closed");
  });

  it("reconnects at once on request, keeping the resume point", () => {
    const h = harness();
    h.stream.start();
    h.sockets[0].open();
    h.sockets[0].receive(event(4));
    h.stream.reconnectNow();
    expect(h.sockets[0].closed).toBe(true);
    expect(h.sockets[1].url).toMatch(/latest_event_id=4$/);
    // The old socket's late close does not schedule another connection.
    h.sockets[0].drop();
    expect(h.timers).toHaveLength(0);
  });
});
