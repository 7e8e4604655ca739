//! Verification of the chain and its signed checkpoints, for the live database and for an
//! exported file (offline: needs only the export and the public key).
//!
//! The export format is JSON lines: a signed header `{"export":{...}}`, optionally an anchor
//! checkpoint `{"anchor":{...}}` (the signed checkpoint just before the first record), then the
//! records' exact canonical bytes, one per line, and `{"checkpoint":{...}}` lines.
//!
//! An export proves it is complete, not just consistent: its header (range, hash of the last
//! record, time) is signed with the checkpoint key, the last record must be the declared end and
//! carry the declared hash, and a signed checkpoint must sit on it. Cutting records off the tail,
//! with or without editing the header, is reported at the first missing sequence number.

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
    /// The last sequence number covered by a valid signed checkpoint (0: none yet).
    #[serde(default)]
    pub signed_through: u64,
    /// Records after `signed_through` that verify but are not yet signed. On the live log that
    /// is normal for a short while (the writer signs every few seconds and at shutdown); it is
    /// not a fault, but these records are only protected once a checkpoint covers them.
    #[serde(default)]
    pub unsigned_tail: u64,
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
        let Some(sig) = signature_bytes(&self.signature) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, public_key)
            .verify(&checkpoint_message(self.seq, &self.hash, &self.time), &sig)
            .is_ok()
    }
}

/// Decodes a signature in the lowercase hex the gateway writes. Uppercase is refused: the
/// signature does not cover its own spelling, so accepting both would let one byte of an
/// export change without verification noticing.
fn signature_bytes(text: &str) -> Option<Vec<u8>> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(text).ok()
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

/// A record with the work done that does not depend on the records before it: its sequence
/// and previous-hash fields (`None` if it is not in canonical form), its hash, and the hash the
/// store holds for it. Computing these is most of verification, and can run in parallel.
pub struct Hashed {
    fields: Option<(u64, [u8; 32])>,
    hash: [u8; 32],
    stored: Option<[u8; 32]>,
}

impl Hashed {
    /// Parses and hashes one record's canonical text.
    pub fn new(text: &str, stored_hash: Option<&[u8]>) -> Self {
        Self::from_bytes(text.as_bytes(), stored_hash)
    }

    /// Like [`Hashed::new`], for a record as the database holds it: bytes that are not UTF-8
    /// (written behind the gateway's back) are a record not in canonical form, not an error.
    pub fn from_bytes(record: &[u8], stored_hash: Option<&[u8]>) -> Self {
        Self {
            fields: std::str::from_utf8(record).ok().and_then(chain_fields),
            hash: hash(record),
            // A stored hash of the wrong length can never match.
            stored: stored_hash.map(|s| s.try_into().unwrap_or([0xff; 32])),
        }
    }
}

/// Hashes a chunk of records (bytes, stored hash) in order. The verifier
/// hashes several chunks at once.
pub fn hash_all<'a>(records: impl IntoIterator<Item = (&'a [u8], &'a [u8; 32])>) -> Vec<Hashed> {
    records
        .into_iter()
        .map(|(record, stored)| Hashed::from_bytes(record, Some(stored)))
        .collect()
}

