//! The mock API-server tier: an in-memory stand-in for the Kubernetes API, served to a real
//! `kube::Client` as a tower service (the style of kube-rs's controller
//! examples): objects are JSON kept by path, and the requests the client
//! sends are recorded so a test can check what an executor wrote and in
//! which order. It knows what the executors use: get, list (with
//! `key=value` label selectors), create, merge patch (with the
//! `metadata.resourceVersion` precondition: a stale one is refused with
//! 409, as the API does) and delete.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use cairn_testkit::kube::mock::ApiServer;
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::Api;
//! use serde_json::json;
//!
//! let api = ApiServer::default();
//! api.put(
//!     "/api/v1/namespaces/shop/configmaps/settings",
//!     json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}}),
//! );
//! let maps: Api<ConfigMap> = Api::namespaced(api.client(), "shop");
//! assert!(maps.get("settings").await.is_ok());
//! assert!(api.writes().is_empty());
//! # }
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use kube::Client;
use serde_json::{Value, json};

/// One request the client sent.
#[derive(Clone, Debug)]
pub struct Sent {
    /// Its method.
    pub method: Method,
    /// Its path, without the query.
    pub path: String,
    /// Its body as JSON (null when it had none).
    pub body: Value,
}

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<String, Value>,
    sent: Vec<Sent>,
    version: u64,
}

/// The fake API: objects by path, and the requests sent. Clones share
/// them.
#[derive(Clone, Debug, Default)]
pub struct ApiServer {
    state: Arc<Mutex<State>>,
}

impl ApiServer {
    /// A client whose every request this fake answers.
    pub fn client(&self) -> Client {
        let me = self.clone();
        let service = tower::service_fn(move |req: Request<kube::client::Body>| {
            let me = me.clone();
            async move { Ok::<_, Infallible>(me.serve(req).await) }
        });
        Client::new(service, "default")
    }

    /// Puts `object` at `path` (a resource's path without the query),
    /// giving it a uid and resourceVersion if it has none.
    pub fn put(&self, path: &str, mut object: Value) {
        let mut s = self.state.lock().expect("state");
        s.version += 1;
        let v = s.version.to_string();
        let meta = &mut object["metadata"];
        if meta.get("uid").is_none() {
            meta["uid"] = json!(format!("uid-{v}"));
        }
        meta["resourceVersion"] = json!(v);
        s.objects.insert(path.to_owned(), object);
    }

    /// The object at `path`.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().expect("state").objects.get(path).cloned()
    }

    /// The requests sent so far, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.state.lock().expect("state").sent.clone()
    }

    /// The writes (anything but get and list) sent so far, as
    /// `METHOD path`.
    pub fn writes(&self) -> Vec<String> {
        self.sent()
            .into_iter()
            .filter(|s| s.method != Method::GET)
            .map(|s| format!("{} {}", s.method, s.path))
            .collect()
    }

    async fn serve(&self, req: Request<kube::client::Body>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let path = parts.uri.path().to_owned();
        let query = parts.uri.query().unwrap_or_default().to_owned();
        let mut s = self.state.lock().expect("state");
        s.sent.push(Sent {
            method: parts.method.clone(),
            path: path.clone(),
            body: body.clone(),
        });
        let (code, out) = match parts.method {
            Method::GET => match s.objects.get(&path) {
                Some(o) => (StatusCode::OK, o.clone()),
                None => list(&s.objects, &path, &query),
            },
            Method::POST => create(&mut s, &path, body),
            Method::PATCH => patch(&mut s, &path, &body),
            Method::DELETE => match s.objects.remove(&path) {
                Some(o) => (StatusCode::OK, o),
                None => not_found(&path),
            },
            _ => (
                StatusCode::METHOD_NOT_ALLOWED,
                status(405, "MethodNotAllowed", ""),
            ),
        };
        Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(out.to_string())))
            .expect("response")
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
           "code": code, "reason": reason, "message": message})
}

fn not_found(path: &str) -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        status(404, "NotFound", &format!("{path} not found")),
    )
}

/// A list of the objects directly under `path`, filtered by a
/// `labelSelector=k=v` query; 404 when `path` is no collection with objects
/// and ends in a name.
fn list(objects: &BTreeMap<String, Value>, path: &str, query: &str) -> (StatusCode, Value) {
    let selector: Option<(String, String)> = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("labelSelector="))
        .map(|s| s.replace("%3D", "=").replace("%2F", "/"))
        .and_then(|s| s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())));
    let prefix = format!("{path}/");
    let items: Vec<Value> = objects
        .iter()
        .filter(|(p, _)| p.starts_with(&prefix) && !p[prefix.len()..].contains('/'))
        .map(|(_, o)| o.clone())
        .filter(|o| match &selector {
            Some((k, v)) => o["metadata"]["labels"][k.as_str()] == json!(v),
            None => true,
        })
        .collect();
    if items.is_empty() && !is_collection(path) {
        return not_found(path);
    }
    (
        StatusCode::OK,
        json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items}),
    )
}

/// Whether `path` names a collection (`…/namespaces/ns/kind` or `/api/v1/kind`).
fn is_collection(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.iter().position(|p| *p == "namespaces") {
        Some(i) => parts.len() == i + 3,
        None => parts.len() == if parts[0] == "api" { 3 } else { 4 },
    }
}

