import type { ConversationStatus } from "../api/types";

const LABELS: Record<string, string> = {
  STARTING: "Starting",
  RUNNING: "Running",
  STOPPED: "Stopped",
  ARCHIVED: "Archived",
  ERROR: "Error",
};

export function StatusBadge({ status }: { status: ConversationStatus | string }) {
  return <span className={`badge badge-${status.toLowerCase()}`}>{LABELS[status] ?? status}</span>;
}
