//! Verification of the chain and its signed checkpoints, for the live database and for an
//! exported file (offline: needs only the export and the public key).
//!
//! The export format is JSON lines: a header `{"export":{...}}`, optionally an anchor
//! checkpoint `{"anchor":{...}}` (the signed checkpoint just before the first record), then the
//! records' exact canonical bytes, one per line, and `{"checkpoint":{...}}` lines.

use std::collections::BTreeMap;

use ring::signature::{ED25519, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use super::record::{checkpoint_message, hash};

/// The result of a verification, as `GET /v1/audit/verify` returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VerifyReport {
    /// True when every record and checkpoint checks out.
    pub ok: bool,
    /// Records examined.
    pub records: u64,
    /// Signed checkpoints examined.
    pub checkpoints: u64,
    /// The first sequence number that does not verify.
    pub first_bad: Option<u64>,
    /// What is wrong there (no record content, only the kind of fault).
    pub problem: Option<String>,
}

/// A signed checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The last record it covers.
    pub seq: u64,
    /// That record's hash (hex).
    pub hash: String,
    /// When it was signed.
    pub time: String,
    /// Ed25519 signature over [`checkpoint_message`] (hex).
    pub signature: String,
}

impl Checkpoint {
    /// Whether the signature is valid for `public_key` (32 raw bytes).
    pub fn signature_ok(&self, public_key: &[u8]) -> bool {
        let Ok(sig) = hex::decode(&self.signature) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, public_key)
            .verify(&checkpoint_message(self.seq, &self.hash, &self.time), &sig)
            .is_ok()
    }
}

/// Reads the two chain fields out of a canonical record without a full parse: records start
/// with `{"v":1,"seq":N,` and end with `"prev_hash":"<64 hex>"}`. Anything else is a fault.
fn chain_fields(text: &str) -> Option<(u64, [u8; 32])> {
    let rest = text.strip_prefix("{\"v\":1,\"seq\":")?;
    let end = rest.find(',')?;
    let seq = rest[..end].parse().ok()?;
    let tail = text.strip_suffix("\"}")?;
    let hex_part = tail.get(tail.len().checked_sub(64)?..)?;
    if !tail[..tail.len() - 64].ends_with(",\"prev_hash\":\"") {
        return None;
    }
    let mut prev = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut prev).ok()?;
    Some((seq, prev))
}

/// Walks records in order and checks sequence, chain and checkpoints as it goes.
pub struct ChainVerifier<'k> {
    public_key: &'k [u8],
    checkpoints: BTreeMap<u64, Checkpoint>,
    expected_seq: Option<u64>,
    prev: [u8; 32],
    report: VerifyReport,
}

impl<'k> ChainVerifier<'k> {
    /// Starts a verification. `anchor` is the checkpoint just before the first record (none
    /// when the chain starts at 1).
    pub fn new(
        public_key: &'k [u8],
        checkpoints: Vec<Checkpoint>,
        anchor: Option<&Checkpoint>,
    ) -> Self {
        let mut v = Self {
            public_key,
            checkpoints: checkpoints.into_iter().map(|c| (c.seq, c)).collect(),
            expected_seq: None,
            prev: [0; 32],
            report: VerifyReport {
                ok: true,
                records: 0,
                checkpoints: 0,
                first_bad: None,
                problem: None,
            },
        };
        match anchor {
            Some(a) if a.signature_ok(public_key) => {
                let mut h = [0u8; 32];
                if hex::decode_to_slice(&a.hash, &mut h).is_ok() {
                    v.prev = h;
                    v.expected_seq = Some(a.seq + 1);
                } else {
                    v.fail(a.seq + 1, "anchor checkpoint is malformed");
                }
            }
            Some(a) => v.fail(a.seq + 1, "anchor checkpoint signature is invalid"),
            None => v.expected_seq = Some(1),
        }
        v
    }

    fn fail(&mut self, seq: u64, problem: &str) {
        if self.report.ok {
            self.report.ok = false;
            self.report.first_bad = Some(seq);
            self.report.problem = Some(problem.to_string());
        }
    }

    /// Whether a fault was found; callers may stop reading then.
    pub fn failed(&self) -> bool {
        !self.report.ok
    }

