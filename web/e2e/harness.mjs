// What the browser runs share: Debian's Chromium through playwright-core (no browser
// download), named steps that stop at the first failure with a screenshot of it, and
// screenshots under E2E_SCREENSHOTS (default: <repo>/target/screenshots).

import { chromium } from "playwright-core";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const shots = resolve(process.env.E2E_SCREENSHOTS ?? join(here, "..", "..", "target", "screenshots"));
const browserPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const WAIT = 30_000;
/** Failure screenshots are named after the script, so each run clears only its own. */
const failurePrefix = `failure-${basename(process.argv[1] ?? "e2e", ".mjs")}-`;

/** Flags that keep Chromium off the network and away from a desktop session. */
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A browser (each context a fresh profile, in a temporary user data dir). */
export async function launch() {
  mkdirSync(shots, { recursive: true });
  for (const file of readdirSync(shots)) {
    if (file.startsWith(failurePrefix)) rmSync(join(shots, file), { force: true });
  }
  return chromium.launch({ executablePath: browserPath, headless: true, args: ARGS });
}

/** A page in a fresh context that reports uncaught errors and console errors. */
export async function openPage(browser) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  context.setDefaultTimeout(WAIT);
  const page = await context.newPage();
  page.pageErrors = [];
  page.on("pageerror", (error) => page.pageErrors.push(String(error)));
  page.on("console", (message) => {
    if (message.type() === "error") console.error(`[browser] ${message.text()}`);
  });
  return page;
}

export async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

export function expectTrue(condition, message) {
  if (!condition) throw new Error(message);
}

/**
 * Runs `main(step)`; `step(name, fn)` logs each passed step. Exits 0 when all passed, 1 at
 * the first failure (after a screenshot of `failurePage()`), always closing the browser.
 */
export async function run(browser, failurePage, main) {
  let current = "";
  const step = async (name, fn) => {
    current = name;
    const started = Date.now();
    await fn();
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  };
  let failed = false;
  try {
    await main(step);
    console.log(`e2e passed; screenshots in ${shots}`);
  } catch (error) {
    failed = true;
    console.error(`FAIL ${current}: ${error instanceof Error ? error.message : error}`);
    const page = failurePage();
    if (page) {
      const name = `${failurePrefix}${current.replace(/[^a-z0-9]+/gi, "-").slice(0, 60)}`;
      await shot(page, name).catch(() => undefined);
    }
  } finally {
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
}
