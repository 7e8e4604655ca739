//! The OpenAPI document served at `/v1/openapi.json`.

use utoipa::OpenApi;

use super::{audit, cases, changes, dsr, error, me, notes, participants, reports};
use crate::policy::Policy;

mod agreement;
mod complete;
#[cfg(test)]
mod tests;

pub use agreement::INSZ_FORMAT;

/// The partnergate API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "partnergate",
        description = "Privacy-preserving data-sharing gateway of an ESF+ local partnership. \
            Every call is made over mutual TLS with a partnership client certificate. Calls about \
            personal data carry X-Purpose (a purpose of the agreement) and X-Acting-User (your \
            own staff id). Errors are {\"error\": code, \"message\": text}."
    ),
    paths(
        me::me,
        participants::register,
        participants::lookup,
        participants::read,
        participants::update,
        cases::start_involvement,
        cases::end_involvement,
        cases::handover,
        cases::record_consent,
        cases::withdraw_consent,
        notes::list_notes,
        notes::add_note,
        changes::changes,
        audit::search,
        audit::verify,
        audit::export,
        dsr::create,
        dsr::list,
        dsr::get,
        dsr::verify,
        dsr::extend,
        dsr::refuse_request,
        dsr::execute,
        dsr::export,
        reports::esf,
    ),
    components(schemas(error::ErrorBody, crate::audit::VerifyReport))
)]
pub struct ApiDoc;

/// The whole document for this agreement: what utoipa derives from the handlers, completed
/// with the statuses every operation shares and the agreement's fields, purposes, partners,
/// roles and scopes.
pub fn document(policy: &Policy) -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes");
    complete::complete(&mut doc, policy);
    doc
}

/// The document as JSON.
pub fn json(policy: &Policy) -> String {
    serde_json::to_string_pretty(&document(policy)).expect("the OpenAPI document serializes")
}
