// The web app in SaaS mode in headless Chromium: sign in through the real OIDC provider
// (the `oidc-provider` test process, whose login form takes a user name), accept the terms,
// manage API keys, organizations and a secret with the session cookie, log out; then a user
// whose e-mail is not verified sees the screen that says so.
//
//   node e2e/saas.mjs <server base URL>
//
// The server must be fresh, in SaaS mode, logging in through a provider with the users
// `alice` (e-mail verified) and `bob` (not verified), as `openhands_test_support::saas::Env`
// starts them. Environment: E2E_SCREENSHOTS, CHROMIUM_PATH (see harness.mjs).

import { expectTrue, launch, openPage, run, shot } from "./harness.mjs";

const baseUrl = (process.argv[2] ?? "").replace(/\/$/, "");
if (!baseUrl) {
  console.error("usage: node e2e/saas.mjs <server base URL>");
  process.exit(2);
}

const browser = await launch();
let page = await openPage(browser);

/** From the app's sign-in screen through the provider's login and consent pages. */
async function signIn(user) {
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  await page.getByRole("link", { name: "Sign in" }).click();
  await page.locator('input[name="login"]').fill(user);
  await page.getByRole("button", { name: "Sign in" }).click();
  // Consent is asked once per provider session.
  const allow = page.getByRole("button", { name: "Allow" });
  await allow.waitFor();
  await allow.click();
  await page.waitForURL((url) => url.toString().startsWith(baseUrl));
}

async function main(step) {
  await step("a visitor is asked to sign in", async () => {
    await page.goto(`${baseUrl}/settings`);
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    await shot(page, "11-saas-sign-in");
  });

  await step("sign in through the OIDC provider and accept the terms", async () => {
    await signIn("alice");
    await page.getByRole("heading", { name: "Terms of service" }).waitFor();
    await shot(page, "12-saas-terms");
    await page.getByRole("button", { name: "I accept the terms" }).click();
    // Back where the sign-in started.
    await page.getByRole("heading", { name: "Settings" }).waitFor();
    expectTrue(new URL(page.url()).pathname === "/settings", `expected /settings, got ${page.url()}`);
    await page.getByRole("button", { name: "Log out" }).waitFor();
  });

  await step("API keys: create (shown once), list, revoke", async () => {
    await page.getByRole("link", { name: "API keys" }).click();
    await page.getByText("No API keys.").waitFor();
    await page.getByLabel("Name").fill("e2e key");
    await page.getByRole("button", { name: "Create key" }).click();
    const key = (await page.locator(".new-key").textContent()) ?? "";
    expectTrue(/^ohk_[0-9A-Za-z]{40}$/.test(key), `a new key is shown once, got "${key}"`);
    await page.getByText("e2e key").waitFor();
    await shot(page, "13-saas-api-keys");
    await page.getByRole("button", { name: "Revoke e2e key" }).click();
    await page.getByRole("button", { name: "Yes, revoke" }).click();
    await page.getByText("No API keys.").waitFor();
  });

  await step("organizations: create one, see its members, invite, switch back", async () => {
    await page.getByRole("link", { name: "Organizations" }).click();
    const orgs = page.getByRole("list", { name: "Organizations" });
    await orgs.getByText("current").waitFor();
    expectTrue((await orgs.getByRole("listitem").count()) === 1, "a new user has one personal organization");
    const personal = (await orgs.locator("strong").first().textContent()) ?? "";
    await page.getByLabel("New organization").fill("Acme e2e");
    await page.getByRole("button", { name: "Create" }).click();
    await page.getByRole("heading", { name: "Members of Acme e2e" }).waitFor();
    const members = page.getByRole("list", { name: "Members" });
    await members.getByText("alice@example.com", { exact: true }).waitFor();
    await page.getByLabel("Invite by e-mail").fill("carol@example.com");
    await page.getByLabel("Role for the invitation").selectOption("admin");
    await page.getByRole("button", { name: "Invite" }).click();
    await page.getByText("Invitation sent to carol@example.com.").waitFor();
    await shot(page, "15-saas-organizations");
    await orgs.getByRole("button", { name: `Switch to ${personal}` }).click();
    await page.getByRole("heading", { name: `Members of ${personal}` }).waitFor();
  });

  await step("changes made with the session cookie pass the origin check", async () => {
    await page.getByRole("link", { name: "Secrets" }).click();
    await page.getByLabel("Name").first().fill("SAAS_SECRET");
    await page.getByLabel("Value").fill("v");
    await page.getByRole("button", { name: "Add secret" }).click();
    await page.getByRole("list", { name: "Secrets" }).getByText("SAAS_SECRET").waitFor();
  });

  await step("log out", async () => {
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
  });

  await step("an unverified e-mail gets the screen that says so", async () => {
    await page.context().close();
    page = await openPage(browser);
    await page.goto(`${baseUrl}/`);
    await signIn("bob");
    const terms = page.getByRole("heading", { name: "Terms of service" });
    const email = page.getByRole("heading", { name: "Verify your e-mail" });
    await terms.or(email).waitFor();
    if (await terms.isVisible()) await page.getByRole("button", { name: "I accept the terms" }).click();
    await email.waitFor();
    await shot(page, "14-saas-email-not-verified");
  });

  expectTrue(page.pageErrors.length === 0, `uncaught errors in the page: ${page.pageErrors.join("; ")}`);
}

await run(browser, () => page, main);