/// Walks records in order and checks sequence, chain and checkpoints as it goes.
pub struct ChainVerifier<'k> {
    public_key: &'k [u8],
    checkpoints: BTreeMap<u64, Checkpoint>,
    expected_seq: Option<u64>,
    prev: [u8; 32],
    signed_through: u64,
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
            signed_through: 0,
            report: VerifyReport {
                ok: true,
                records: 0,
                checkpoints: 0,
                first_bad: None,
                problem: None,
                signed_through: 0,
                unsigned_tail: 0,
            },
        };
        match anchor {
            Some(a) if a.signature_ok(public_key) => {
                let mut h = [0u8; 32];
                // No record can follow a checkpoint at u64::MAX: such an anchor is malformed.
                if a.seq < u64::MAX && hex::decode_to_slice(&a.hash, &mut h).is_ok() {
                    v.prev = h;
                    v.expected_seq = Some(a.seq + 1);
                    v.signed_through = a.seq;
                } else {
                    v.fail(a.seq.saturating_add(1), "anchor checkpoint is malformed");
                }
            }
            Some(a) => v.fail(
                a.seq.saturating_add(1),
                "anchor checkpoint signature is invalid",
            ),
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
        self.push_hashed(&Hashed::new(text, stored_hash));
    }

    /// Checks the next record, hashed beforehand (see [`hash_all`]).
    pub fn push_hashed(&mut self, record: &Hashed) {
        if self.failed() {
            return;
        }
        let expected = self.expected_seq.unwrap_or(1);
        self.report.records += 1;
        let Some((seq, prev)) = record.fields else {
            return self.fail(expected, "record is not in canonical form");
        };
        if seq != expected {
            return self.fail(expected.min(seq), "sequence gap or reordering");
        }
        if prev != self.prev {
            return self.fail(seq, "previous-hash link is broken");
        }
        let h = record.hash;
        if record.stored.is_some_and(|s| s != h) {
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
            self.signed_through = seq;
        }
        // Sequence numbers come from the file: the last u64 has no successor to expect.
        let Some(next) = seq.checked_add(1) else {
            return self.fail(seq, "sequence number out of range");
        };
        self.prev = h;
        self.expected_seq = Some(next);
    }

    /// The last record that verified (the anchor's sequence, or 0, before any) and its hash.
    fn end(&self) -> (u64, [u8; 32]) {
        (self.expected_seq.unwrap_or(1) - 1, self.prev)
    }

    /// Finishes the live log: checkpoints past the last record mean the tail was cut off;
    /// verified records after the last checkpoint are reported as the unsigned tail.
    pub fn finish(mut self) -> VerifyReport {
        let next = self.end().0 + 1;
        if self.report.ok && self.checkpoints.range(next..).next().is_some() {
            self.fail(next, "records covered by a signed checkpoint are missing");
        }
        self.report.signed_through = self.signed_through;
        self.report.unsigned_tail = self.end().0.saturating_sub(self.signed_through);
        self.report
    }

    /// Finishes an export: on top of [`Self::finish`], the file must end exactly where its
    /// signed header says, on the declared hash, with a signed checkpoint on the last record.
    /// A missing or unverifiable header means the end cannot be trusted: the first sequence
    /// number the file cannot vouch for is the one after its last record.
    fn finish_export(mut self, header: Result<&ExportHeader, &'static str>) -> VerifyReport {
        let (end, end_hash) = self.end();
        match header {
            Err(problem) => self.fail(end + 1, problem),
            Ok(h) if h.to_seq > end => self.fail(
                end + 1,
                "records the export header declares are missing (the tail was cut off)",
            ),
            Ok(h) if h.to_seq < end => self.fail(
                h.to_seq + 1,
                "records follow the end the export header declares",
            ),
            Ok(h) if h.to_hash != hex::encode(end_hash) => self.fail(
                end,
                "the last record's hash differs from the one the export header declares",
            ),
            Ok(_) => {}
        }
        if self.report.ok && end >= 1 && end != self.signed_through {
            self.fail(end, "the last record is not covered by a signed checkpoint");
        }
        self.finish()
    }
}

/// The export format this version writes and accepts. v1 headers were unsigned, so their
/// declared end could be edited to hide a cut tail; they are refused.
pub const EXPORT_FORMAT: &str = "partnergate-audit-export/v2";

/// The header line of an export. Its signature covers every other field.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportHeader {
    /// Format version, [`EXPORT_FORMAT`].
    pub format: String,
    /// First sequence number in the file.
    pub from_seq: u64,
    /// Last sequence number in the file.
    pub to_seq: u64,
    /// Hash (hex) of record `to_seq`: binds the header to this chain's end.
    #[serde(default)]
    pub to_hash: String,
    /// When it was exported.
    pub exported_at: String,
    /// Ed25519 signature (hex) over [`export_message`], by the checkpoint key.
    #[serde(default)]
    pub signature: String,
}

