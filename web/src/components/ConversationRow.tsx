// One conversation in the list: title link, status, repository, rename and delete in place.

import { useState } from "react";
import { Link } from "react-router";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api } from "../api/endpoints";
import type { ConversationInfo } from "../api/types";
import { timeAgo } from "../lib/time";
import { ErrorNotice } from "./ErrorNotice";
import { StatusBadge } from "./StatusBadge";

export function ConversationRow({ conversation }: { conversation: ConversationInfo }) {
  const c = conversation;
  const queryClient = useQueryClient();
  const [mode, setMode] = useState<"view" | "rename" | "delete">("view");
  const [title, setTitle] = useState(c.title);
  const refresh = () => queryClient.invalidateQueries({ queryKey: ["conversations"] });
  const rename = useMutation({
    mutationFn: () => api.renameConversation(c.conversation_id, title),
    onSuccess: () => {
      setMode("view");
      refresh();
    },
  });
  const remove = useMutation({
    mutationFn: () => api.deleteConversation(c.conversation_id),
    onSuccess: refresh,
  });

  return (
    <li className="conversation-row">
      {mode === "rename" ? (
        <form
          className="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            rename.mutate();
          }}
        >
          <label>
            <span className="sr-only">New title for {c.title}</span>
            <input
              autoFocus
              value={title}
              maxLength={200}
              onChange={(e) => setTitle(e.target.value)}
              onKeyDown={(e) => e.key === "Escape" && setMode("view")}
            />
          </label>
          <button type="submit" className="primary" disabled={rename.isPending}>
            Save
          </button>
          <button type="button" onClick={() => setMode("view")}>
            Cancel
          </button>
        </form>
      ) : (
        <div className="conversation-main">
          <Link to={`/conversations/${c.conversation_id}`} className="conversation-title">
            {c.title}
          </Link>
          <div className="conversation-meta">
            <StatusBadge status={c.status} />
            {c.selected_repository && (
              <span>
                {c.selected_repository}
                {c.selected_branch ? ` @ ${c.selected_branch}` : ""}
              </span>
            )}
            <span>{timeAgo(c.last_updated_at ?? c.created_at)}</span>
          </div>
        </div>
      )}
      {mode === "view" && (
        <div className="row-actions">
          <button
            type="button"
            onClick={() => {
              setTitle(c.title);
              setMode("rename");
            }}
            aria-label={`Rename ${c.title}`}
          >
            Rename
          </button>
          <button type="button" onClick={() => setMode("delete")} aria-label={`Delete ${c.title}`}>
            Delete
          </button>
        </div>
      )}
      {mode === "delete" && (
        <div className="row-actions" role="group" aria-label={`Confirm deleting ${c.title}`}>
          <span>Delete it with its events and workspace?</span>
          <button type="button" className="danger" autoFocus onClick={() => remove.mutate()} disabled={remove.isPending}>
            {remove.isPending ? "Deleting…" : "Yes, delete"}
          </button>
          <button type="button" onClick={() => setMode("view")}>
            Keep it
          </button>
        </div>
      )}
      <ErrorNotice error={rename.error ?? remove.error} />
    </li>
  );
}
