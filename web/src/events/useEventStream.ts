// React side of `EventStream`: the events received so far, the connection state, notices.

import { useEffect, useState } from "react";
import type { AgentEvent } from "../api/types";
import { EventStream, type Notice, type StreamStatus } from "./stream";

export interface EventStreamState {
  events: AgentEvent[];
  status: StreamStatus;
  notices: Notice[];
}

export function useEventStream(conversationId: string): EventStreamState {
  const [events, setEvents] = useState<AgentEvent[]>([]);
  const [status, setStatus] = useState<StreamStatus>("connecting");
  const [notices, setNotices] = useState<Notice[]>([]);

  useEffect(() => {
    setEvents([]);
    setNotices([]);
    // Events arrive in bursts (a replay is hundreds at once): batch them briefly.
    let pending: AgentEvent[] = [];
    let flush: ReturnType<typeof setTimeout> | undefined;
    const stream = new EventStream(conversationId, {
      onEvent(event) {
        pending.push(event);
        flush ??= setTimeout(() => {
          const batch = pending;
          pending = [];
          flush = undefined;
          setEvents((current) => current.concat(batch));
        }, 30);
      },
      onStatus: setStatus,
      onNotice: (notice) => setNotices((current) => [...current.slice(-4), notice]),
    });
    stream.start();
    // Back online: reconnect now instead of waiting for the backoff.
    const onOnline = () => stream.reconnectNow();
    window.addEventListener("online", onOnline);
    return () => {
      window.removeEventListener("online", onOnline);
      if (flush !== undefined) clearTimeout(flush);
      stream.dispose();
    };
  }, [conversationId]);

  return { events, status, notices };
}
