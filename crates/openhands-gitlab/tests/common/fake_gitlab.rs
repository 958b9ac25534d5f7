//! A fake GitLab REST API (`/api/v4`): the calls the integration makes, answered as GitLab
//! documents them, each checked for a token the fake knows, and recorded.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A call the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// The raw path, percent-encoding kept.
    pub path: String,
    pub query: String,
    /// The bearer token it came with.
    pub token: String,
    pub body: Value,
}

/// What the fake knows and records.
#[derive(Default)]
pub struct State {
    /// token → (user id, username).
    pub users: HashMap<String, (u64, String)>,
    /// (project id, user id) → access level.
    pub members: HashMap<(u64, u64), u32>,
    /// `group/project` → project id.
    pub projects: HashMap<String, u64>,
    pub calls: Vec<Call>,
    /// Whatever the fake found wrong with a request.
    pub problems: Vec<String>,
}

pub struct FakeGitlab {
    pub url: String,
    pub state: Arc<Mutex<State>>,
    handle: actix_web::dev::ServerHandle,
}

fn answer(
    state: &mut State,
    method: &str,
    path: &str,
    token: &str,
    body: &Value,
) -> Result<HttpResponse, String> {
    let Some((user_id, username)) = state.users.get(token).cloned() else {
        return Ok(HttpResponse::Unauthorized().json(json!({"message": "401 Unauthorized"})));
    };
    let parts: Vec<&str> = path.trim_start_matches("/api/v4/").split('/').collect();
    match (method, parts.as_slice()) {
        ("GET", ["user"]) => Ok(HttpResponse::Ok().json(json!({
            "id": user_id, "username": username, "name": username, "state": "active"
        }))),
        ("GET", ["projects", project, "members", "all", member]) => {
            let key = (project.parse().unwrap_or(0), member.parse().unwrap_or(0));
            Ok(match state.members.get(&key) {
                Some(level) => HttpResponse::Ok().json(json!({
                    "id": key.1, "username": "member", "state": "active", "access_level": level
                })),
                None => HttpResponse::NotFound().json(json!({"message": "404 Not found"})),
            })
        }
        ("POST", ["projects", _, "issues" | "merge_requests", _, "notes"])
        | (
            "POST",
            [
                "projects",
                _,
                "issues" | "merge_requests",
                _,
                "discussions",
                _,
                "notes",
            ],
        ) => {
            if body["body"].as_str().is_none_or(str::is_empty) {
                return Err(format!("{path}: a note without a body"));
            }
            Ok(HttpResponse::Created()
                .json(json!({"id": 9000 + state.calls.len(), "body": body["body"]})))
        }
        ("GET", ["projects", project]) => {
            let decoded = project.replace("%2F", "/").replace("%2f", "/");
            let id = decoded
                .parse::<u64>()
                .ok()
                .or_else(|| state.projects.get(&decoded).copied());
            let path_of = |id: u64| {
                state
                    .projects
                    .iter()
                    .find(|(_, v)| **v == id)
                    .map(|(k, _)| k.clone())
            };
            Ok(match id.and_then(|id| Some((id, path_of(id)?))) {
                Some((id, path)) => {
                    HttpResponse::Ok().json(json!({"id": id, "path_with_namespace": path}))
                }
                None => HttpResponse::NotFound().json(json!({"message": "404 Project Not Found"})),
            })
        }
        ("GET", ["projects"]) => {
            let maintained: Vec<Value> = state
                .projects
                .iter()
                .filter(|(_, id)| {
                    state
                        .members
                        .get(&(**id, user_id))
                        .is_some_and(|l| *l >= 40)
                })
                .map(|(path, id)| json!({"id": id, "path_with_namespace": path}))
                .collect();
            Ok(HttpResponse::Ok()
                .insert_header(("x-next-page", ""))
                .json(maintained))
        }
        ("POST", ["projects", _, "hooks"]) => {
            Ok(HttpResponse::Created().json(json!({"id": 77, "url": body["url"]})))
        }
        ("DELETE", ["projects", _, "hooks", _]) => Ok(HttpResponse::NoContent().finish()),
        _ => Err(format!("unexpected call {method} {path}")),
    }
}

impl FakeGitlab {
    pub fn start() -> Self {
        let state: Arc<Mutex<State>> = Arc::default();
        let shared = state.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    let shared = shared.clone();
                    App::new().default_service(web::to(
                        move |req: HttpRequest, bytes: web::Bytes| {
                            let shared = shared.clone();
                            async move {
                                let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                                let token = req
                                    .headers()
                                    .get("authorization")
                                    .and_then(|v| v.to_str().ok())
                                    .and_then(|v| v.strip_prefix("Bearer "))
                                    .unwrap_or_default()
                                    .to_owned();
                                let (method, path) = (
                                    req.method().as_str().to_owned(),
                                    req.uri().path().to_owned(),
                                );
                                let query = req.uri().query().unwrap_or_default().to_owned();
                                let mut state = shared.lock().expect("state");
                                let result = answer(&mut state, &method, &path, &token, &body);
                                state.calls.push(Call {
                                    method,
                                    path,
                                    query,
                                    token,
                                    body,
                                });
                                result.unwrap_or_else(|problem| {
                                    state.problems.push(problem);
                                    HttpResponse::BadRequest()
                                        .json(json!({"message": "refused by the fake"}))
                                })
                            }
                        },
                    ))
                })
                .workers(1)
                .disable_signals()
                .bind(("127.0.0.1", 0))
                .expect("bind fake gitlab");
                let address = server.addrs()[0];
                let running = server.run();
                tx.send((address, running.handle())).expect("send address");
                let _ = running.await;
            });
        });
        let (address, handle) = rx.recv().expect("fake gitlab started");
        Self {
            url: format!("http://{address}"),
            state,
            handle,
        }
    }

    /// `127.0.0.1:<port>`, the host a linked token of this GitLab names.
    pub fn host(&self) -> String {
        self.url.trim_start_matches("http://").to_owned()
    }

    pub fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("state"))
    }

    pub fn calls(&self) -> Vec<Call> {
        self.with_state(|s| s.calls.clone())
    }

    /// The notes posted (new notes and discussion replies).
    pub fn notes(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == "POST" && c.path.ends_with("/notes"))
            .collect()
    }

    pub fn problems(&self) -> Vec<String> {
        self.with_state(|s| s.problems.clone())
    }
}

impl Drop for FakeGitlab {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}
