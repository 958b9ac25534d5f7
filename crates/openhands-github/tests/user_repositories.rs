//! `/api/user/*` against a fake GitHub REST API: the real client (`user_service`) reads the
//! user's account, repositories, search results, branches and installations with the
//! user's linked token, mapped to OpenHands' models; listings are cached per user; a spent
//! rate limit, a refused token and a missing token each get their own answer.

mod common;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use common::key_pair;
use openhands_github::GithubSettings;
use openhands_test_support::{TestServer, json_body};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

// Named so its registrations are linked into this test binary.
use openhands_github as _;

const USER_TOKEN: &str = "ghu_user_token_1";

/// What the fake GitHub saw: `(path, authorization)` per request.
#[derive(Default)]
struct Seen {
    calls: Mutex<Vec<(String, String)>>,
    /// Search answers 403 with the rate limit spent.
    search_limited: AtomicUsize,
}

struct FakeGithub {
    url: String,
    seen: Arc<Seen>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        actix_web::rt::spawn(async move { handle.stop(false).await });
    }
}

fn repo(id: u64, name: &str, private: bool, owner: &str) -> Value {
    json!({"id": id, "full_name": name, "private": private, "stargazers_count": 3,
           "pushed_at": "2026-12-01T10:00:00Z", "owner": {"login": "acme", "type": owner},
           "default_branch": "main"})
}

async fn answer(req: HttpRequest, seen: web::Data<Arc<Seen>>) -> HttpResponse {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let path = req.path().to_owned();
    let query = req.query_string().to_owned();
    seen.calls
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((format!("{path}?{query}"), auth.clone()));
    if auth != format!("Bearer {USER_TOKEN}") {
        return HttpResponse::Unauthorized().json(json!({"message": "Bad credentials"}));
    }
    match path.as_str() {
        "/user" => HttpResponse::Ok().json(json!({"id": 42, "login": "codertocat",
            "avatar_url": "https://avatars.example/42", "company": "Acme", "name": "Coder",
            "email": null})),
        "/user/repos" => HttpResponse::Ok()
            .insert_header((
                "Link",
                "<https://api.github.com/user/repos?page=2>; rel=\"next\"",
            ))
            .json(json!([
                repo(1, "acme/app", false, "Organization"),
                repo(2, "codertocat/dotfiles", true, "User")
            ])),
        "/user/installations/5/repositories" => HttpResponse::Ok()
            .json(json!({"total_count": 1, "repositories": [repo(3, "acme/installed", true, "Organization")]})),
        "/search/repositories" => {
            if seen.search_limited.load(Ordering::SeqCst) > 0 {
                let reset = chrono_now() + 30;
                return HttpResponse::Forbidden()
                    .insert_header(("x-ratelimit-remaining", "0"))
                    .insert_header(("x-ratelimit-reset", reset.to_string()))
                    .json(json!({"message": "API rate limit exceeded"}));
            }
            HttpResponse::Ok().json(json!({"total_count": 1, "items": [repo(1, "acme/app", false, "Organization")]}))
        }
        "/repos/acme/app/branches" => HttpResponse::Ok()
            .insert_header((
                "Link",
                "<https://api.github.com/repos/acme/app/branches?page=2>; rel=\"next\"",
            ))
            .json(json!([{"name": "main", "commit": {"sha": "abc123"}, "protected": true}])),
        // An answer past the provider bound (8 MiB), declared with its length.
        "/repos/acme/huge/branches" => {
            let mut body = b"[".to_vec();
            body.extend(std::iter::repeat_n(b' ', 9 * 1024 * 1024));
            body.push(b']');
            HttpResponse::Ok()
                .content_type("application/json")
                .body(body)
        }
        "/user/installations" => {
            HttpResponse::Ok().json(json!({"total_count": 1, "installations": [{"id": 5}]}))
        }
        _ => HttpResponse::NotFound().json(json!({"message": "Not Found"})),
    }
}

fn chrono_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl FakeGithub {
    fn start() -> Self {
        let seen = Arc::new(Seen::default());
        let data = web::Data::new(seen.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(answer))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("bind");
        let url = format!("http://{}", server.addrs()[0]);
        let running = server.run();
        let handle = running.handle();
        actix_web::rt::spawn(running);
        Self { url, seen, handle }
    }

    fn calls_to(&self, path: &str) -> Vec<(String, String)> {
        self.seen
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(p, _)| p.starts_with(path))
            .cloned()
            .collect()
    }
}

/// A server (OSS mode, the local user) whose GitHub is the fake.
async fn server(github: &FakeGithub) -> TestServer {
    let vars: HashMap<&str, String> = HashMap::from([
        ("GITHUB_APP_CLIENT_ID", "Iv23testapp".to_owned()),
        ("GITHUB_APP_PRIVATE_KEY", key_pair().0.clone()),
        ("GITHUB_APP_WEBHOOK_SECRET", "secret".to_owned()),
        ("GITHUB_API_URL", github.url.clone()),
    ]);
    let settings = GithubSettings::from_lookup(|k| vars.get(k).cloned(), None)
        .expect("valid")
        .expect("configured");
    TestServer::spawn_with(move |c| GithubSettings::install_for(&c.file_store_path, settings)).await
}

async fn link_token(server: &TestServer, token: &str) {
    let res = server
        .post_json(
            "/api/add-git-providers",
            &json!({"provider_tokens": {"github": {"token": token}}}),
        )
        .await;
    assert_eq!(res.status(), 200, "storing the token");
}

