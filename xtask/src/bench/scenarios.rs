//! What the bench sends: the set-up requests and the measured scenarios.
//!
//! Kept apart from the machinery so changing what is measured never means
//! reading the load generator, and so the report and the targets refer to
//! scenarios by the same method and path the load generator sends.

use super::client::RequestSpec;

/// LLM settings stored before anything is measured (the settings routes then
/// read and write a realistic document).
pub const SETTINGS_BODY: &str = r#"{"llm_model":"openai/gpt-4o","llm_api_key":"sk-bench-key"}"#;
/// The body of the measured settings write.
pub const SETTINGS_WRITE_BODY: &str =
    r#"{"llm_model":"openai/gpt-4o","llm_api_key":"sk-bench-key","language":"en"}"#;

pub const ALIVE: &str = "/alive";
pub const SETTINGS: &str = "/api/settings";
pub const CONVERSATIONS: &str = "/api/conversations";

/// One measured scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub request: RequestSpec,
}

/// The set-up request that stores the LLM settings.
pub fn store_settings() -> RequestSpec {
    RequestSpec::post_json(SETTINGS, SETTINGS_BODY)
}

/// The set-up request that creates one conversation.
pub fn create_conversation() -> RequestSpec {
    RequestSpec::post_json(CONVERSATIONS, "{}")
}

/// The measured scenarios, in report order; `stored` is the number of
/// conversations the set-up created (the list route returns its first page).
pub fn all(stored: usize) -> Vec<Scenario> {
    vec![
        scenario("GET /alive", RequestSpec::get(ALIVE)),
        scenario("GET /api/settings", RequestSpec::get(SETTINGS)),
        scenario(
            "POST /api/settings",
            RequestSpec::post_json(SETTINGS, SETTINGS_WRITE_BODY),
        ),
        scenario(
            &format!("GET /api/conversations ({} stored)", thousands(stored)),
            RequestSpec::get(CONVERSATIONS),
        ),
    ]
}

fn scenario(name: &str, request: RequestSpec) -> Scenario {
    Scenario {
        name: name.to_owned(),
        request,
    }
}

/// `1000` -> `1,000`, for scenario names people read.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn conversation_scenario_names_the_stored_count() {
        let names: Vec<String> = all(1000).into_iter().map(|s| s.name).collect();
        assert!(names.contains(&"GET /api/conversations (1,000 stored)".to_owned()));
        assert_eq!(names.len(), 4);
    }

    #[test]
    fn bodies_are_valid_json() -> anyhow::Result<()> {
        for body in [SETTINGS_BODY, SETTINGS_WRITE_BODY] {
            serde_json::from_str::<serde_json::Value>(body)?;
        }
        Ok(())
    }
}
