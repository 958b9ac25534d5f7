//! Where browser flows (login, account linking) send the browser, shared by the crates that
//! run them so they agree on the rules.

use actix_web::HttpRequest;

/// The server's public base URL: `configured` when set, else the request's own host, over
/// http only for loopback hosts (as OpenHands builds its redirect URIs). Behind a proxy the
/// configured URL is what makes a redirect URI match the one registered at a provider.
pub fn public_base_url(configured: Option<&str>, req: &HttpRequest) -> String {
    if let Some(url) = configured {
        return url.to_owned();
    }
    let info = req.connection_info();
    let host = info.host();
    let local = ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .any(|h| host == *h || host.starts_with(&format!("{h}:")));
    format!("{}://{host}", if local { "http" } else { "https" })
}

/// A local path to land on after a browser flow; anything else (another site, `//host`,
/// `/\host`, control characters) becomes `/`, so the flows are no open redirect.
pub fn safe_local_path(target: Option<&str>) -> String {
    match target {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && !path.chars().any(char::is_control) =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn only_local_paths_are_redirect_targets() {
        assert_eq!(
            safe_local_path(Some("/conversations/1?x=2")),
            "/conversations/1?x=2"
        );
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "evil",
            "/a\nb",
            "/a\rb",
        ] {
            assert_eq!(safe_local_path(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_local_path(None), "/");
    }

    #[test]
    fn the_base_url_is_configured_or_the_requests_own() {
        let local = TestRequest::default()
            .insert_header(("host", "127.0.0.1:3000"))
            .to_http_request();
        assert_eq!(public_base_url(None, &local), "http://127.0.0.1:3000");
        let remote = TestRequest::default()
            .insert_header(("host", "app.example.com"))
            .to_http_request();
        assert_eq!(public_base_url(None, &remote), "https://app.example.com");
        assert_eq!(
            public_base_url(Some("https://openhands.example"), &remote),
            "https://openhands.example"
        );
    }
}
