//! `GET /v1/changes`: the calling client's sync feed.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::audited::refuse;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiQuery, Ctx};
use crate::audit::Action;
use crate::sync::{self, Change};

/// Query of the feed.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChangesParams {
    /// The `next` cursor of your previous page; omit to sync from the start.
    pub since: Option<String>,
    /// Page size, 1–1000 (default 500).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// One page of the feed.
#[derive(Serialize, ToSchema)]
pub struct ChangesPage {
    /// Upserts and removals, in commit order.
    pub changes: Vec<Change>,
    /// Pass as `since` for the next page. An empty page means you are up to date.
    pub next: String,
}

/// `GET /v1/changes`: upserts with the fields you may now see, and removals of what you may no
/// longer see. Every participant on a page is audited before the page is sent.
#[utoipa::path(get, path = "/v1/changes", tag = "sync", params(ChangesParams, ("X-Purpose" = String, Header), ("X-Acting-User" = String, Header)),
    responses((status = 200, body = ChangesPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn changes(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiQuery(p): ApiQuery<ChangesParams>,
) -> ApiResult<Json<ChangesPage>> {
    let limit = p.limit.unwrap_or(sync::DEFAULT_LIMIT);
    if !(1..=sync::MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            "limit must be between 1 and 1000",
        ));
    }
    let after = match &p.since {
        None => 0,
        Some(c) => sync::decode_cursor(&state.vault, &ctx.caller.client, c).map_err(|_| {
            ApiError::bad_request(
                "invalid_cursor",
                "this cursor was not issued to this client; resync from the start (omit since)",
            )
        })?,
    };
    let page = if ctx.exited {
        let page = sync::exit_page(&state.vault, &ctx, limit).await?;
        if page.changes.is_empty() {
            let error = ApiError::forbidden(
                "membership_ended",
                "this partner has left the partnership and holds no more participants",
            );
            let event = ctx.event(Action::SyncPage).refused("membership_ended");
            return Err(refuse(&state.audit, event, error).await);
        }
        page
    } else {
        if state
            .policy
            .decide(ctx.caller.allowed_roles, ctx.purpose)
            .is_empty()
        {
            let error =
                ApiError::forbidden("not_allowed", "your roles have no grant for this purpose");
            let event = ctx.event(Action::SyncPage).refused("no_grant_for_purpose");
            return Err(refuse(&state.audit, event, error).await);
        }
        sync::page(&state.policy, &state.vault, &ctx, after, limit).await?
    };
    // The durable record of every disclosure, with the client's new state, before the answer.
    sync::commit(&state.audit, &ctx.caller.client, page.events, page.state).await?;
    let next = sync::encode_cursor(&state.vault, &ctx.caller.client, page.next.max(after));
    Ok(Json(ChangesPage {
        changes: page.changes,
        next,
    }))
}