fn create(s: &mut State, path: &str, mut body: Value) -> (StatusCode, Value) {
    let name = body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let at = format!("{path}/{name}");
    if s.objects.contains_key(&at) {
        return (
            StatusCode::CONFLICT,
            status(409, "AlreadyExists", &format!("{at} already exists")),
        );
    }
    s.version += 1;
    let v = s.version.to_string();
    body["metadata"]["uid"] = json!(format!("uid-{v}"));
    body["metadata"]["resourceVersion"] = json!(v);
    if let Some(ns) = path
        .split("/namespaces/")
        .nth(1)
        .and_then(|r| r.split('/').next())
    {
        body["metadata"]["namespace"] = json!(ns);
    }
    s.objects.insert(at, body.clone());
    (StatusCode::CREATED, body)
}

fn patch(s: &mut State, path: &str, body: &Value) -> (StatusCode, Value) {
    let Some(current) = s.objects.get(path).cloned() else {
        return not_found(path);
    };
    let wanted = &body["metadata"]["resourceVersion"];
    if !wanted.is_null() && *wanted != current["metadata"]["resourceVersion"] {
        return (
            StatusCode::CONFLICT,
            status(409, "Conflict", "the object has been modified"),
        );
    }
    let mut next = current;
    json_patch::merge(&mut next, body);
    s.version += 1;
    next["metadata"]["resourceVersion"] = json!(s.version.to_string());
    s.objects.insert(path.to_owned(), next.clone());
    (StatusCode::OK, next)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::Api;
    use kube::api::{ListParams, Patch, PatchParams, PostParams};

    use super::*;

    const MAPS: &str = "/api/v1/namespaces/shop/configmaps";

    fn map(name: &str, labels: Value) -> ConfigMap {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels},
        }))
        .expect("map")
    }

    fn code(e: kube::Error) -> u16 {
        match e {
            kube::Error::Api(s) => s.code,
            e => panic!("not an API error: {e}"),
        }
    }

    #[tokio::test]
    async fn a_patch_on_a_stale_resource_version_is_refused_with_409() {
        let api = ApiServer::default();
        let maps: Api<ConfigMap> = Api::namespaced(api.client(), "shop");
        let made = maps
            .create(&PostParams::default(), &map("m", json!({})))
            .await
            .expect("create");
        let seen = made.metadata.resource_version.clone().expect("version");
        let current = json!({"metadata": {"resourceVersion": seen}, "data": {"a": "1"}});
        maps.patch("m", &PatchParams::default(), &Patch::Merge(&current))
            .await
            .expect("a patch on the current version");
        let stale = json!({"metadata": {"resourceVersion": seen}, "data": {"a": "2"}});
        let refused = maps
            .patch("m", &PatchParams::default(), &Patch::Merge(&stale))
            .await
            .expect_err("a patch on a stale version");
        assert_eq!(code(refused), 409);
        let kept = api.get(&format!("{MAPS}/m")).expect("the map");
        assert_eq!(kept["data"]["a"], "1", "the stale patch changed nothing");
        assert_eq!(
            api.writes(),
            [
                format!("POST {MAPS}"),
                format!("PATCH {MAPS}/m"),
                format!("PATCH {MAPS}/m")
            ]
        );
    }

    #[tokio::test]
    async fn a_patch_without_a_version_applies_and_bumps_it() {
        let api = ApiServer::default();
        api.put(&format!("{MAPS}/m"), json!({"metadata": {"name": "m"}}));
        let before =
            api.get(&format!("{MAPS}/m")).expect("map")["metadata"]["resourceVersion"].clone();
        let maps: Api<ConfigMap> = Api::namespaced(api.client(), "shop");
        let after = maps
            .patch(
                "m",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"a": "1"}})),
            )
            .await
            .expect("patch");
        assert_ne!(json!(after.metadata.resource_version), before);
        assert_eq!(after.data.expect("data")["a"], "1");
    }

    #[tokio::test]
    async fn creating_an_existing_name_is_refused_with_409() {
        let api = ApiServer::default();
        let maps: Api<ConfigMap> = Api::namespaced(api.client(), "shop");
        let made = maps
            .create(&PostParams::default(), &map("m", json!({})))
            .await
            .expect("create");
        assert_eq!(made.metadata.namespace.as_deref(), Some("shop"));
        assert!(made.metadata.uid.is_some());
        let again = maps
            .create(&PostParams::default(), &map("m", json!({})))
            .await;
        assert_eq!(code(again.expect_err("a second create")), 409);
    }

    #[tokio::test]
    async fn lists_filter_by_label_and_missing_objects_are_404() {
        let api = ApiServer::default();
        let maps: Api<ConfigMap> = Api::namespaced(api.client(), "shop");
        for (name, app) in [("a", "web"), ("b", "db"), ("c", "web")] {
            maps.create(&PostParams::default(), &map(name, json!({"app": app})))
                .await
                .expect("create");
        }
        let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
            l.items
                .into_iter()
                .filter_map(|m| m.metadata.name)
                .collect()
        };
        let web = maps
            .list(&ListParams::default().labels("app=web"))
            .await
            .expect("list");
        assert_eq!(names(web), ["a", "c"]);
        let all = maps.list(&ListParams::default()).await.expect("list");
        assert_eq!(names(all), ["a", "b", "c"]);
        let empty: Api<ConfigMap> = Api::namespaced(api.client(), "other");
        assert!(
            empty
                .list(&ListParams::default())
                .await
                .expect("list")
                .items
                .is_empty()
        );
        assert_eq!(code(maps.get("nope").await.expect_err("missing")), 404);
        maps.delete("b", &Default::default()).await.expect("delete");
        assert_eq!(code(maps.get("b").await.expect_err("deleted")), 404);
        assert_eq!(
            api.sent()
                .iter()
                .filter(|s| s.method == Method::GET)
                .count(),
            5
        );
    }
}
