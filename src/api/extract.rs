//! Extractors: who is calling (from the connection), for which purpose, on behalf of whom.
//!
//! Each refusal here is audited before the error leaves, like any other refused access.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, Method};
use serde::de::DeserializeOwned;

use super::AppState;
use super::audited;
use super::body::JsonObject;
use super::error::ApiError;
use crate::audit::{Action, Requester};
use crate::tls::{Caller, ConnIdentity};

/// The request id given to every request by the middleware, echoed as `X-Request-Id`.
#[derive(Clone, Debug)]
pub struct RequestId(pub Arc<str>);

fn request_id(parts: &Parts) -> String {
    request_id_of(&parts.extensions)
}

fn request_id_of(extensions: &Extensions) -> String {
    extensions
        .get::<RequestId>()
        .map(|r| r.0.to_string())
        .unwrap_or_default()
}

/// Where a refused request came from, read before its body is consumed.
struct Origin {
    request_id: String,
    route: String,
    acting_user: Option<String>,
    purpose: Option<String>,
}

impl Origin {
    fn of_parts(parts: &Parts) -> Self {
        Self::of(&parts.extensions, &parts.headers, &parts.method)
    }

    fn of(extensions: &Extensions, headers: &HeaderMap, method: &Method) -> Self {
        let path = extensions
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_string())
            .unwrap_or_else(|| "unmatched".into());
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        Self {
            request_id: request_id_of(extensions),
            route: format!("{method} {path}"),
            acting_user: header("x-acting-user")
                .filter(|v| valid_actor(v))
                .map(str::to_string),
            // Checked against the agreement before it is recorded (see `refuse`).
            purpose: header("x-purpose").map(str::to_string),
        }
    }
}

/// Audits a refusal made before a handler ran, then returns the error (or 503).
async fn refuse(
    state: &AppState,
    origin: Origin,
    client: &str,
    caller: Option<&Caller>,
    error: ApiError,
) -> ApiError {
    // Only a purpose of the agreement is recorded, never what the caller typed.
    let purpose = origin.purpose.filter(|p| state.policy.purpose(p).is_some());
    let event = Requester {
        request_id: origin.request_id,
        client: client.to_string(),
        partner: caller.map(|c| c.partner.to_string()),
        acting_user: origin.acting_user,
        purpose,
    }
    .event(Action::Request)
    .refused(format!("{} ({})", error.code, origin.route));
    audited::refuse(&state.audit, event, error).await
}

/// The one route an exited partner may still call: its CRM collects the removals of its last
/// sync there, and is refused once it has them all.
pub const EXIT_SYNC_ROUTE: &str = "/v1/changes";

/// A caller whose certificate names a client of the agreement whose partner is a member today
/// (or, on [`EXIT_SYNC_ROUTE`] only, a partner that has left).
#[derive(Clone, Debug)]
pub struct Identified {
    /// Who is calling.
    pub caller: Caller,
    /// This request's id.
    pub request_id: String,
    /// The partner has left the partnership (only ever true on [`EXIT_SYNC_ROUTE`]).
    pub exited: bool,
}

impl FromRequestParts<AppState> for Identified {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(identity) = parts.extensions.get::<Arc<ConnIdentity>>().cloned() else {
            // Only reachable if a route is mounted outside the mTLS listener: fail closed.
            return Err(ApiError::forbidden(
                "no_identity",
                "no client certificate identity",
            ));
        };
        match identity.as_ref() {
            ConnIdentity::UnknownClient { cn } => {
                let e = ApiError::forbidden(
                    "unknown_client",
                    "this certificate's client is not part of the joint-controller agreement",
                );
                Err(refuse(state, Origin::of_parts(parts), cn, None, e).await)
            }
            ConnIdentity::Known(caller) => {
                let today = crate::store::today();
                let member = state
                    .policy
                    .agreement()
                    .partner(&caller.partner)
                    .is_some_and(|p| p.is_member_on(today));
                let on_exit_route = parts
                    .extensions
                    .get::<MatchedPath>()
                    .is_some_and(|m| m.as_str() == EXIT_SYNC_ROUTE);
                if !member && !on_exit_route {
                    let e = ApiError::forbidden(
                        "membership_ended",
                        "this partner's membership of the partnership has ended",
                    );
                    let origin = Origin::of_parts(parts);
                    return Err(refuse(state, origin, &caller.client, Some(caller), e).await);
                }
                Ok(Identified {
                    caller: caller.clone(),
                    request_id: request_id(parts),
                    exited: !member,
                })
            }
        }
    }
}