    /// Feeds the next record's canonical text, with the hash stored beside it if any.
    pub fn push(&mut self, text: &str, stored_hash: Option<&[u8]>) {
        if self.failed() {
            return;
        }
        let expected = self.expected_seq.unwrap_or(1);
        self.report.records += 1;
        let Some((seq, prev)) = chain_fields(text) else {
            return self.fail(expected, "record is not in canonical form");
        };
        if seq != expected {
            return self.fail(expected.min(seq), "sequence gap or reordering");
        }
        if prev != self.prev {
            return self.fail(seq, "previous-hash link is broken");
        }
        let h = hash(text.as_bytes());
        if stored_hash.is_some_and(|s| s != h) {
            return self.fail(seq, "stored hash does not match the record");
        }
        if let Some(cp) = self.checkpoints.get(&seq) {
            self.report.checkpoints += 1;
            if cp.hash != hex::encode(h) {
                return self.fail(seq, "checkpoint hash does not match the record");
            }
            if !cp.signature_ok(self.public_key) {
                return self.fail(seq, "checkpoint signature is invalid");
            }
        }
        self.prev = h;
        self.expected_seq = Some(seq + 1);
    }

    /// Finishes: checkpoints past the last record mean the tail was cut off.
    pub fn finish(mut self, require_signed_tail: bool) -> VerifyReport {
        let next = self.expected_seq.unwrap_or(1);
        if self.report.ok {
            if let Some((&seq, _)) = self.checkpoints.range(next..).next() {
                let _ = seq;
                self.fail(next, "records covered by a signed checkpoint are missing");
            } else if require_signed_tail && self.report.records > 0 {
                let last = next - 1;
                if !self.checkpoints.contains_key(&last) {
                    self.fail(
                        last,
                        "the last record is not covered by a signed checkpoint",
                    );
                }
            }
        }
        self.report
    }
}

/// The header line of an export.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportHeader {
    /// Format version.
    pub format: String,
    /// First sequence number in the file.
    pub from_seq: u64,
    /// Last sequence number in the file.
    pub to_seq: u64,
    /// When it was exported.
    pub exported_at: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
enum Meta {
    #[serde(rename = "export")]
    Export(ExportHeader),
    #[serde(rename = "anchor")]
    Anchor(Checkpoint),
    #[serde(rename = "checkpoint")]
    Checkpoint(Checkpoint),
}

/// Verifies an export file's text offline with the Ed25519 public key (32 raw bytes).
/// The file must end on a signed checkpoint, so a cut-off or altered tail is found too.
pub fn verify_export(text: &str, public_key: &[u8]) -> VerifyReport {
    let mut header = None;
    let mut anchor = None;
    let mut checkpoints = Vec::new();
    let mut records = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if line.starts_with("{\"v\":") {
            records.push(line);
            continue;
        }
        match serde_json::from_str::<Meta>(line) {
            Ok(Meta::Export(h)) => header = Some(h),
            Ok(Meta::Anchor(a)) => anchor = Some(a),
            Ok(Meta::Checkpoint(c)) => checkpoints.push(c),
            Err(_) => records.push(line), // a damaged record line: the chain check names it
        }
    }
    let mut v = ChainVerifier::new(public_key, checkpoints, anchor.as_ref());
    if let Some(h) = &header {
        let first = anchor.as_ref().map(|a| a.seq + 1).unwrap_or(1);
        if h.from_seq != first {
            v.fail(first, "export header does not match its anchor");
        }
    } else {
        v.fail(1, "export header is missing");
    }
    for r in records {
        v.push(r, None);
        if v.failed() {
            break;
        }
    }
    v.finish(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_fields_reads_seq_and_prev_hash_from_canonical_text() {
        let prev = "ab".repeat(32);
        let text = format!("{{\"v\":1,\"seq\":42,\"x\":1,\"prev_hash\":\"{prev}\"}}");
        let (seq, p) = chain_fields(&text).unwrap();
        assert_eq!(seq, 42);
        assert_eq!(hex::encode(p), prev);
        assert!(chain_fields("{\"v\":2,\"seq\":1}").is_none());
    }
}
