// Turns the raw event stream into what the chat shows: one item per thing that happened,
// an action joined with its observation (a command with its output, an edit with its diff),
// and the agent's current state.
//
// Rules:
// - An observation with a `cause` is attached to the action with that id; one without a
//   known cause is shown on its own.
// - In confirmation mode the agent stores an action twice: first `awaiting_confirmation`,
//   then `confirmed` or `rejected` (same `tool_call_id`). The later one replaces the earlier
//   in place, so the chat shows one item whose state changes.
// - `agent_state_changed` updates `agentState`; it is shown as a small status line only when
//   it says something a person needs (error, stopped, finished, waiting for confirmation).

import type { AgentEvent } from "../api/types";

export type Confirmation = "awaiting_confirmation" | "confirmed" | "rejected" | undefined;

export type TimelineItem =
  | { kind: "message"; id: number; role: "user" | "agent"; text: string }
  | {
      kind: "command";
      id: number;
      command: string;
      thought?: string;
      output?: string;
      exitCode?: number;
      confirmation: Confirmation;
    }
  | {
      kind: "edit";
      id: number;
      path: string;
      command: string;
      thought?: string;
      diff?: string;
      failed?: string;
      confirmation: Confirmation;
    }
  | { kind: "read"; id: number; path: string; confirmation: Confirmation }
  | { kind: "think"; id: number; thought: string }
  | { kind: "finish"; id: number; text: string }
  | { kind: "error"; id: number; text: string }
  | { kind: "rejected"; id: number; text: string }
  | { kind: "state"; id: number; state: string; reason: string }
  | { kind: "other"; id: number; label: string; text: string };

export interface Timeline {
  items: TimelineItem[];
  /** The latest `agent_state` announced, if any. */
  agentState: string | undefined;
  /** The highest event id seen (-1 when none): the resume point for the socket. */
  latestId: number;
}

/** States worth a line in the chat (others, like `running`, only change the header). */
const SHOWN_STATES = new Set(["error", "stopped", "finished", "awaiting_user_confirmation"]);

function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function confirmationOf(event: AgentEvent): Confirmation {
  const state = str(event.args?.confirmation_state);
  return state === "awaiting_confirmation" || state === "confirmed" || state === "rejected"
    ? state
    : undefined;
}

function thoughtOf(event: AgentEvent): string | undefined {
  const thought = str(event.args?.thought);
  return thought && thought.trim() ? thought : undefined;
}

/** The item an action becomes (before any observation joins it). */
export function actionItem(event: AgentEvent): TimelineItem | undefined {
  const args = event.args ?? {};
  switch (event.action) {
    case "message": {
      const text = str(args.content) ?? event.message;
      return { kind: "message", id: event.id, role: event.source === "user" ? "user" : "agent", text };
    }
    case "run":
      return {
        kind: "command",
        id: event.id,
        command: str(args.command) ?? "",
        thought: thoughtOf(event),
        confirmation: confirmationOf(event),
      };
    case "edit":
      return {
        kind: "edit",
        id: event.id,
        path: str(args.path) ?? "",
        command: str(args.command) ?? "edit",
        thought: thoughtOf(event),
        confirmation: confirmationOf(event),
      };
    case "read":
      return { kind: "read", id: event.id, path: str(args.path) ?? "", confirmation: confirmationOf(event) };
    case "think":
      return { kind: "think", id: event.id, thought: str(args.thought) ?? event.message };
    case "finish":
      return { kind: "finish", id: event.id, text: str(args.final_thought) || event.message };
    case "change_agent_state":
    case "system":
    case "recall":
      return undefined;
    default:
      return { kind: "other", id: event.id, label: event.action ?? "action", text: event.message };
  }
}

/** Joins an observation into its action's item; false when it does not belong there. */
function attach(item: TimelineItem, event: AgentEvent): boolean {
  const extras = event.extras ?? {};
  if (item.kind === "command" && event.observation === "run") {
    const metadata = (extras.metadata ?? {}) as Record<string, unknown>;
    item.output = event.content ?? "";
    item.exitCode = typeof metadata.exit_code === "number" ? metadata.exit_code : undefined;
    return true;
  }
  if (item.kind === "edit" && event.observation === "edit") {
    item.diff = str(extras.diff) ?? event.content;
    return true;
  }
  if (item.kind === "edit" && event.observation === "error") {
    item.failed = event.content ?? event.message;
    return true;
  }
  if (item.kind === "command" && event.observation === "error") {
    item.output = event.content ?? event.message;
    item.exitCode = item.exitCode ?? -1;
    return true;
  }
  if (event.observation === "read" || event.observation === "think") return true;
  return false;
}

/** The item an observation becomes when no action took it. */
function observationItem(event: AgentEvent): TimelineItem | undefined {
  switch (event.observation) {
    case "agent_state_changed": {
      const state = str(event.extras?.agent_state) ?? "";
      if (!SHOWN_STATES.has(state)) return undefined;
      return { kind: "state", id: event.id, state, reason: str(event.extras?.reason) ?? "" };
    }
    case "error":
      return { kind: "error", id: event.id, text: event.content || event.message };
    case "user_rejected":
      return { kind: "rejected", id: event.id, text: event.content || event.message };
    case "null":
    case "think":
    case "read":
    case "recall":
      return undefined;
    default:
      return {
        kind: "other",
        id: event.id,
        label: event.observation ?? "observation",
        text: event.content || event.message,
      };
  }
}

/** Builds the timeline from events in any order (duplicates are ignored). */
export function buildTimeline(events: readonly AgentEvent[]): Timeline {
  const sorted = [...events].sort((a, b) => a.id - b.id);
  const items: TimelineItem[] = [];
  const byEventId = new Map<number, TimelineItem>();
  const byToolCall = new Map<string, number>();
  let agentState: string | undefined;
  let latestId = -1;
  let previousId: number | undefined;

  for (const event of sorted) {
    if (event.id === previousId) continue;
    previousId = event.id;
    latestId = Math.max(latestId, event.id);

    if (event.action !== undefined) {
      const item = actionItem(event);
      if (!item) continue;
      byEventId.set(event.id, item);
      const callId = event.tool_call_metadata?.tool_call_id;
      const earlier = callId !== undefined ? byToolCall.get(callId) : undefined;
      if (callId !== undefined && earlier !== undefined) {
        items[earlier] = item;
      } else {
        if (callId !== undefined) byToolCall.set(callId, items.length);
        items.push(item);
      }
      continue;
    }

    if (event.observation === "agent_state_changed") {
      agentState = str(event.extras?.agent_state) ?? agentState;
    }
    const owner = event.cause !== undefined ? byEventId.get(event.cause) : undefined;
    if (owner && attach(owner, event)) continue;
    const item = observationItem(event);
    if (item) items.push(item);
  }
  return { items, agentState, latestId };
}

/** Words for an agent state in the header. */
export function describeAgentState(state: string | undefined): string {
  switch (state) {
    case undefined:
    case "":
      return "Not started";
    case "loading":
      return "Starting…";
    case "running":
      return "Working…";
    case "awaiting_user_input":
      return "Waiting for your message";
    case "awaiting_user_confirmation":
      return "Waiting for your confirmation";
    case "finished":
      return "Finished";
    case "stopped":
      return "Stopped";
    case "paused":
      return "Paused";
    case "error":
      return "Stopped by an error";
    default:
      return state.replace(/_/g, " ");
  }
}
