//! A tenant-isolation property test: random users, tenants, memberships and roles, and random
//! sequences of API calls checked against a model. Invariants, after every call:
//! - no response carries an id of a tenant, todo or user the caller may not see (tenants they
//!   belong to, todos of those tenants, themself and their co-members);
//! - the role rules hold: the status is what the model says (404 for non-members, 403 for a
//!   role that is not enough, 409 for the last admin, success otherwise);
//! - lists show exactly what the model says the caller may see.

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::atomic::{AtomicU64, Ordering},
};

use common::TestApp;
use http::Method;
use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

const USERS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    CreateTenant(usize),
    Invite { actor: usize, t: usize, target: usize, role: &'static str },
    PutMember { actor: usize, t: usize, target: usize, role: &'static str },
    RemoveMember { actor: usize, t: usize, target: usize },
    CreateTodo { actor: usize, t: usize },
    ListTodos { actor: usize, t: usize },
    GetTodo { actor: usize, t: usize, k: usize },
    PatchTodo { actor: usize, t: usize, k: usize },
    DeleteTodo { actor: usize, t: usize, k: usize },
    ListAll(usize),
    ListTenants(usize),
    GetTenant { actor: usize, t: usize },
    Members { actor: usize, t: usize },
    Users(usize),
    GetUser { actor: usize, target: usize },
    DeleteTenant { actor: usize, t: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let u = 0..USERS;
    let t = 0..6usize;
    let role = prop_oneof![Just("admin"), Just("member"), Just("viewer")];
    prop_oneof![
        2 => u.clone().prop_map(Op::CreateTenant),
        4 => (u.clone(), t.clone(), u.clone(), role.clone()).prop_map(|(actor, t, target, role)| Op::Invite { actor, t, target, role }),
        2 => (u.clone(), t.clone(), u.clone(), role).prop_map(|(actor, t, target, role)| Op::PutMember { actor, t, target, role }),
        1 => (u.clone(), t.clone(), u.clone()).prop_map(|(actor, t, target)| Op::RemoveMember { actor, t, target }),
        3 => (u.clone(), t.clone()).prop_map(|(actor, t)| Op::CreateTodo { actor, t }),
        2 => (u.clone(), t.clone()).prop_map(|(actor, t)| Op::ListTodos { actor, t }),
        2 => (u.clone(), t.clone(), 0..8usize).prop_map(|(actor, t, k)| Op::GetTodo { actor, t, k }),
        1 => (u.clone(), t.clone(), 0..8usize).prop_map(|(actor, t, k)| Op::PatchTodo { actor, t, k }),
        1 => (u.clone(), t.clone(), 0..8usize).prop_map(|(actor, t, k)| Op::DeleteTodo { actor, t, k }),
        1 => u.clone().prop_map(Op::ListAll),
        1 => u.clone().prop_map(Op::ListTenants),
        1 => (u.clone(), t.clone()).prop_map(|(actor, t)| Op::GetTenant { actor, t }),
        1 => (u.clone(), t.clone()).prop_map(|(actor, t)| Op::Members { actor, t }),
        1 => u.clone().prop_map(Op::Users),
        1 => (u.clone(), u.clone()).prop_map(|(actor, target)| Op::GetUser { actor, target }),
        1 => (u.clone(), t).prop_map(|(actor, t)| Op::DeleteTenant { actor, t }),
    ]
}

/// What the API should hold.
#[derive(Debug, Default)]
struct Model {
    /// Tenants in creation order (deleted ones stay, marked gone, so indexes stay stable).
    tenants: Vec<(Uuid, bool)>,
    members: BTreeMap<Uuid, BTreeMap<usize, &'static str>>,
    todos: BTreeMap<Uuid, Vec<Uuid>>,
}

impl Model {
    fn tenant(&self, t: usize) -> Option<Uuid> {
        if self.tenants.is_empty() {
            return None;
        }
        let (id, _) = self.tenants[t % self.tenants.len()];
        Some(id)
    }
    fn alive(&self, id: Uuid) -> bool {
        self.tenants.iter().any(|(t, alive)| *t == id && *alive)
    }
    fn role(&self, id: Uuid, u: usize) -> Option<&'static str> {
        self.members.get(&id).and_then(|m| m.get(&u)).copied()
    }
    fn tenants_of(&self, u: usize) -> BTreeSet<Uuid> {
        self.members.iter().filter(|(t, m)| self.alive(**t) && m.contains_key(&u)).map(|(t, _)| *t).collect()
    }
    fn admins(&self, id: Uuid) -> usize {
        self.members.get(&id).map(|m| m.values().filter(|r| **r == "admin").count()).unwrap_or(0)
    }
}

struct Case {
    app: TestApp,
    subjects: Vec<String>,
    ids: Vec<Uuid>,
}

static RUN: AtomicU64 = AtomicU64::new(0);

impl Case {
    /// Every id the caller may see now.
    fn visible(&self, m: &Model, u: usize) -> BTreeSet<Uuid> {
        let mut ids = BTreeSet::new();
        ids.insert(self.ids[u]);
        for t in m.tenants_of(u) {
            ids.insert(t);
            ids.extend(m.todos.get(&t).into_iter().flatten());
            ids.extend(m.members[&t].keys().map(|v| self.ids[*v]));
        }
        ids
    }

    async fn call(&self, u: usize, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let r = self.app.call(Some(&self.subjects[u]), method, path, body).await;
        (r.status.as_u16(), r.body)
    }
}

fn uuids_in(v: &Value) -> BTreeSet<Uuid> {
    let mut out = BTreeSet::new();
    let text = v.to_string();
    for word in text.split(|c: char| !(c.is_ascii_hexdigit() || c == '-')) {
        if word.len() == 36
            && let Ok(id) = Uuid::try_parse(word)
        {
            out.insert(id);
        }
    }
    out
}

fn ids_of(items: &Value, key: &str) -> BTreeSet<Uuid> {
    items["items"].as_array().unwrap().iter().map(|i| Uuid::parse_str(i[key].as_str().unwrap()).unwrap()).collect()
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let app = TestApp::new().await;
    let run = RUN.fetch_add(1, Ordering::SeqCst);
    let subjects: Vec<String> = (0..USERS).map(|i| format!("prop-{run}-user-{i}")).collect();
    let mut ids = Vec::new();
    for s in &subjects {
        ids.push(Uuid::parse_str(&app.user_id(s).await).unwrap());
    }
    let case = Case { app, subjects, ids };
    let mut m = Model::default();
    for op in ops {
        let (actor, expected, status, body) = match op.clone() {
            Op::CreateTenant(u) => {
                let (s, b) = case.call(u, Method::POST, "/api/tenants", Some(json!({ "name": "t" }))).await;
                let id = Uuid::parse_str(b["id"].as_str().unwrap_or_default()).unwrap_or_default();
                m.tenants.push((id, true));
                m.members.insert(id, BTreeMap::from([(u, "admin")]));
                (u, 201, s, b)
            }
            Op::Invite { actor, t, target, role } => {
                let Some(id) = m.tenant(t) else { continue };
                let path = format!("/api/tenants/{id}/invitations");
                let (s, b) = case.call(actor, Method::POST, &path, Some(json!({ "role": role }))).await;
                let expected = match (m.alive(id), m.role(id, actor)) {
                    (false, _) | (_, None) => 404,
                    (_, Some(r)) if r != "admin" => 403,
                    _ => 201,
                };
                if s != 201 || expected != 201 {
                    (actor, expected, s, b)
                } else {
                    // The invitee accepts: they join, unless they are a member already.
                    let code = json!({ "code": b["code"] });
                    let (s, b) = case.call(target, Method::POST, "/api/invitations/accept", Some(code)).await;
                    let expected = if m.role(id, target).is_some() {
                        409
                    } else {
                        m.members.get_mut(&id).unwrap().insert(target, role);
                        200
                    };
                    (target, expected, s, b)
                }
            }
            Op::PutMember { actor, t, target, role } => {
                let Some(id) = m.tenant(t) else { continue };
                let path = format!("/api/tenants/{id}/members/{}", case.ids[target]);
                let (s, b) = case.call(actor, Method::PUT, &path, Some(json!({ "role": role }))).await;
                let expected = match (m.alive(id), m.role(id, actor)) {
                    (false, _) | (_, None) => 404,
                    (_, Some(r)) if r != "admin" => 403,
                    _ => match m.role(id, target) {
                        // Members join by invitation only: a non-member is 404, existing or not.
                        None => 404,
                        Some("admin") if role != "admin" && m.admins(id) == 1 => 409,
                        Some(_) => {
                            m.members.get_mut(&id).unwrap().insert(target, role);
                            200
                        }
                    },
                };
                (actor, expected, s, b)
            }
            Op::RemoveMember { actor, t, target } => {
                let Some(id) = m.tenant(t) else { continue };
                let path = format!("/api/tenants/{id}/members/{}", case.ids[target]);
                let (s, b) = case.call(actor, Method::DELETE, &path, None).await;
                let expected = match (m.alive(id), m.role(id, actor)) {
                    (false, _) | (_, None) => 404,
                    (_, Some(r)) if r != "admin" && actor != target => 403,
                    _ => match m.role(id, target) {
                        None => 404,
                        Some("admin") if m.admins(id) == 1 => 409,
                        Some(_) => {
                            m.members.get_mut(&id).unwrap().remove(&target);
                            204
                        }
                    },
                };
                (actor, expected, s, b)
            }
            Op::CreateTodo { actor, t } => {
                let Some(id) = m.tenant(t) else { continue };
                let (s, b) = case
                    .call(actor, Method::POST, &format!("/api/tenants/{id}/todos"), Some(json!({ "title": "x" })))
                    .await;
                let expected = match (m.alive(id), m.role(id, actor)) {
                    (false, _) | (_, None) => 404,
                    (_, Some("viewer")) => 403,
                    _ => {
                        m.todos
                            .entry(id)
                            .or_default()
                            .push(Uuid::parse_str(b["id"].as_str().unwrap_or_default()).unwrap_or_default());
                        201
                    }
                };
                (actor, expected, s, b)
            }
            Op::ListTodos { actor, t } => {
                let Some(id) = m.tenant(t) else { continue };
                let (s, b) = case.call(actor, Method::GET, &format!("/api/tenants/{id}/todos?limit=200"), None).await;
                let member = m.alive(id) && m.role(id, actor).is_some();
                if member && s == 200 {
                    let want: BTreeSet<Uuid> = m.todos.get(&id).into_iter().flatten().copied().collect();
                    prop_assert_eq!(ids_of(&b, "id"), want, "the list shows exactly the tenant's todos");
                }
                (actor, if member { 200 } else { 404 }, s, b)
            }
            Op::GetTodo { actor, t, k } | Op::PatchTodo { actor, t, k } | Op::DeleteTodo { actor, t, k } => {
                let Some(id) = m.tenant(t) else { continue };
                // A todo of this tenant when there is one, else of any tenant (foreign ids must
                // look missing), else a random id.
                let all: Vec<Uuid> = m.todos.values().flatten().copied().collect();
                let own = m.todos.get(&id).cloned().unwrap_or_default();
                let todo = if !own.is_empty() && k % 2 == 0 {
                    own[k % own.len()]
                } else if !all.is_empty() {
                    all[k % all.len()]
                } else {
                    Uuid::new_v4()
                };
                let path = format!("/api/tenants/{id}/todos/{todo}");
                let exists = own.contains(&todo);
                let (method, body, ok) = match op {
                    Op::GetTodo { .. } => (Method::GET, None, 200),
                    Op::PatchTodo { .. } => (Method::PATCH, Some(json!({ "complete": true })), 200),
                    _ => (Method::DELETE, None, 204),
                };
                let writes = method != Method::GET;
                let (s, b) = case.call(actor, method, &path, body).await;
                let expected = match (m.alive(id), m.role(id, actor)) {
                    (false, _) | (_, None) => 404,
                    (_, Some("viewer")) if writes => 403,
                    _ if !exists => 404,
                    _ => {
                        if ok == 204 {
                            m.todos.get_mut(&id).unwrap().retain(|x| *x != todo);
                        }
                        ok
                    }
                };
                (actor, expected, s, b)
            }
            Op::ListAll(u) => {
                let (s, b) = case.call(u, Method::GET, "/api/todos?limit=200", None).await;
                let want: BTreeSet<Uuid> =
                    m.tenants_of(u).iter().flat_map(|t| m.todos.get(t).into_iter().flatten()).copied().collect();
                if s == 200 {
                    prop_assert_eq!(ids_of(&b, "id"), want, "every todo of every tenant of the caller, nothing else");
                }
                (u, 200, s, b)
            }
            Op::ListTenants(u) => {
                let (s, b) = case.call(u, Method::GET, "/api/tenants?limit=200", None).await;
                if s == 200 {
                    prop_assert_eq!(ids_of(&b, "id"), m.tenants_of(u));
                }
                (u, 200, s, b)
            }
            Op::GetTenant { actor, t } => {
                let Some(id) = m.tenant(t) else { continue };
                let (s, b) = case.call(actor, Method::GET, &format!("/api/tenants/{id}"), None).await;
                (actor, if m.alive(id) && m.role(id, actor).is_some() { 200 } else { 404 }, s, b)
            }
            Op::Members { actor, t } => {
                let Some(id) = m.tenant(t) else { continue };
                let (s, b) = case.call(actor, Method::GET, &format!("/api/tenants/{id}/members?limit=200"), None).await;
                let member = m.alive(id) && m.role(id, actor).is_some();
                if member && s == 200 {
                    let want: BTreeSet<Uuid> = m.members[&id].keys().map(|v| case.ids[*v]).collect();
                    prop_assert_eq!(ids_of(&b, "user_id"), want);
                }
                (actor, if member { 200 } else { 404 }, s, b)
            }
            Op::Users(u) => {
                let (s, b) = case.call(u, Method::GET, "/api/users?limit=200", None).await;
                let mut want: BTreeSet<Uuid> =
                    m.tenants_of(u).iter().flat_map(|t| m.members[t].keys().map(|v| case.ids[*v])).collect();
                want.insert(case.ids[u]);
                if s == 200 {
                    prop_assert_eq!(ids_of(&b, "id"), want);
                }
                (u, 200, s, b)
            }
            Op::GetUser { actor, target } => {
                let (s, b) = case.call(actor, Method::GET, &format!("/api/users/{}", case.ids[target]), None).await;
                let visible = actor == target || m.tenants_of(actor).iter().any(|t| m.members[t].contains_key(&target));
                (actor, if visible { 200 } else { 404 }, s, b)
            }
            Op::DeleteTenant { actor, t } => {
                let Some(id) = m.tenant(t) else { continue };
                let (s, b) = case.call(actor, Method::DELETE, &format!("/api/tenants/{id}"), None).await;
                let expected = match (m.alive(id), m.role(id, actor)) {
                    (false, _) | (_, None) => 404,
                    (_, Some(r)) if r != "admin" => 403,
                    _ => {
                        for (tid, alive) in m.tenants.iter_mut() {
                            if *tid == id {
                                *alive = false;
                            }
                        }
                        m.members.remove(&id);
                        m.todos.remove(&id);
                        204
                    }
                };
                (actor, expected, s, b)
            }
        };
        prop_assert_eq!(status, expected, "{:?} answered {}", op, body);
        let leaked: Vec<Uuid> = uuids_in(&body).difference(&case.visible(&m, actor)).copied().collect();
        prop_assert!(leaked.is_empty(), "{:?} leaked ids {:?} in {}", op, leaked, body);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn no_response_leaks_another_tenant_and_role_rules_hold(ops in prop::collection::vec(op(), 5..45)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops))?;
    }
}