#[actix_web::test]
async fn without_a_token_every_route_answers_openhands_401_string() {
    let github = FakeGithub::start();
    let server = server(&github).await;
    for path in [
        "/api/user/info",
        "/api/user/repositories",
        "/api/user/search/repositories?query=x",
        "/api/user/repository/branches?repository=acme/app",
        "/api/user/installations?provider=github",
    ] {
        let res = server.get(path).await;
        assert_eq!(res.status(), 401, "{path}");
        assert_eq!(json_body(res).await, json!("Git provider token required."));
    }
    assert!(github.calls_to("/").is_empty(), "GitHub was not asked");
}

#[actix_web::test]
async fn the_users_github_data_is_read_with_their_token_and_mapped() {
    let github = FakeGithub::start();
    let server = server(&github).await;
    link_token(&server, USER_TOKEN).await;

    let user = json_body(server.get("/api/user/info").await).await;
    assert_eq!(
        user,
        json!({"id": "42", "login": "codertocat", "avatar_url": "https://avatars.example/42",
               "company": "Acme", "name": "Coder", "email": null})
    );

    let res = server.get("/api/user/repositories?per_page=2").await;
    assert_eq!(res.status(), 200);
    let repositories = json_body(res).await;
    assert_eq!(repositories[0]["id"], "1");
    assert_eq!(repositories[0]["full_name"], "acme/app");
    assert_eq!(repositories[0]["git_provider"], "github");
    assert_eq!(repositories[0]["is_public"], true);
    assert_eq!(repositories[0]["owner_type"], "organization");
    assert_eq!(repositories[0]["main_branch"], "main");
    assert_eq!(repositories[1]["is_public"], false);
    assert_eq!(repositories[1]["owner_type"], "user");
    assert!(
        repositories[0]["link_header"]
            .as_str()
            .is_some_and(|l| l.contains("rel=\"next\""))
    );
    let calls = github.calls_to("/user/repos");
    assert_eq!(calls.len(), 1);
    assert!(
        calls[0].0.contains("sort=pushed") && calls[0].0.contains("per_page=2"),
        "{calls:?}"
    );
    assert_eq!(calls[0].1, format!("Bearer {USER_TOKEN}"));
    // The same listing again comes from the cache.
    let again = json_body(server.get("/api/user/repositories?per_page=2").await).await;
    assert_eq!(again, repositories);
    assert_eq!(github.calls_to("/user/repos").len(), 1, "served from cache");

    let installed = json_body(server.get("/api/user/repositories?installation_id=5").await).await;
    assert_eq!(installed[0]["full_name"], "acme/installed");
    let res = server
        .get("/api/user/repositories?installation_id=5%2F..")
        .await;
    assert_eq!(res.status(), 404, "an installation id is digits");

    let found = json_body(server.get("/api/user/search/repositories?query=app").await).await;
    assert_eq!(found[0]["full_name"], "acme/app");
    let search = github.calls_to("/search/repositories");
    assert!(
        search[0].0.contains("q=app") && search[0].0.contains("per_page=5"),
        "{search:?}"
    );

    let branches = json_body(
        server
            .get("/api/user/repository/branches?repository=acme/app&per_page=1")
            .await,
    )
    .await;
    assert_eq!(
        branches,
        json!({"branches": [{"name": "main", "commit_sha": "abc123", "protected": true,
                             "last_push_date": null}],
               "has_next_page": true, "current_page": 1, "per_page": 1, "total_count": null})
    );
    let res = server
        .get("/api/user/repository/branches?repository=../etc/passwd")
        .await;
    assert_eq!(res.status(), 400);
    let res = server
        .get("/api/user/repository/branches?repository=acme/missing")
        .await;
    assert_eq!(res.status(), 404);

    assert_eq!(
        json_body(server.get("/api/user/installations?provider=github").await).await,
        json!(["5"])
    );
    let res = server.get("/api/user/repositories?per_page=1000").await;
    assert_eq!(res.status(), 400);
}

#[actix_web::test]
async fn a_spent_rate_limit_is_429_with_retry_after_and_a_refused_token_401() {
    let github = FakeGithub::start();
    let server = server(&github).await;
    link_token(&server, USER_TOKEN).await;
    github.seen.search_limited.store(1, Ordering::SeqCst);
    let res = server.get("/api/user/search/repositories?query=app").await;
    assert_eq!(res.status(), 429);
    let retry_after: u64 = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=31).contains(&retry_after), "{retry_after}");
    assert_eq!(json_body(res).await["code"], "provider_rate_limited");

    link_token(&server, "ghu_revoked").await;
    let res = server.get("/api/user/info").await;
    assert_eq!(res.status(), 401);
    let body = json_body(res).await;
    assert!(
        body.as_str()
            .is_some_and(|m| m.contains("link the account again")),
        "{body}"
    );
    assert!(
        !body.to_string().contains("ghu_revoked"),
        "no token in answers"
    );
}

#[actix_web::test]
async fn an_oversized_github_answer_is_a_provider_error_not_buffered_whole() {
    let github = FakeGithub::start();
    let server = server(&github).await;
    link_token(&server, USER_TOKEN).await;
    let res = server
        .get("/api/user/repository/branches?repository=acme/huge")
        .await;
    assert_eq!(res.status(), 502);
    let body = json_body(res).await;
    assert_eq!(body["code"], "provider_error", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("larger than")),
        "{body}"
    );
}
