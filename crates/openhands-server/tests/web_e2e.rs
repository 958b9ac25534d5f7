//! The web app in a real browser against the real server. `web/e2e/run.mjs` drives headless
//! Chromium (Debian's `chromium` through `playwright-core`) through settings, a conversation
//! run by the scripted LLM, the files panel, stop and reload, confirmation mode, secrets and
//! git-provider tokens; `web/e2e/saas.mjs` signs in through the real OIDC provider of the
//! auth tests, accepts the terms, manages API keys and organizations, and logs out. Both
//! save screenshots under `<target dir>/screenshots`.
//!
//! The app is served from `web/dist` as built (`cargo xtask web`); when it is missing the
//! test builds it. Without `node` or `chromium` the test is skipped with a message, unless
//! `WEB_E2E_REQUIRE_BROWSER` is set (CI sets it), in which case it fails.

use openhands_runtime::testing::{ScriptedLlm, ScriptedReply};
use openhands_test_support::oidc::OidcConfig;
use openhands_test_support::{TestServer, saas};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// One browser run, browser start included.
const RUN_LIMIT: Duration = Duration::from_secs(150);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chromium_path() -> PathBuf {
    std::env::var_os("CHROMIUM_PATH")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

fn node_works() -> bool {
    Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Why the browser test cannot run here, if it cannot.
fn missing_tools() -> Option<String> {
    let mut missing = Vec::new();
    if !node_works() {
        missing.push("node (apt install nodejs npm)".to_owned());
    }
    if !chromium_path().is_file() {
        missing.push(format!(
            "{} (apt install chromium, or set CHROMIUM_PATH)",
            chromium_path().display()
        ));
    }
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// Runs a command in `dir`, panicking with its output when it fails.
fn run_in(dir: &Path, program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("could not start `{program} {}`: {e}", args.join(" ")));
    assert!(
        output.status.success(),
        "`{program} {}` in {} failed:\n{}\n{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `web/node_modules` and `web/dist`, installed and built when missing.
fn ensure_web_app(web: &Path) {
    if !web.join("node_modules/playwright-core").is_dir() {
        run_in(web, "npm", &["ci", "--no-audit", "--no-fund"]);
    }
    if !web.join("dist/index.html").is_file() {
        run_in(web, "npm", &["run", "build"]);
    }
}

/// `<target dir>/screenshots`: the test binary lives in `<target dir>/<profile>/deps/`.
fn screenshots_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OPENHANDS_SCREENSHOTS") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(|| repo_root().join("target"))
        .join("screenshots")
}

/// A git repository with one commit, for the conversation to start on.
fn sample_repository(dir: &Path) {
    std::fs::write(dir.join("README.md"), "# Sample\n").expect("write README");
    run_in(dir, "git", &["init", "-q", "-b", "main"]);
    run_in(dir, "git", &["add", "."]);
    run_in(
        dir,
        "git",
        &[
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "commit",
            "-qm",
            "initial",
        ],
    );
}

fn tool(name: &str, arguments: serde_json::Value) -> ScriptedReply {
    ScriptedReply::tool_call(name, arguments)
}

/// The `web/` folder with the app installed and built, or `None` (after saying why) when
/// this machine cannot run a browser and nothing requires it to.
fn prepare(test: &str) -> Option<PathBuf> {
    if let Some(missing) = missing_tools() {
        assert!(
            std::env::var_os("WEB_E2E_REQUIRE_BROWSER").is_none(),
            "WEB_E2E_REQUIRE_BROWSER is set but the browser test cannot run: missing {missing}"
        );
        eprintln!("SKIPPED {test}: missing {missing}");
        return None;
    }
    let web = repo_root().join("web");
    ensure_web_app(&web);
    Some(web)
}

/// Runs `node <script> <base_url>` in `web/` with `env`, printing its output and failing the
/// test when it fails. Returns the screenshots folder.
async fn run_script(
    web: &Path,
    script: &str,
    base_url: &str,
    env: &[(&str, std::ffi::OsString)],
) -> PathBuf {
    let screenshots = screenshots_dir();
    let mut command = tokio::process::Command::new("node");
    command
        .arg(script)
        .arg(base_url)
        .current_dir(web)
        .env("E2E_SCREENSHOTS", &screenshots)
        .env("CHROMIUM_PATH", chromium_path())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("`node {script}` took longer than {RUN_LIMIT:?}"))
        .unwrap_or_else(|e| panic!("could not start `node {script}`: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(
        output.status.success(),
        "`node {script}` failed ({}); screenshots in {}:\n{stdout}\n{stderr}",
        output.status,
        screenshots.display()
    );
    screenshots
}

fn assert_screenshots(dir: &Path, names: &[&str]) {
    for name in names {
        let file = dir.join(format!("{name}.png"));
        assert!(file.is_file(), "screenshot {} missing", file.display());
    }
}

#[tokio::test]
async fn web_app_in_headless_chromium() {
    let Some(web) = prepare("web_app_in_headless_chromium") else {
        return;
    };

    // What run.mjs expects the agent to do, in order.
    let llm = ScriptedLlm::start(vec![
        tool(
            "str_replace_based_edit_tool",
            json!({"command": "create", "path": "hello.txt", "file_text": "hello from the agent\n"}),
        ),
        tool("execute_bash", json!({"command": "cat hello.txt"})),
        tool("finish", json!({"message": "I wrote hello.txt."})),
        ScriptedReply::Text("Bye!".into()),
        tool("execute_bash", json!({"command": "echo confirmed-run"})),
        tool("finish", json!({"message": "Ran it."})),
        tool("execute_bash", json!({"command": "rm -rf build"})),
    ])
    .await
    .expect("scripted LLM");
    let repository = tempfile::tempdir().expect("repository dir");
    sample_repository(repository.path());
    let dist = web.join("dist");
    let server = TestServer::spawn_with(|config| {
        config.web_dir = dist.display().to_string();
    })
    .await;

    let screenshots = run_script(
        &web,
        "e2e/run.mjs",
        &server.url(""),
        &[
            ("E2E_LLM_BASE_URL", llm.base_url().into()),
            ("E2E_REPOSITORY", repository.path().into()),
        ],
    )
    .await;
    assert_screenshots(
        &screenshots,
        &[
            "01-home-empty",
            "02-settings",
            "03-conversation",
            "04-files",
            "05-changes",
            "06-conversation-reloaded",
            "07-home-list",
            "08-secrets",
            "09-git-providers",
            "10-confirmation",
        ],
    );
}

#[tokio::test]
async fn web_app_saas_login_in_headless_chromium() {
    let Some(web) = prepare("web_app_saas_login_in_headless_chromium") else {
        return;
    };
    let dist = web.join("dist");
    // Users `alice` (e-mail verified) and `bob` (not verified).
    let env = saas::Env::start(OidcConfig::default(), |config| {
        config.web_dir = dist.display().to_string();
    })
    .await;
    let screenshots = run_script(&web, "e2e/saas.mjs", &env.server.url(""), &[]).await;
    assert_screenshots(
        &screenshots,
        &[
            "11-saas-sign-in",
            "12-saas-terms",
            "13-saas-api-keys",
            "14-saas-email-not-verified",
            "15-saas-organizations",
        ],
    );
}
