//! Property tests of request bodies over real mTLS against the real server: arbitrary JSON
//! (and arbitrary bytes) sent to every endpoint that takes a body never gets a 5xx, and every
//! body of the wrong shape gets a 4xx with the error shape `{"error", "message"}`.
//!
//! One gateway serves all cases; the case counts are bounded so the whole file takes a few
//! seconds. proptest shrinks a failure to the smallest body that shows it.

use hyper::Method;
use partnergate::policy::Policy;
use partnergate_client::GatewayClient;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};

use crate::fixtures::{as_, showcase};
use crate::harness::{Gateway, Home, policies};

/// The keys the endpoints know, so that generated objects are often almost right.
const KEYS: &[&str] = &[
    "fields",
    "text",
    "insz",
    "partner",
    "role",
    "reason",
    "scope",
    "from",
    "to",
    "kind",
    "received_at",
    "details",
];

/// Strings that mean something to the gateway, next to arbitrary ones.
const WORDS: &[&str] = &[
    "",
    "85073003328",
    "93.05.18-223.61",
    "1990-06-02",
    "2026-02-30",
    "jobandco",
    "vdab",
    "trajectgezel",
    "spoc_vdab",
    "health_sharing",
    "erasure",
    "handover",
    "female",
    "isced_0_2",
];

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(WORDS).prop_map(str::to_string),
        any::<String>(),
        "[a-z0-9 ._@+-]{0,24}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop_oneof![Just(-1i64), Just(0), Just(100), Just(101)].prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        string().prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key(&[]), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn key(fields: &[String]) -> impl Strategy<Value = String> + use<> {
    let fields = if fields.is_empty() {
        vec!["identity.insz".to_string()]
    } else {
        fields.to_vec()
    };
    prop_oneof![
        proptest::sample::select(KEYS).prop_map(str::to_string),
        proptest::sample::select(fields),
        string(),
    ]
}

/// A body: often an object with the endpoints' own keys, often a record with the agreement's
/// field names, sometimes any JSON at all.
fn body(fields: Vec<String>) -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => proptest::collection::btree_map(key(&fields), value(), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        2 => proptest::collection::btree_map(proptest::sample::select(fields), value(), 0..4)
            .prop_map(|m| json!({ "fields": Value::Object(m.into_iter().collect()) })),
        1 => value(),
    ]
}

/// An endpoint that takes a body, and the keys its body has (`?` marks an optional one).
struct Endpoint {
    method: Method,
    path: String,
    client: GatewayClient,
    if_match: bool,
    keys: &'static [&'static str],
}

impl Endpoint {
    /// Whether `v` has the endpoint's documented shape: an object with exactly its keys, of
    /// the right JSON types. Only such a body may be answered 2xx.
    fn shape_ok(&self, v: &Value) -> bool {
        let Some(o) = v.as_object() else {
            return false;
        };
        let required = self.keys.iter().filter(|k| !k.ends_with('?'));
        let known = |k: &String| {
            self.keys
                .iter()
                .any(|d| d.trim_end_matches('?') == k.as_str())
        };
        required.into_iter().all(|k| o.contains_key(*k))
            && o.keys().all(known)
            && o.iter().all(|(k, v)| match k.as_str() {
                "fields" => v.is_object(),
                "details" => true,
                "reason" => v.is_string() || v.is_null(),
                _ => v.is_string(),
            })
    }
}

/// The error shape: exactly `error` (a snake_case code) and `message` (text).
fn error_shape(body: &[u8]) -> Result<(), String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "not JSON".to_string())?;
    let o: &Map<String, Value> = v.as_object().ok_or("not an object")?;
    let code = o
        .get("error")
        .and_then(Value::as_str)
        .ok_or("no error code")?;
    if code.is_empty() || !code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(format!("error code {code:?} is not snake_case"));
    }
    o.get("message")
        .and_then(Value::as_str)
        .ok_or("no message")?;
    if o.len() != 2 {
        return Err("extra keys".into());
    }
    Ok(())
}

/// Sends `bytes` as a JSON body and checks the answer; `may_succeed` when the body has the
/// endpoint's shape (then 2xx is allowed too).
async fn check(ep: &Endpoint, bytes: Vec<u8>, may_succeed: bool) -> Result<(), String> {
    let version;
    let mut headers = vec![("content-type", "application/json")];
    if ep.if_match {
        // The current version, so a well-formed body gets past If-Match to the validation.
        let r = ep.client.get(&ep.path).await.map_err(|e| e.to_string())?;
        version = r.json()["version"].as_i64().unwrap_or(0).to_string();
        headers.push(("if-match", &version));
    }
    let r = ep
        .client
        .send_raw(ep.method.clone(), &ep.path, &headers, bytes)
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let status = r.status.as_u16();
    if status >= 500 {
        return Err(format!("{} {}: {status}", ep.method, ep.path));
    }
    if (200..300).contains(&status) && may_succeed {
        return Ok(());
    }
    if !(400..500).contains(&status) {
        return Err(format!(
            "{} {}: {status} for a malformed body",
            ep.method, ep.path
        ));
    }
    error_shape(&r.body).map_err(|e| format!("{} {}: {status}: {e}", ep.method, ep.path))
}

