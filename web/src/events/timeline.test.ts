import { describe, expect, it } from "vitest";
import type { AgentEvent } from "../api/types";
import { buildTimeline, describeAgentState } from "./timeline";

let ts = 0;
const base = (id: number, source: AgentEvent["source"]) => ({ id, source, timestamp: `t${ts++}`, message: "" });

const userMessage = (id: number, content: string): AgentEvent => ({
  ...base(id, "user"),
  action: "message",
  args: { content },
});
const run = (id: number, command: string, confirmation = "confirmed", callId = `call-${id}`): AgentEvent => ({
  ...base(id, "agent"),
  action: "run",
  args: { command, thought: "", confirmation_state: confirmation },
  tool_call_metadata: { tool_call_id: callId },
});
const runOutput = (id: number, cause: number, content: string, exit_code: number): AgentEvent => ({
  ...base(id, "environment"),
  cause,
  observation: "run",
  content,
  extras: { command: "x", metadata: { exit_code } },
});
const state = (id: number, agent_state: string, reason = ""): AgentEvent => ({
  ...base(id, "environment"),
  observation: "agent_state_changed",
  content: "",
  extras: { agent_state, reason },
});

describe("buildTimeline", () => {
  it("classifies messages by who sent them", () => {
    const agentReply: AgentEvent = { ...base(1, "agent"), action: "message", args: { content: "Hi!" } };
    const { items } = buildTimeline([userMessage(0, "Hello"), agentReply]);
    expect(items).toEqual([
      { kind: "message", id: 0, role: "user", text: "Hello" },
      { kind: "message", id: 1, role: "agent", text: "Hi!" },
    ]);
  });

  it("joins a command with its output and exit code", () => {
    const { items } = buildTimeline([run(1, "ls"), runOutput(2, 1, "a.txt\n", 0)]);
    expect(items).toEqual([
      { kind: "command", id: 1, command: "ls", thought: undefined, output: "a.txt\n", exitCode: 0, confirmation: "confirmed" },
    ]);
  });

  it("joins an edit with its diff", () => {
    const edit: AgentEvent = {
      ...base(3, "agent"),
      action: "edit",
      args: { path: "hello.txt", command: "create", thought: "writing" },
    };
    const done: AgentEvent = {
      ...base(4, "environment"),
      cause: 3,
      observation: "edit",
      content: "File created",
      extras: { path: "hello.txt", diff: "--- a\n+++ b\n+hello" },
    };
    const { items } = buildTimeline([edit, done]);
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({ kind: "edit", path: "hello.txt", command: "create", thought: "writing", diff: "--- a\n+++ b\n+hello" });
  });

  it("shows errors, finishes and the states a person needs; tracks the latest state", () => {
    const error: AgentEvent = { ...base(5, "environment"), observation: "error", content: "LLM failed", extras: {} };
    const finish: AgentEvent = { ...base(7, "agent"), action: "finish", args: { final_thought: "All done." } };
    const timeline = buildTimeline([state(4, "running"), error, state(6, "error", "LLM failed"), finish, state(8, "finished")]);
    expect(timeline.items.map((i) => i.kind)).toEqual(["error", "state", "finish", "state"]);
    expect(timeline.agentState).toBe("finished");
    expect(timeline.latestId).toBe(8);
  });

  it("replaces an action awaiting confirmation by its confirmed copy, in place", () => {
    const events = [
      userMessage(0, "go"),
      run(1, "rm -rf build", "awaiting_confirmation", "call-a"),
      state(2, "awaiting_user_confirmation"),
      run(3, "rm -rf build", "confirmed", "call-a"),
      state(4, "running"),
      runOutput(5, 3, "", 0),
    ];
    const { items, agentState } = buildTimeline(events);
    const commands = items.filter((i) => i.kind === "command");
    expect(commands).toHaveLength(1);
    expect(commands[0]).toMatchObject({ id: 3, confirmation: "confirmed", exitCode: 0 });
    expect(items.indexOf(commands[0])).toBe(1);
    expect(agentState).toBe("running");
  });

  it("shows a rejected action once, marked rejected, followed by the rejection", () => {
    const rejectedNote: AgentEvent = {
      ...base(4, "environment"),
      cause: 3,
      observation: "user_rejected",
      content: "Action has been rejected by the user! Waiting for further user input.",
      extras: {},
    };
    const { items, agentState } = buildTimeline([
      run(1, "rm -rf build", "awaiting_confirmation", "call-b"),
      state(2, "awaiting_user_confirmation"),
      run(3, "rm -rf build", "rejected", "call-b"),
      rejectedNote,
      state(5, "awaiting_user_input"),
    ]);
    expect(items.map((i) => i.kind)).toEqual(["command", "state", "rejected"]);
    expect(items[0]).toMatchObject({ id: 3, confirmation: "rejected" });
    expect(agentState).toBe("awaiting_user_input");
  });

  it("keeps the awaiting action while the person decides", () => {
    const { items, agentState } = buildTimeline([run(1, "make", "awaiting_confirmation"), state(2, "awaiting_user_confirmation")]);
    expect(items[0]).toMatchObject({ kind: "command", confirmation: "awaiting_confirmation" });
    expect(agentState).toBe("awaiting_user_confirmation");
  });

  it("ignores duplicates and sorts by id", () => {
    const events = [runOutput(2, 1, "x", 0), run(1, "echo x"), run(1, "echo x"), userMessage(0, "hi")];
    const { items } = buildTimeline(events);
    expect(items.map((i) => i.id)).toEqual([0, 1]);
  });

  it("shows an observation whose action is unknown on its own", () => {
    const { items } = buildTimeline([runOutput(9, 4, "late", 1)]);
    expect(items).toEqual([{ kind: "other", id: 9, label: "run", text: "late" }]);
  });
});

describe("describeAgentState", () => {
  it("puts states into words", () => {
    expect(describeAgentState(undefined)).toBe("Not started");
    expect(describeAgentState("awaiting_user_confirmation")).toBe("Waiting for your confirmation");
    expect(describeAgentState("some_new_state")).toBe("some new state");
  });
});
