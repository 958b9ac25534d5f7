// The workspace beside the chat: a file tree with a viewer, and the git changes with diffs.

import { useEffect, useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api/endpoints";
import { ApiError } from "../api/client";
import { DiffView } from "./DiffView";
import { ErrorNotice } from "./ErrorNotice";

/** The workspace does not exist before the agent first starts: not an error to shout about. */
function isNoWorkspace(error: unknown): boolean {
  return error instanceof ApiError && error.status === 404;
}

function baseName(path: string): string {
  const trimmed = path.replace(/\/$/, "");
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

function Directory({
  id,
  path,
  selected,
  onSelect,
}: {
  id: string;
  path: string;
  selected: string | undefined;
  onSelect: (file: string) => void;
}) {
  const listing = useQuery({
    queryKey: ["files", id, "list", path],
    queryFn: () => api.listFiles(id, path || undefined),
  });
  const [open, setOpen] = useState<Record<string, boolean>>({});
  if (listing.isPending) return <p className="loading">Loading…</p>;
  if (listing.isError) {
    return isNoWorkspace(listing.error) && path === "" ? (
      <p className="empty">The workspace appears when the agent starts.</p>
    ) : (
      <ErrorNotice error={listing.error} onRetry={() => listing.refetch()} />
    );
  }
  if (listing.data.length === 0 && path === "") return <p className="empty">The workspace is empty.</p>;
  return (
    // Nested lists of buttons (the disclosure pattern): Tab and Enter work without a
    // roving focus, which an ARIA tree would promise.
    <ul aria-label={path === "" ? "Workspace files" : `Files in ${path}`}>
      {listing.data.map((entry) => {
        const isDir = entry.endsWith("/");
        const name = baseName(entry);
        if (isDir) {
          const expanded = open[entry] ?? false;
          return (
            <li key={entry}>
              <button
                type="button"
                className="tree-entry tree-dir"
                aria-expanded={expanded}
                onClick={() => setOpen((o) => ({ ...o, [entry]: !expanded }))}
              >
                {expanded ? "▾" : "▸"} {name}/
              </button>
              {expanded && <Directory id={id} path={entry} selected={selected} onSelect={onSelect} />}
            </li>
          );
        }
        return (
          <li key={entry}>
            <button
              type="button"
              className="tree-entry"
              aria-current={selected === entry ? "true" : undefined}
              onClick={() => onSelect(entry)}
            >
              {name}
            </button>
          </li>
        );
      })}
    </ul>
  );
}

function FileView({ id, file }: { id: string; file: string }) {
  const content = useQuery({ queryKey: ["files", id, "file", file], queryFn: () => api.selectFile(id, file) });
  return (
    <div className="file-view">
      <h3>{file}</h3>
      {content.isPending && <p className="loading">Loading…</p>}
      <ErrorNotice error={content.error} />
      {content.data && (
        <pre className="code" aria-label={`Contents of ${file}`} tabIndex={0}>
          {content.data.code}
        </pre>
      )}
    </div>
  );
}

function ChangeDiff({ id, path }: { id: string; path: string }) {
  const diff = useQuery({ queryKey: ["files", id, "diff", path], queryFn: () => api.gitDiff(id, path) });
  if (diff.isPending) return <p className="loading">Loading…</p>;
  if (diff.isError) return <ErrorNotice error={diff.error} />;
  return <DiffView original={diff.data.original} modified={diff.data.modified} label={`Changes to ${path}`} />;
}

const CHANGE_LABELS: Record<string, string> = { A: "added", M: "modified", D: "deleted", R: "renamed", U: "conflict" };

function Changes({ id }: { id: string }) {
  const changes = useQuery({ queryKey: ["files", id, "changes"], queryFn: () => api.gitChanges(id) });
  const [open, setOpen] = useState<string | undefined>();
  if (changes.isPending) return <p className="loading">Loading…</p>;
  if (changes.isError) {
    return isNoWorkspace(changes.error) ? (
      <p className="empty">No git repository in this workspace, so there are no changes to show.</p>
    ) : (
      <ErrorNotice error={changes.error} onRetry={() => changes.refetch()} />
    );
  }
  if (changes.data.length === 0) return <p className="empty">No changes.</p>;
  return (
    <ul className="changes">
      {changes.data.map((change) => (
        <li key={change.path}>
          <button
            type="button"
            className="tree-entry"
            aria-expanded={open === change.path}
            onClick={() => setOpen(open === change.path ? undefined : change.path)}
          >
            <span className={`change change-${change.status}`}>{change.status}</span> {change.path}
            <span className="sr-only"> ({CHANGE_LABELS[change.status] ?? change.status})</span>
          </button>
          {open === change.path && <ChangeDiff id={id} path={change.path} />}
        </li>
      ))}
    </ul>
  );
}

/** Puts files from the person's computer at the workspace root. */
function Upload({ id }: { id: string }) {
  const queryClient = useQueryClient();
  const upload = useMutation({
    mutationFn: (files: File[]) => api.uploadFiles(id, files),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["files", id] }),
  });
  const result = upload.data;
  return (
    <div className="upload">
      <label className="button">
        {upload.isPending ? "Uploading…" : "Upload files"}
        <input
          type="file"
          multiple
          className="sr-only"
          disabled={upload.isPending}
          onChange={(e) => {
            const files = Array.from(e.target.files ?? []);
            e.target.value = "";
            if (files.length > 0) upload.mutate(files);
          }}
        />
      </label>
      <ErrorNotice error={upload.error} />
      {result && (
        <p role="status" className="hint">
          Uploaded {result.uploaded_files.length} file{result.uploaded_files.length === 1 ? "" : "s"}.
          {result.skipped_files.map((s) => ` ${s.name} was skipped: ${s.reason}.`).join("")}
        </p>
      )}
    </div>
  );
}

export function FilesPanel({ id, refreshKey }: { id: string; refreshKey: number }) {
  const queryClient = useQueryClient();
  const [tab, setTab] = useState<"files" | "changes">("files");
  const [selected, setSelected] = useState<string | undefined>();

  // New events may have changed the workspace: refresh what is shown, at most once a second.
  useEffect(() => {
    const timer = setTimeout(() => queryClient.invalidateQueries({ queryKey: ["files", id] }), 1000);
    return () => clearTimeout(timer);
  }, [queryClient, id, refreshKey]);

  return (
    <aside className="files" aria-label="Workspace">
      <div role="tablist" aria-label="Workspace views" className="tabs">
        <button type="button" role="tab" aria-selected={tab === "files"} onClick={() => setTab("files")}>
          Files
        </button>
        <button type="button" role="tab" aria-selected={tab === "changes"} onClick={() => setTab("changes")}>
          Changes
        </button>
        <button
          type="button"
          className="link-button"
          onClick={() => queryClient.invalidateQueries({ queryKey: ["files", id] })}
        >
          Refresh
        </button>
      </div>
      <div role="tabpanel" className="files-body">
        {tab === "files" ? (
          <>
            <Upload id={id} />
            <Directory id={id} path="" selected={selected} onSelect={setSelected} />
            {selected && <FileView id={id} file={selected} />}
          </>
        ) : (
          <Changes id={id} />
        )}
      </div>
    </aside>
  );
}
