//! The `openhands` binary: start-up failures, `plugins` and `config`.

use std::process::{Command, Output};

fn openhands(args: &[&str], env: &[(&str, &str)]) -> Output {
    let data = tempfile::tempdir().expect("data dir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_openhands"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", data.path())
        .env("FILE_STORE_PATH", data.path())
        .env("OPENHANDS_CONFIG_FILE", data.path().join("none.toml"))
        .env("OPENHANDS_PORT", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run openhands")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn unknown_config_class_stops_start_up_listing_the_classes() {
    let out = openhands(&["serve"], &[("OPENHANDS_CONFIG_CLS", "enterprise")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("unknown config class `enterprise`"), "{err}");
    assert!(err.contains("`oss`"), "{err}");
}

#[test]
fn unknown_slot_name_stops_start_up_naming_slot_and_registered_names() {
    let out = openhands(
        &["serve"],
        &[("OPENHANDS_PLUGINS__SETTINGS_STORE", "oss.nope")],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("slot `settings_store`"), "{err}");
    assert!(err.contains("`oss.nope`"), "{err}");
    assert!(err.contains("`oss.file_settings`"), "{err}");
}

#[test]
fn bad_value_stops_start_up_naming_key_value_and_expectation() {
    let out = openhands(&["serve"], &[("MAX_CONCURRENT_CONVERSATIONS", "lots")]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("max_concurrent_conversations"), "{err}");
    assert!(err.contains("lots"), "{err}");
    assert!(err.contains("MAX_CONCURRENT_CONVERSATIONS"), "{err}");
}

#[test]
fn plugins_lists_every_slot_and_marks_the_selection() {
    let out = openhands(&["plugins"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for slot in [
        "settings_store:",
        "secrets_store:",
        "conversation_store:",
        "event_store:",
        "user_auth:",
        "conversation_manager:",
        "monitoring_listener:",
        "rate_limiter:",
    ] {
        assert!(text.contains(slot), "{slot} missing:\n{text}");
    }
    assert!(text.contains("* oss.file_settings"), "{text}");
    assert!(text.contains("* oss "), "{text}");
}

#[test]
fn config_prints_effective_values_with_secrets_redacted() {
    let out = openhands(
        &["config"],
        &[
            ("SESSION_API_KEY", "very-secret-session-key"),
            ("PORT", "4321"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("very-secret-session-key"), "{text}");
    let config: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(config["session_api_key"], "**********");
    assert_eq!(config["port"], 0, "OPENHANDS_PORT wins over PORT");
}

/// `openhands tool-server` is the sandbox's tool server from this same binary (the
/// fallback when no `openhands-tool-server` sits next to it): it speaks the tool protocol.
#[tokio::test]
async fn the_tool_server_subcommand_speaks_the_tool_protocol() {
    use openhands_core::tool_protocol::{CommandOutput, Request, ToolClient};
    let workspace = tempfile::tempdir().expect("workspace");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_openhands"))
        .arg("tool-server")
        .arg("--workspace")
        .arg(workspace.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run openhands tool-server");
    let stdout = child.stdout.take().expect("stdout");
    let stdin = child.stdin.take().expect("stdin");
    let tools = ToolClient::connect(stdout, stdin)
        .await
        .expect("the subcommand says hello");
    assert_eq!(
        tools.workspace(),
        workspace.path().display().to_string().as_str()
    );
    let out: CommandOutput = tools
        .call(Request::BashRun {
            session: "s".into(),
            command: "echo made > f.txt && cat f.txt".into(),
            timeout_ms: 10_000,
        })
        .await
        .expect("the command runs");
    assert_eq!(out.exit_code, 0, "{}", out.output);
    assert!(out.output.contains("made"), "{}", out.output);
    assert!(workspace.path().join("f.txt").is_file());
}