async fn endpoints(gw: &Gateway) -> Vec<Endpoint> {
    let case = showcase(gw, 301).await;
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let pid = case.pids["jobandco"].clone();
    let p = |s: &str| format!("/v1/participants/{pid}{s}");
    let ep = |method: Method, path: String, client: &GatewayClient, keys| Endpoint {
        if_match: method == Method::PATCH,
        method,
        path,
        client: client.clone(),
        keys,
    };
    vec![
        ep(
            Method::POST,
            "/v1/participants".into(),
            &as_(&gw.client("crm.ocmw-gent"), "trajectory_guidance"),
            &["fields"],
        ),
        ep(Method::PATCH, p(""), &job, &["fields"]),
        ep(
            Method::POST,
            "/v1/lookup".into(),
            &as_(&gw.client("crm.vdab"), "duplicate_check"),
            &["insz"],
        ),
        ep(Method::POST, p("/involvements"), &job, &["partner", "role"]),
        ep(
            Method::DELETE,
            p("/involvements"),
            &job,
            &["partner", "role", "reason?"],
        ),
        ep(Method::POST, p("/handover"), &job, &["role", "from", "to"]),
        ep(Method::POST, p("/consents"), &job, &["scope"]),
        ep(Method::DELETE, p("/consents"), &job, &["scope"]),
        ep(Method::POST, p("/notes"), &job, &["text"]),
        ep(
            Method::POST,
            "/v1/dsr".into(),
            &as_(&gw.client("dpo.stad-gent"), "dsr_handling"),
            &["kind", "insz", "received_at", "details?"],
        ),
    ]
}

/// Runs `strategy` for `cases` cases through `send`.
fn run<S: Strategy>(cases: u32, strategy: S, send: impl Fn(S::Value) -> Result<(), String>) {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new(config)
        .run(&strategy, |v| send(v).map_err(TestCaseError::fail))
        .unwrap();
}

#[test]
fn arbitrary_json_bodies_never_get_a_5xx_and_malformed_ones_get_a_4xx_error() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let home = Home::new();
    // Look-ups are rate limited per client; this test is not about the limit.
    let gw = home.start_with_env(&[
        ("PARTNERGATE_LOOKUP_BURST", "100000"),
        ("PARTNERGATE_LOOKUP_PER_MINUTE", "100000"),
    ]);
    let eps = rt.block_on(endpoints(&gw));
    let policy = Policy::load(&policies()).unwrap();
    let fields: Vec<String> = policy.all_fields().map(|f| f.name.to_string()).collect();

    let strategy = (0..eps.len(), body(fields));
    run(500, strategy, |(i, v)| {
        let ep = &eps[i];
        let bytes = serde_json::to_vec(&v).unwrap();
        rt.block_on(check(ep, bytes, ep.shape_ok(&v)))
    });

    // Arbitrary bytes declared as JSON: not JSON at all, or JSON of any shape.
    let bytes = proptest::collection::vec(any::<u8>(), 0..64);
    run(100, (0..eps.len(), bytes), |(i, b)| {
        let ep = &eps[i];
        let may = serde_json::from_slice::<Value>(&b).is_ok_and(|v| ep.shape_ok(&v));
        rt.block_on(check(ep, b, may))
    });

    // Every refusal was audited, and the chain is whole.
    let r = rt
        .block_on(as_(&gw.client("dpo.stad-gent"), "audit").get("/v1/audit/verify"))
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["ok"], true, "{}", r.json());
    assert!(r.json()["records"].as_u64().unwrap() > 360);
}

/// Found by the property above: serde fills a struct from a JSON array, so `["a"]` was stored
/// as a note. A body must be an object: anything else is 422 `invalid_body`, and audited.
#[tokio::test]
async fn a_json_array_body_is_refused_not_read_as_the_object() {
    let home = Home::new();
    let gw = home.start();
    let case = showcase(&gw, 302).await;
    let job = as_(&gw.client("crm.jobandco"), "trajectory_guidance");
    let notes = format!("/v1/participants/{}/notes", case.pids["jobandco"]);
    let before = job.get(&notes).await.unwrap().json();
    for body in [json!(["a"]), json!("a"), json!(1)] {
        let r = job.post(&notes, &body).await.unwrap();
        assert_eq!(r.status, 422, "{body}");
        assert_eq!(r.json()["error"], "invalid_body");
    }
    assert_eq!(job.get(&notes).await.unwrap().json(), before);
}
