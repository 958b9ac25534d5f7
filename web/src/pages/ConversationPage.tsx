// A conversation: the agent's events live, the message box, stop/start, confirmation, files.

import { useEffect, useMemo, useRef, useState } from "react";
import { Link, useParams } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api/endpoints";
import type { ConversationInfo } from "../api/types";
import { buildTimeline, describeAgentState } from "../events/timeline";
import { useEventStream } from "../events/useEventStream";
import { ErrorNotice } from "../components/ErrorNotice";
import { EventItem } from "../components/EventItem";
import { FilesPanel } from "../components/FilesPanel";
import { StatusBadge } from "../components/StatusBadge";

const CONNECTION_TEXT = {
  connecting: "Connecting…",
  open: "Live",
  reconnecting: "Reconnecting…",
  closed: "Disconnected",
} as const;

function Composer({ id }: { id: string }) {
  const [text, setText] = useState("");
  const send = useMutation({
    mutationFn: (message: string) => api.sendMessage(id, message),
    onSuccess: () => setText(""),
  });
  const submit = () => {
    if (text.trim()) send.mutate(text);
  };
  return (
    <form
      className="composer"
      onSubmit={(e) => {
        e.preventDefault();
        submit();
      }}
    >
      <label className="composer-label">
        <span className="sr-only">Message to the agent</span>
        <textarea
          rows={2}
          value={text}
          placeholder="Message the agent (Enter to send, Shift+Enter for a new line)"
          onChange={(e) => setText(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.shiftKey) {
              e.preventDefault();
              submit();
            }
          }}
        />
      </label>
      <button type="submit" className="primary" disabled={send.isPending || !text.trim()}>
        {send.isPending ? "Sending…" : "Send"}
      </button>
      <ErrorNotice error={send.error} />
    </form>
  );
}

function ConfirmBar({ id }: { id: string }) {
  const decide = useMutation({
    mutationFn: (answer: "user_confirmed" | "user_rejected") => api.changeAgentState(id, answer),
  });
  return (
    <div className="confirm-bar" role="region" aria-label="Confirmation needed">
      <span>The agent waits for your confirmation before running this action.</span>
      <button type="button" className="primary" disabled={decide.isPending} onClick={() => decide.mutate("user_confirmed")}>
        Confirm
      </button>
      <button type="button" className="danger" disabled={decide.isPending} onClick={() => decide.mutate("user_rejected")}>
        Reject
      </button>
      <ErrorNotice error={decide.error} />
    </div>
  );
}

export function ConversationPage() {
  const { id = "" } = useParams();
  const conversation = useQuery({
    queryKey: ["conversation", id],
    queryFn: () => api.conversation(id),
    refetchInterval: 3000,
  });
  if (conversation.isPending) return <p className="loading">Loading the conversation…</p>;
  if (conversation.isError && !conversation.data) {
    return <ErrorNotice error={conversation.error} onRetry={() => conversation.refetch()} />;
  }
  const info = conversation.data;
  if (!info) {
    return (
      <section>
        <h1>Conversation not found</h1>
        <p>
          It may have been deleted. <Link to="/">Back to your conversations</Link>.
        </p>
      </section>
    );
  }
  // Keyed by id: a different conversation starts from a fresh stream and state.
  return <ConversationView key={id} info={info} />;
}

function ConversationView({ info }: { info: ConversationInfo }) {
  const id = info.conversation_id;
  const queryClient = useQueryClient();
  const stream = useEventStream(id);
  const timeline = useMemo(() => buildTimeline(stream.events), [stream.events]);
  const refresh = () => queryClient.invalidateQueries({ queryKey: ["conversation", id] });
  const stop = useMutation({ mutationFn: () => api.stop(id), onSuccess: refresh });
  const start = useMutation({ mutationFn: () => api.start(id), onSuccess: refresh });
  const [showFiles, setShowFiles] = useState(true);

  // The agent's state moves faster than the status poll: ask again when it changes.
  useEffect(() => {
    queryClient.invalidateQueries({ queryKey: ["conversation", id] });
  }, [queryClient, id, timeline.agentState]);

  // Follow new events while the reader is at the bottom; leave them alone when they
  // scrolled up to read.
  const log = useRef<HTMLDivElement>(null);
  const following = useRef(true);
  useEffect(() => {
    const el = log.current;
    if (el && following.current) el.scrollTop = el.scrollHeight;
  }, [timeline.items.length]);

  const running = info.status === "RUNNING" || info.status === "STARTING";
  const working = timeline.agentState === "running" || timeline.agentState === "loading";

  return (
    <div className={`conversation ${showFiles ? "with-files" : ""}`}>
      <section className="chat" aria-labelledby="conversation-title">
        <header className="chat-head">
          <div>
            <h1 id="conversation-title">{info.title}</h1>
            <div className="conversation-meta">
              <StatusBadge status={info.status} />
              <span aria-live="polite" data-testid="agent-state">
                Agent: {describeAgentState(timeline.agentState)}
              </span>
              <span className={`connection connection-${stream.status}`}>{CONNECTION_TEXT[stream.status]}</span>
              {info.selected_repository && <span>{info.selected_repository}</span>}
            </div>
          </div>
          <div className="chat-actions">
            {running ? (
              <button type="button" onClick={() => stop.mutate()} disabled={stop.isPending}>
                {stop.isPending ? "Stopping…" : "Stop"}
              </button>
            ) : (
              <button type="button" onClick={() => start.mutate()} disabled={start.isPending}>
                {start.isPending ? "Starting…" : "Start"}
              </button>
            )}
            <a className="button" href={api.zipUrl(id)} download="workspace.zip">
              Download workspace
            </a>
            <button type="button" aria-pressed={showFiles} onClick={() => setShowFiles((v) => !v)}>
              {showFiles ? "Hide files" : "Show files"}
            </button>
          </div>
        </header>
        <ErrorNotice error={stop.error ?? start.error} />
        {stream.notices.map((notice, i) => (
          <div key={i} role="alert" className="notice notice-error">
            {notice.message}
          </div>
        ))}
        <div
          ref={log}
          className="events"
          role="log"
          aria-label="Conversation events"
          aria-live="polite"
          tabIndex={0}
          onScroll={(e) => {
            const el = e.currentTarget;
            following.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
          }}
        >
          {timeline.items.length === 0 && <p className="empty">No events yet.</p>}
          {timeline.items.map((item) => (
            <EventItem key={item.id} item={item} />
          ))}
          {working && <p className="step-line working">The agent is working…</p>}
        </div>
        {timeline.agentState === "awaiting_user_confirmation" && <ConfirmBar id={id} />}
        <Composer id={id} />
      </section>
      {showFiles && <FilesPanel id={id} refreshKey={timeline.latestId} />}
    </div>
  );
}