/// Whether an `X-Acting-User` value is acceptable: 1 to 128 visible ASCII characters. It is
/// the partner's own opaque staff id; we log it, so it must not be free text.
pub fn valid_actor(v: &str) -> bool {
    !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic())
}

/// The request context, as the handlers call it.
pub use crate::access::Context as Ctx;

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let who = Identified::from_request_parts(parts, state).await?;
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let purpose = match header("x-purpose") {
            None => Err(ApiError::bad_request(
                "missing_purpose",
                "X-Purpose is required: state the purpose of this access",
            )),
            Some(p) => match state.policy.purpose(p) {
                Some(id) => Ok((id, Arc::<str>::from(p))),
                None => Err(ApiError::bad_request(
                    "unknown_purpose",
                    "X-Purpose is not a purpose of the joint-controller agreement",
                )),
            },
        };
        let actor = match header("x-acting-user") {
            Some(a) if valid_actor(a) => Ok(Arc::<str>::from(a)),
            Some(_) => Err(ApiError::bad_request(
                "invalid_acting_user",
                "X-Acting-User must be 1 to 128 visible ASCII characters (your staff id)",
            )),
            None => Err(ApiError::bad_request(
                "missing_acting_user",
                "X-Acting-User is required: your own staff id for the person acting",
            )),
        };
        match (purpose, actor) {
            (Ok((purpose, purpose_name)), Ok(acting_user)) => Ok(Ctx {
                caller: who.caller,
                request_id: who.request_id,
                purpose,
                purpose_name,
                acting_user,
                exited: who.exited,
            }),
            (Err(e), _) | (_, Err(e)) => {
                let origin = Origin::of_parts(parts);
                Err(refuse(state, origin, &who.caller.client, Some(&who.caller), e).await)
            }
        }
    }
}

/// A JSON body whose rejections are our JSON errors, with no input echoed back. A rejected
/// body from an identified caller is audited like any other refusal.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let origin = Origin::of(req.extensions(), req.headers(), req.method());
        let identity = req.extensions().get::<Arc<ConnIdentity>>().cloned();
        match axum::Json::<JsonObject<T>>::from_request(req, state).await {
            Ok(axum::Json(JsonObject(v))) => Ok(ApiJson(v)),
            Err(rejection) => {
                let error = json_rejection(rejection);
                Err(match identity.as_deref() {
                    Some(ConnIdentity::Known(caller)) => {
                        refuse(state, origin, &caller.client, Some(caller), error).await
                    }
                    // Unknown clients were refused (and audited) by the identity extractor.
                    _ => error,
                })
            }
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    use axum::http::StatusCode;
    match r {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as Content-Type: application/json",
        ),
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::bad_request("invalid_json", "the body is not valid JSON")
        }
        JsonRejection::JsonDataError(e) => {
            // serde's message may quote the offending value; keep only a field name we know is safe.
            let text = e.body_text();
            let message = match unknown_field(&text) {
                Some(f) => format!("unknown field `{f}`"),
                None => "the body does not have the expected shape or types".to_string(),
            };
            ApiError::unprocessable("invalid_body", message)
        }
        JsonRejection::BytesRejection(_) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the body is larger than 1 MiB or could not be read",
        ),
        _ => ApiError::bad_request("invalid_body", "the body could not be read"),
    }
}

fn unknown_field(text: &str) -> Option<String> {
    let start = text.find("unknown field `")? + "unknown field `".len();
    let rest = &text[start..];
    let name = &rest[..rest.find('`')?];
    let safe = name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
    safe.then(|| name.to_string())
}

/// A query string whose rejections are our JSON errors (axum's own are plain text), audited
/// like a rejected body.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(_) => {
                // serde's message may quote the value; say only what is wrong in general.
                let error = ApiError::bad_request(
                    "invalid_query",
                    "the query string has an unknown parameter or a value of the wrong type",
                );
                let identity = parts.extensions.get::<Arc<ConnIdentity>>().cloned();
                Err(match identity.as_deref() {
                    Some(ConnIdentity::Known(caller)) => {
                        let origin = Origin::of_parts(parts);
                        refuse(state, origin, &caller.client, Some(caller), error).await
                    }
                    _ => error,
                })
            }
        }
    }
}