impl ExportHeader {
    /// Builds and signs a header.
    pub fn signed(
        from_seq: u64,
        to_seq: u64,
        to_hash: String,
        exported_at: String,
        signer: &ring::signature::Ed25519KeyPair,
    ) -> Self {
        let msg = export_message(EXPORT_FORMAT, from_seq, to_seq, &to_hash, &exported_at);
        Self {
            format: EXPORT_FORMAT.to_string(),
            from_seq,
            to_seq,
            to_hash,
            exported_at,
            signature: hex::encode(signer.sign(&msg)),
        }
    }

    /// Whether the header is in the current format and its signature is valid.
    fn check(&self, public_key: &[u8]) -> Result<(), &'static str> {
        if self.format != EXPORT_FORMAT || self.signature.is_empty() {
            return Err("export header is not signed (old or unknown format: export again)");
        }
        let msg = export_message(
            &self.format,
            self.from_seq,
            self.to_seq,
            &self.to_hash,
            &self.exported_at,
        );
        let ok = signature_bytes(&self.signature).is_some_and(|sig| {
            UnparsedPublicKey::new(&ED25519, public_key)
                .verify(&msg, &sig)
                .is_ok()
        });
        if ok {
            Ok(())
        } else {
            Err("export header signature is invalid (the header was altered)")
        }
    }
}

/// The bytes an export header's signature covers. Its first line differs from a checkpoint's
/// and an erasure receipt's, so no signature can be replayed as another kind.
pub fn export_message(
    format: &str,
    from_seq: u64,
    to_seq: u64,
    to_hash: &str,
    exported_at: &str,
) -> Vec<u8> {
    format!("{format}\n{from_seq}\n{to_seq}\n{to_hash}\n{exported_at}\n").into_bytes()
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
///
/// Beyond every record's chain link and every checkpoint's signature, the file must be whole:
/// its signed header's range must be exactly the records present (so a cut tail is named at
/// its first missing sequence number, header edited or not), and the last record must carry
/// the declared hash and a signed checkpoint.
pub fn verify_export(text: &str, public_key: &[u8]) -> VerifyReport {
    let mut headers = Vec::new();
    let mut anchors = Vec::new();
    let mut checkpoints = Vec::new();
    let mut records = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if line.starts_with("{\"v\":") {
            records.push(line);
            continue;
        }
        match serde_json::from_str::<Meta>(line) {
            Ok(Meta::Export(h)) => headers.push(h),
            Ok(Meta::Anchor(a)) => anchors.push(a),
            Ok(Meta::Checkpoint(c)) => checkpoints.push(c),
            Err(_) => records.push(line), // a damaged record line: the chain check names it
        }
    }
    // A second header or anchor could make the file mean two things: refuse rather than pick.
    let anchor = anchors.first();
    let mut v = ChainVerifier::new(public_key, checkpoints, anchor);
    let first = anchor.map(|a| a.seq.saturating_add(1)).unwrap_or(1);
    if anchors.len() > 1 {
        v.fail(first, "export has more than one anchor");
    }
    let header = match headers.as_slice() {
        [] => Err("export header is missing"),
        [h] => h.check(public_key).map(|()| h),
        _ => Err("export has more than one header"),
    };
    if let Ok(h) = header
        && h.from_seq != first
    {
        v.fail(first, "export header does not match its anchor");
    }
    for r in records {
        v.push(r, None);
        if v.failed() {
            break;
        }
    }
    v.finish_export(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_a_chunk_keeps_each_record_with_its_stored_hash() {
        let texts: Vec<String> = (1..=50)
            .map(|seq| {
                format!(
                    "{{\"v\":1,\"seq\":{seq},\"prev_hash\":\"{}\"}}",
                    "00".repeat(32)
                )
            })
            .collect();
        let mut stored: Vec<[u8; 32]> = texts.iter().map(|t| hash(t.as_bytes())).collect();
        stored[7] = [0; 32];
        let hashed = hash_all(texts.iter().map(String::as_bytes).zip(&stored));
        assert_eq!(hashed.len(), texts.len());
        for (i, (h, text)) in hashed.iter().zip(&texts).enumerate() {
            assert_eq!(h.fields.map(|f| f.0), Some(i as u64 + 1));
            assert_eq!(h.hash, hash(text.as_bytes()));
            assert_eq!(h.stored == Some(h.hash), i != 7, "record {i}");
        }
    }

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
