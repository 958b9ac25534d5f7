//! What the bench sends: the set-up requests and the measured scenarios.
//!
//! Kept apart from the machinery so changing what is measured never means
//! reading the load generator, and so the report and the targets refer to
//! scenarios by the same method and path the load generator sends.

use anyhow::{Context, Result};
use hyper::header::{AUTHORIZATION, COOKIE, HeaderValue};

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

/// The SaaS scenarios (PostgreSQL, OIDC login): the settings read, authenticated by the
/// session cookie or by an API key.
pub const SAAS_COOKIE: &str = "GET /api/settings (SaaS, cookie)";
pub const SAAS_API_KEY: &str = "GET /api/settings (SaaS, API key)";
/// The session cookie of SaaS login, as OpenHands names it.
const SESSION_COOKIE: &str = "keycloak_auth";

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

/// The SaaS settings read with the sealed session cookie `cookie` (its value).
pub fn saas_settings_by_cookie(cookie: &str) -> Result<Scenario> {
    let value = secret_header(&format!("{SESSION_COOKIE}={cookie}"))
        .context("the session cookie is not a valid header value")?;
    Ok(scenario(
        SAAS_COOKIE,
        RequestSpec::get(SETTINGS).with_header(COOKIE, value),
    ))
}

/// The SaaS settings read with `Authorization: Bearer <api_key>`.
pub fn saas_settings_by_api_key(api_key: &str) -> Result<Scenario> {
    let value = secret_header(&format!("Bearer {api_key}"))
        .context("the API key is not a valid header value")?;
    Ok(scenario(
        SAAS_API_KEY,
        RequestSpec::get(SETTINGS).with_header(AUTHORIZATION, value),
    ))
}

/// A header value marked sensitive (hyper keeps it out of its debug output).
fn secret_header(text: &str) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(text)?;
    value.set_sensitive(true);
    Ok(value)
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
    fn saas_scenarios_carry_their_credentials() -> anyhow::Result<()> {
        let by_cookie = saas_settings_by_cookie("k1.sealed-value")?;
        assert_eq!(by_cookie.name, SAAS_COOKIE);
        assert_eq!(by_cookie.request.path, SETTINGS);
        assert_eq!(by_cookie.request.headers.len(), 1);
        let (name, value) = &by_cookie.request.headers[0];
        assert_eq!(
            (name, value.to_str()?),
            (&COOKIE, "keycloak_auth=k1.sealed-value")
        );
        assert!(value.is_sensitive());

        let by_key = saas_settings_by_api_key("ohk_abc")?;
        assert_eq!(by_key.name, SAAS_API_KEY);
        let (name, value) = &by_key.request.headers[0];
        assert_eq!((name, value.to_str()?), (&AUTHORIZATION, "Bearer ohk_abc"));
        Ok(())
    }

    #[test]
    fn credentials_that_cannot_be_headers_are_refused() {
        assert!(saas_settings_by_cookie("line\nbreak").is_err());
        assert!(saas_settings_by_api_key("ohk_\r").is_err());
    }

    #[test]
    fn bodies_are_valid_json() -> anyhow::Result<()> {
        for body in [SETTINGS_BODY, SETTINGS_WRITE_BODY] {
            serde_json::from_str::<serde_json::Value>(body)?;
        }
        Ok(())
    }
}
