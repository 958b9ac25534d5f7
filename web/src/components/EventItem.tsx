// One item of the chat, rendered by kind.

import type { TimelineItem } from "../events/timeline";
import { describeAgentState } from "../events/timeline";
import { UnifiedDiff } from "./DiffView";

function ConfirmationTag({ state }: { state: string | undefined }) {
  if (state === "awaiting_confirmation") return <span className="tag tag-warn">Needs your confirmation</span>;
  if (state === "rejected") return <span className="tag">Rejected</span>;
  return null;
}

function Thought({ text }: { text?: string }) {
  return text ? <p className="thought">{text}</p> : null;
}

export function EventItem({ item }: { item: TimelineItem }) {
  switch (item.kind) {
    case "message":
      return (
        <article className={`msg msg-${item.role}`} aria-label={item.role === "user" ? "Your message" : "Agent message"}>
          <p className="msg-text">{item.text}</p>
        </article>
      );
    case "command":
      return (
        <article className="step step-command" aria-label="Command">
          <Thought text={item.thought} />
          <div className="step-head">
            <code className="command">$ {item.command}</code>
            <ConfirmationTag state={item.confirmation} />
            {item.exitCode !== undefined && (
              <span className={`tag ${item.exitCode === 0 ? "tag-ok" : "tag-bad"}`}>exit {item.exitCode}</span>
            )}
          </div>
          {item.output !== undefined && (
            <pre className="output" aria-label="Command output">
              {item.output || "(no output)"}
            </pre>
          )}
        </article>
      );
    case "edit":
      return (
        <article className="step step-edit" aria-label="File edit">
          <Thought text={item.thought} />
          <div className="step-head">
            <span>
              {item.command === "create" ? "Created" : "Edited"} <code>{item.path}</code>
            </span>
            <ConfirmationTag state={item.confirmation} />
          </div>
          {item.diff && <UnifiedDiff text={item.diff} label={`Changes to ${item.path}`} />}
          {item.failed && <p className="step-error">{item.failed}</p>}
        </article>
      );
    case "read":
      return (
        <p className="step-line">
          Read <code>{item.path}</code> <ConfirmationTag state={item.confirmation} />
        </p>
      );
    case "think":
      return <p className="step-line thought">Thinking: {item.thought}</p>;
    case "finish":
      return (
        <article className="msg msg-agent msg-finish" aria-label="Agent finished">
          <p className="msg-text">{item.text}</p>
        </article>
      );
    case "error":
      return (
        <p className="step-line step-error" role="note">
          Error: {item.text}
        </p>
      );
    case "rejected":
      return <p className="step-line">You rejected the action.</p>;
    case "state":
      return (
        <p className="step-line state-line">
          {describeAgentState(item.state)}
          {item.reason ? `: ${item.reason}` : ""}
        </p>
      );
    case "other":
      return (
        <p className="step-line">
          <span className="tag">{item.label}</span> {item.text}
        </p>
      );
  }
}
