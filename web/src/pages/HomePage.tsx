import { useState } from "react";
import { Link, useNavigate } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api/endpoints";
import { ApiError } from "../api/client";
import { ErrorNotice } from "../components/ErrorNotice";
import { ConversationRow } from "../components/ConversationRow";
import { matchesSearch } from "../lib/search";

function StartConversation() {
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [repository, setRepository] = useState("");
  const [branch, setBranch] = useState("");
  const [message, setMessage] = useState("");
  const create = useMutation({
    mutationFn: () =>
      api.createConversation({
        initial_user_msg: message.trim() || undefined,
        repository: repository.trim() || undefined,
        selected_branch: branch.trim() || undefined,
      }),
    onSuccess: (res) => {
      queryClient.invalidateQueries({ queryKey: ["conversations"] });
      navigate(`/conversations/${res.conversation_id}`);
    },
  });
  const needsSettings =
    create.error instanceof ApiError &&
    (create.error.code === "CONFIGURATION$SETTINGS_NOT_FOUND" ||
      create.error.code === "STATUS$ERROR_LLM_AUTHENTICATION");
  return (
    <form
      className="card"
      aria-labelledby="start-title"
      onSubmit={(e) => {
        e.preventDefault();
        create.mutate();
      }}
    >
      <h2 id="start-title">Start a conversation</h2>
      <div className="row">
        <label>
          Repository <span className="hint">(optional: owner/repo, URL or local path)</span>
          <input value={repository} onChange={(e) => setRepository(e.target.value)} placeholder="owner/repo" />
        </label>
        <label>
          Branch <span className="hint">(optional)</span>
          <input value={branch} onChange={(e) => setBranch(e.target.value)} placeholder="main" />
        </label>
      </div>
      <label>
        What should the agent do?
        <textarea
          value={message}
          rows={3}
          onChange={(e) => setMessage(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
              e.preventDefault();
              create.mutate();
            }
          }}
        />
      </label>
      <ErrorNotice error={create.error} />
      {needsSettings && (
        <p>
          <Link to="/settings">Open Settings</Link>
        </p>
      )}
      <button type="submit" className="primary" disabled={create.isPending}>
        {create.isPending ? "Starting…" : "Start"}
      </button>
    </form>
  );
}

function ConversationList() {
  const [search, setSearch] = useState("");
  const list = useQuery({
    queryKey: ["conversations"],
    queryFn: () => api.conversations(),
    refetchInterval: 5000,
  });
  const shown = (list.data?.results ?? []).filter((c) => matchesSearch(c, search));
  return (
    <section className="card" aria-labelledby="list-title">
      <div className="card-head">
        <h2 id="list-title">Recent conversations</h2>
        <label className="search">
          <span className="sr-only">Search conversations</span>
          <input
            type="search"
            placeholder="Search by title or repository"
            value={search}
            onChange={(e) => setSearch(e.target.value)}
          />
        </label>
      </div>
      {list.isPending && <p className="loading">Loading conversations…</p>}
      <ErrorNotice error={list.error} onRetry={() => list.refetch()} />
      {list.data && shown.length === 0 && (
        <p className="empty">{search ? "No conversation matches your search." : "No conversations yet."}</p>
      )}
      <ul className="conversation-list">
        {shown.map((c) => (
          <ConversationRow key={c.conversation_id} conversation={c} />
        ))}
      </ul>
    </section>
  );
}

export function HomePage() {
  return (
    <div className="page">
      <h1 className="sr-only">Conversations</h1>
      <StartConversation />
      <ConversationList />
    </div>
  );
}
