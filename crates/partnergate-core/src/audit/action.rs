//! What an audited access did: the one list of actions and the text each is recorded as.

use serde::{Deserialize, Serialize};

/// Declares [`Action`] from one list, so that a variant, its recorded text and its serde form
/// cannot drift apart.
macro_rules! actions {
    ($($(#[doc = $doc:literal])* $name:ident = $text:literal,)*) => {
        /// What an audited access did. A record stores it as [`Action::as_str`]; that text is
        /// hashed into the chain, so a variant's text never changes once released.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum Action {
            $($(#[doc = $doc])* #[serde(rename = $text)] $name,)*
        }

        impl Action {
            /// Every action, in declaration order.
            pub const ALL: &[Action] = &[$(Action::$name),*];

            /// The text in the audit record, e.g. `participant.read`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Action::$name => $text,)*
                }
            }

            /// The action a record's text names; `None` for text this gateway never writes
            /// (records of a foreign export stay readable as text).
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some(Action::$name),)*
                    _ => None,
                }
            }
        }
    };
}

actions! {
    /// A request refused before any handler ran: unknown client, ended membership, missing or
    /// invalid headers or body, or a revoked certificate on an open connection.
    Request = "request",
    /// A registration of a participant (or the finding that it exists).
    ParticipantRegister = "participant.register",
    /// The duplicate check by national number.
    ParticipantLookup = "participant.lookup",
    /// A read of a participant's fields.
    ParticipantRead = "participant.read",
    /// A write of a participant's fields.
    ParticipantWrite = "participant.write",
    /// The closing record of an erasure.
    ParticipantErased = "participant.erased",
    /// A partner's role in a case starts.
    InvolvementStart = "involvement.start",
    /// A partner's role in a case ends.
    InvolvementEnd = "involvement.end",
    /// A role passes from one partner to another (audited as an end and a start).
    InvolvementHandover = "involvement.handover",
    /// A consent is recorded.
    ConsentRecord = "consent.record",
    /// A consent is withdrawn.
    ConsentWithdraw = "consent.withdraw",
    /// A read of a case's notes.
    NotesRead = "notes.read",
    /// A new case note.
    NotesWrite = "notes.write",
    /// A feed page refused as a whole.
    SyncPage = "sync.page",
    /// A participant's fields sent to a partner's CRM by the feed.
    SyncDisclose = "sync.disclose",
    /// A participant removed from a partner's CRM by the feed.
    SyncRemove = "sync.remove",
    /// A search of the audit log.
    AuditSearch = "audit.search",
    /// A verification of the audit chain.
    AuditVerify = "audit.verify",
    /// An export of the audit log.
    AuditExport = "audit.export",
    /// A data-subject request is logged.
    DsrCreate = "dsr.create",
    /// The list of data-subject requests.
    DsrList = "dsr.list",
    /// One data-subject request with its history (no personal data).
    DsrRead = "dsr.read",
    /// The requester's identity was verified.
    DsrVerify = "dsr.verify",
    /// A request's deadline is extended.
    DsrExtend = "dsr.extend",
    /// A request is refused.
    DsrRefuse = "dsr.refuse",
    /// A request is run.
    DsrExecute = "dsr.execute",
    /// The person's data and disclosure history handed to the DPO.
    DsrExport = "dsr.export",
    /// An aggregate report (counts only, no participant).
    ReportRead = "report.read",
    /// Fields whose retention expired were deleted (and the key shredded if nothing remained).
    RetentionPurge = "retention.purge",
    /// Audit records past their retention were archived (export verified) and pruned.
    AuditPrune = "audit.prune",
}

impl Action {
    /// Whether the action discloses a participant's personal data to the caller: what the DPO
    /// report counts as a read. A look-up tells whether a national number is known; a DSR
    /// export hands over the whole file. `dsr.read` shows a request, not the person's data.
    pub const fn is_read(self) -> bool {
        matches!(
            self,
            Action::ParticipantRead
                | Action::ParticipantLookup
                | Action::NotesRead
                | Action::SyncDisclose
                | Action::DsrExport
        )
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_serde_and_parse_agree() {
        for &a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(json, format!("\"{}\"", a.as_str()));
            assert_eq!(serde_json::from_str::<Action>(&json).unwrap(), a);
        }
        assert_eq!(Action::parse("participant.delete"), None);
    }

    /// The recorded texts are part of the hashed chain: this list only ever grows.
    #[test]
    fn recorded_texts_are_stable() {
        let texts: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(
            texts,
            [
                "request",
                "participant.register",
                "participant.lookup",
                "participant.read",
                "participant.write",
                "participant.erased",
                "involvement.start",
                "involvement.end",
                "involvement.handover",
                "consent.record",
                "consent.withdraw",
                "notes.read",
                "notes.write",
                "sync.page",
                "sync.disclose",
                "sync.remove",
                "audit.search",
                "audit.verify",
                "audit.export",
                "dsr.create",
                "dsr.list",
                "dsr.read",
                "dsr.verify",
                "dsr.extend",
                "dsr.refuse",
                "dsr.execute",
                "dsr.export",
                "report.read",
                "retention.purge",
                "audit.prune",
            ]
        );
    }

    #[test]
    fn reads_are_the_disclosing_actions() {
        let reads: Vec<Action> = Action::ALL
            .iter()
            .copied()
            .filter(|a| a.is_read())
            .collect();
        assert_eq!(
            reads,
            [
                Action::ParticipantLookup,
                Action::ParticipantRead,
                Action::NotesRead,
                Action::SyncDisclose,
                Action::DsrExport,
            ]
        );
    }
}
