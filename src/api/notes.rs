//! Case notes: read and write the notes of a case (category `notes`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::access;
use super::audited::{record, refuse};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, Ctx};
use super::idempotency::{self, Begin};
use crate::audit::Action;
use crate::policy::Policy;
use crate::vault::crypto::ParticipantId;

/// A new case note.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteIn {
    /// The note text.
    pub text: String,
}

/// A note's metadata, as answered on creation.
#[derive(Serialize, ToSchema)]
pub struct NoteCreated {
    /// Note id.
    pub id: String,
    /// The writing partner.
    pub author_partner: String,
    /// When.
    pub created_at: String,
}

/// A note, as read.
#[derive(Serialize, ToSchema)]
pub struct NoteOut {
    /// Note id.
    pub id: String,
    /// The writing partner.
    pub author_partner: String,
    /// When.
    pub created_at: String,
    /// The text.
    pub text: String,
}

/// The notes of a case.
#[derive(Serialize, ToSchema)]
pub struct NotesOut {
    /// Oldest first.
    pub notes: Vec<NoteOut>,
}

fn notes_category(policy: &Policy) -> Option<crate::policy::CategoryId> {
    policy.category("notes")
}

/// `GET /v1/participants/{pid}/notes`.
#[utoipa::path(get, path = "/v1/participants/{pid}/notes", tag = "notes",
    params(("pid" = String, Path), ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 200, body = NotesOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_notes(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(pid): Path<String>,
) -> ApiResult<Json<NotesOut>> {
    const ACTION: Action = Action::NotesRead;
    let access = access::resolve(&state, &ctx, &pid, ACTION).await?;
    let policy = &state.policy;
    if !notes_category(policy).is_some_and(|c| access.readable().contains(c)) {
        let error = ApiError::forbidden(
            "not_allowed",
            "your role may not read case notes for this purpose",
        );
        let event = access.event(&ctx, policy, ACTION).refused("no_grant");
        return Err(refuse(&state.audit, event, error).await);
    }
    let notes = state.vault.notes(&access.participant).await?;
    let fields = notes
        .iter()
        .map(|n| format!("notes.text/{}", n.id))
        .collect();
    let event = access.event(&ctx, policy, ACTION).fields(fields);
    record(&state.audit, vec![event.granted()]).await?;
    Ok(Json(NotesOut {
        notes: notes
            .into_iter()
            .map(|n| NoteOut {
                id: n.id,
                author_partner: n.author_partner,
                created_at: n.created_at,
                text: n.text,
            })
            .collect(),
    }))
}

/// `POST /v1/participants/{pid}/notes`.
#[utoipa::path(post, path = "/v1/participants/{pid}/notes", tag = "notes", request_body = NoteIn,
    params(("pid" = String, Path), ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 201, body = NoteCreated), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_note(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(pid): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NoteIn>,
) -> ApiResult<Response> {
    const ACTION: Action = Action::NotesWrite;
    let begin = idempotency::begin(&state, &ctx, &headers, ACTION, &pid, &body.text).await?;
    let slot = match begin {
        Begin::Replay(r) => return Ok(r),
        Begin::Go(slot) => slot,
    };
    let result = write_note(&state, &ctx, &pid, &body.text).await;
    idempotency::answer(&state, slot, result).await
}

async fn write_note(
    state: &AppState,
    ctx: &Ctx,
    pid: &str,
    text: &str,
) -> ApiResult<(StatusCode, NoteCreated, ParticipantId)> {
    const ACTION: Action = Action::NotesWrite;
    let access = access::resolve(state, ctx, pid, ACTION).await?;
    let policy = &state.policy;
    let checked = if !notes_category(policy).is_some_and(|c| access.writable().contains(c)) {
        Err(ApiError::forbidden(
            "not_allowed",
            "your role may not write case notes for this purpose",
        ))
    } else if text.trim().is_empty() {
        Err(ApiError::unprocessable(
            "invalid_value",
            "a note needs text",
        ))
    } else {
        policy
            .validate_value("notes.text", &Value::String(text.to_string()))
            .map_err(|e| ApiError::unprocessable("invalid_value", e.to_string()))
    };
    let event = access
        .event(ctx, policy, ACTION)
        .fields(vec!["notes.text".to_string()]);
    if let Err(e) = checked {
        return Err(refuse(&state.audit, event.refused(e.code), e).await);
    }
    let note = state
        .vault
        .add_note(
            &access.participant,
            &ctx.caller.partner,
            text,
            vec![event.granted()],
        )
        .await?;
    let created = NoteCreated {
        id: note.id,
        author_partner: note.author_partner,
        created_at: note.created_at,
    };
    Ok((StatusCode::CREATED, created, access.participant.id))
}
