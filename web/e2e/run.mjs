// End-to-end run of the web app in headless Chromium against a real server.
//
//   node e2e/run.mjs <server base URL>
//
// Environment:
//   E2E_LLM_BASE_URL   OpenAI-compatible endpoint to store in the settings (required). The
//                      Rust test `web_e2e` starts the scripted LLM and scripts it: create
//                      hello.txt, `cat hello.txt`, finish; then answer "Bye!" as text;
//                      then `echo confirmed-run` (confirmed by the person), finish;
//                      then `rm -rf build` (rejected by the person).
//   E2E_REPOSITORY     a local git repository to start the conversation on (optional).
//   E2E_SCREENSHOTS    where to save screenshots (default: <repo>/target/screenshots).
//   CHROMIUM_PATH      the browser (default: /usr/bin/chromium).
// The server must be fresh (no settings, no conversations) and in OSS mode.
//
// Exits 0 when every step passed, 1 at the first failing step (with a screenshot of it).

import { readFileSync } from "node:fs";
import { expectTrue, launch, openPage, run, shot as shotOf } from "./harness.mjs";

const baseUrl = (process.argv[2] ?? "").replace(/\/$/, "");
const llmBaseUrl = process.env.E2E_LLM_BASE_URL ?? "";
const repository = process.env.E2E_REPOSITORY ?? "";

if (!baseUrl || !llmBaseUrl) {
  console.error("usage: E2E_LLM_BASE_URL=<url> node e2e/run.mjs <server base URL>");
  process.exit(2);
}

const browser = await launch();
const page = await openPage(browser);
const shot = (name) => shotOf(page, name);

async function visit(path) {
  await page.goto(`${baseUrl}${path}`);
}

async function main(step) {
  await step("home page loads with an empty list", async () => {
    await visit("/");
    await page.getByRole("heading", { name: "Start a conversation" }).waitFor();
    await page.getByText("No conversations yet.").waitFor();
    await shot("01-home-empty");
  });

  await step("starting without settings explains what to do", async () => {
    await page.getByLabel("What should the agent do?").fill("Hello");
    await page.getByRole("button", { name: "Start" }).click();
    await page.getByRole("alert").filter({ hasText: "Open Settings" }).waitFor();
  });

  await step("settings: save model, base URL and API key", async () => {
    await page.getByRole("link", { name: "Settings" }).first().click();
    await page.getByRole("heading", { name: "Settings" }).waitFor();
    await page.getByText("No API key is stored.").waitFor();
    await page.getByLabel("Model").fill("openai/test-model");
    await page.getByLabel(/Base URL/).fill(llmBaseUrl);
    await page.getByLabel("API key").fill("sk-e2e-secret-key");
    await page.getByRole("button", { name: "Save settings" }).click();
    await page.getByText("Settings saved.").waitFor();
    await page.getByText("An API key is stored. It is never shown.").waitFor();
    const keyValue = await page.getByLabel("API key").inputValue();
    expectTrue(keyValue === "", "the API key field must be empty after saving");
    expectTrue(!(await page.content()).includes("sk-e2e-secret-key"), "the API key must never be in the page");
    await shot("02-settings");
  });

  let conversationUrl = "";
  await step("start a conversation and watch the events arrive", async () => {
    await page.getByRole("link", { name: "Conversations" }).click();
    if (repository) await page.getByLabel(/Repository/).fill(repository);
    await page.getByLabel("What should the agent do?").fill("Write hello.txt and show it to me");
    await page.getByRole("button", { name: "Start" }).click();
    await page.waitForURL(/\/conversations\/[^/]+$/);
    conversationUrl = page.url();
    const log = page.getByRole("log", { name: "Conversation events" });
    await log.getByText("Write hello.txt and show it to me").waitFor();
    await log.getByText("$ cat hello.txt").waitFor();
    await log.getByLabel("Command output").filter({ hasText: "hello from the agent" }).waitFor();
    await log.getByText("I wrote hello.txt.").waitFor();
    await page.getByTestId("agent-state").filter({ hasText: "Finished" }).waitFor();
    await page.getByText("Live", { exact: true }).waitFor();
    await shot("03-conversation");
  });

  await step("the new file shows in the files panel", async () => {
    const tree = page.getByRole("list", { name: "Workspace files" });
    await tree.getByRole("button", { name: "hello.txt" }).click();
    await page.getByLabel("Contents of hello.txt").filter({ hasText: "hello from the agent" }).waitFor();
    await shot("04-files");
    if (repository) {
      const panel = page.getByRole("complementary", { name: "Workspace" });
      await panel.getByRole("tab", { name: "Changes" }).click();
      await panel.getByRole("button", { name: /hello\.txt/ }).click();
      await panel.getByLabel("Changes to hello.txt").filter({ hasText: "hello from the agent" }).waitFor();
      await shot("05-changes");
      await page.getByRole("tab", { name: "Files" }).click();
    }
  });

  await step("upload a file into the workspace", async () => {
    const panel = page.getByRole("complementary", { name: "Workspace" });
    await panel.getByLabel("Upload files").setInputFiles({
      name: "notes.txt",
      mimeType: "text/plain",
      buffer: Buffer.from("uploaded from the browser\n"),
    });
    await panel.getByText("Uploaded 1 file.").waitFor();
    await panel.getByRole("button", { name: "notes.txt" }).click();
    await panel.getByLabel("Contents of notes.txt").filter({ hasText: "uploaded from the browser" }).waitFor();
  });

  await step("download the workspace as a zip", async () => {
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("link", { name: "Download workspace" }).click(),
    ]);
    expectTrue(download.suggestedFilename() === "workspace.zip", `got ${download.suggestedFilename()}`);
    const file = await download.path();
    const bytes = file ? readFileSync(file) : Buffer.alloc(0);
    // A zip starts with "PK" and this one holds hello.txt.
    expectTrue(bytes.subarray(0, 2).toString() === "PK", "the download is a zip archive");
    expectTrue(bytes.includes(Buffer.from("hello.txt")), "the zip holds hello.txt");
  });

  await step("send a message and see the answer", async () => {
    const box = page.getByLabel("Message to the agent");
    await box.fill("Thanks! Say bye.");
    await box.press("Enter");
    const log = page.getByRole("log", { name: "Conversation events" });
    await log.getByText("Thanks! Say bye.").waitFor();
    await log.getByText("Bye!", { exact: true }).waitFor();
    await page.getByTestId("agent-state").filter({ hasText: "Waiting for your message" }).waitFor();
  });

  await step("a reconnect resumes after the last event, without duplicates", async () => {
    const sockets = [];
    page.on("websocket", (ws) => sockets.push(ws.url()));
    // Going back online makes the app reconnect at once (the same path as after a drop).
    await page.evaluate(() => window.dispatchEvent(new Event("online")));
    await page.getByText("Live", { exact: true }).waitFor();
    await page.waitForFunction(() => document.querySelector(".connection-open") !== null);
    expectTrue(sockets.length === 1, `expected one new socket, got ${sockets.length}`);
    const resumeFrom = Number(new URL(sockets[0]).searchParams.get("latest_event_id"));
    expectTrue(resumeFrom > 0, `the socket resumes after the last event, got latest_event_id=${resumeFrom}`);
    const log = page.getByRole("log", { name: "Conversation events" });
    await log.getByText("Thanks! Say bye.").waitFor();
    expectTrue((await log.getByText("$ cat hello.txt").count()) === 1, "no event is shown twice");
    expectTrue((await log.getByText("Bye!", { exact: true }).count()) === 1, "no event is shown twice");
  });

  await step("stop the conversation", async () => {
    await page.getByRole("button", { name: "Stop" }).click();
    await page.getByRole("button", { name: "Start", exact: true }).waitFor();
    await page.locator(".badge", { hasText: "Stopped" }).first().waitFor();
  });

  await step("reload and see the whole history", async () => {
    await page.reload();
    const log = page.getByRole("log", { name: "Conversation events" });
    await log.getByText("Write hello.txt and show it to me").waitFor();
    await log.getByText("$ cat hello.txt").waitFor();
    await log.getByText("Thanks! Say bye.").waitFor();
    await log.getByText("Bye!", { exact: true }).waitFor();
    expectTrue(page.url() === conversationUrl, "the reload keeps the conversation's address");
    await shot("06-conversation-reloaded");
  });

  await step("the list shows the conversation; search and rename it", async () => {
    await page.getByRole("link", { name: "Conversations" }).click();
    const list = page.locator(".conversation-list");
    await list.getByRole("link", { name: /^Conversation / }).waitFor();
    await page.getByLabel("Search conversations").fill("no such thing");
    await page.getByText("No conversation matches your search.").waitFor();
    await page.getByLabel("Search conversations").fill("");
    await list.getByRole("button", { name: /^Rename / }).click();
    const input = page.getByLabel(/^New title for /);
    await input.fill("Hello file task");
    await input.press("Enter");
    await list.getByRole("link", { name: "Hello file task" }).waitFor();
    await page.getByLabel("Search conversations").fill("hello file");
    await list.getByRole("link", { name: "Hello file task" }).waitFor();
    await shot("07-home-list");
  });

  await step("secrets: add, see listed without value, rename, delete", async () => {
    await page.getByRole("link", { name: "Secrets" }).click();
    await page.getByText("No secrets yet.").waitFor();
    const form = page.locator("form", { has: page.getByRole("heading", { name: "Add a secret" }) });
    await form.getByLabel("Name").fill("1BAD");
    await form.getByLabel("Value").fill("x");
    await form.getByRole("button", { name: "Add secret" }).click();
    await page.getByText(/not starting with a digit/).waitFor();
    await form.getByLabel("Name").fill("E2E_TOKEN");
    await form.getByLabel("Value").fill("super-secret-value");
    await form.getByLabel(/Description/).fill("for the e2e run");
    await form.getByRole("button", { name: "Add secret" }).click();
    const list = page.getByRole("list", { name: "Secrets" });
    await list.getByText("E2E_TOKEN").waitFor();
    expectTrue(!(await page.content()).includes("super-secret-value"), "a secret value must never be shown");
    await shot("08-secrets");
    await list.getByRole("button", { name: "Rename E2E_TOKEN" }).click();
    await list.getByLabel("Name").fill("E2E_RENAMED");
    await list.getByRole("button", { name: "Save" }).click();
    await list.getByText("E2E_RENAMED").waitFor();
    await list.getByRole("button", { name: "Delete E2E_RENAMED" }).click();
    await list.getByRole("button", { name: "Yes, delete" }).click();
    await page.getByText("No secrets yet.").waitFor();
  });

  await step("git providers: set and remove a token", async () => {
    await page.getByRole("link", { name: "Git providers" }).click();
    await page.getByTestId("github-status").filter({ hasText: "No token stored." }).waitFor();
    const github = page.locator("form", { has: page.getByRole("heading", { name: "GitHub" }) });
    await github.getByLabel("Token").fill("ghp_e2etoken");
    await github.getByRole("button", { name: "Save token" }).click();
    await page.getByTestId("github-status").filter({ hasText: "A token is stored" }).waitFor();
    await shot("09-git-providers");
    await github.getByRole("button", { name: "Remove token" }).click();
    await page.getByTestId("github-status").filter({ hasText: "No token stored." }).waitFor();
  });

  await step("confirmation mode: the agent waits, the person confirms", async () => {
    await page.getByRole("link", { name: "Settings" }).first().click();
    await page.getByLabel(/confirmation mode/).check();
    await page.getByRole("button", { name: "Save settings" }).click();
    await page.getByText("Settings saved.").waitFor();
    await page.getByRole("link", { name: "Conversations" }).click();
    await page.getByLabel("What should the agent do?").fill("Run the echo command");
    await page.getByRole("button", { name: "Start" }).click();
    await page.waitForURL(/\/conversations\/[^/]+$/);
    const log = page.getByRole("log", { name: "Conversation events" });
    await log.getByText("$ echo confirmed-run").waitFor();
    await log.getByText("Needs your confirmation").waitFor();
    const bar = page.getByRole("region", { name: "Confirmation needed" });
    await bar.waitFor();
    await shot("10-confirmation");
    await bar.getByRole("button", { name: "Confirm" }).click();
    await log.getByLabel("Command output").filter({ hasText: "confirmed-run" }).waitFor();
    await log.getByText("Ran it.").waitFor();
    expectTrue((await log.getByText("$ echo confirmed-run").count()) === 1, "the confirmed action replaces the waiting one");
  });

  await step("confirmation mode: the person rejects an action", async () => {
    const box = page.getByLabel("Message to the agent");
    await box.fill("Now clean up");
    await box.press("Enter");
    const log = page.getByRole("log", { name: "Conversation events" });
    await log.getByText("$ rm -rf build").waitFor();
    const bar = page.getByRole("region", { name: "Confirmation needed" });
    await bar.getByRole("button", { name: "Reject" }).click();
    await log.getByText("You rejected the action.").waitFor();
    await log.getByText("Rejected", { exact: true }).waitFor();
    await page.getByTestId("agent-state").filter({ hasText: "Waiting for your message" }).waitFor();
    await bar.waitFor({ state: "detached" });
    await page.getByRole("button", { name: "Stop" }).click();
    await page.getByRole("button", { name: "Start", exact: true }).waitFor();
  });

  await step("an unknown conversation says so in plain words", async () => {
    await visit("/conversations/doesnotexist123");
    await page.getByRole("heading", { name: "Conversation not found" }).waitFor();
  });

  await step("delete the conversation from the list", async () => {
    await visit("/");
    const list = page.locator(".conversation-list");
    await list.getByRole("button", { name: "Delete Hello file task" }).click();
    await list.getByRole("button", { name: "Yes, delete" }).click();
    await list.getByRole("link", { name: "Hello file task" }).waitFor({ state: "detached" });
  });

  await step("keyboard: skip link and tab order reach the main content", async () => {
    await visit("/settings");
    await page.getByRole("heading", { name: "Settings" }).waitFor();
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => document.activeElement?.textContent ?? "");
    expectTrue(focused.includes("Skip to content"), `the first Tab should reach the skip link, got "${focused}"`);
  });

  expectTrue(page.pageErrors.length === 0, `uncaught errors in the page: ${page.pageErrors.join("; ")}`);
}

await run(browser, () => page, main);
