//! The key hierarchy.
//!
//! ```text
//! master key file (v1, v2, ...)            data/master.key, 0600, or an environment variable
//!   └─ HKDF "partnergate/v1/wrap"          one wrapping key per master version
//!        ├─ wraps each participant's DataKey   (AAD: "wrap" || participant id || version)
//!        └─ wraps system secrets by label      (AAD: "wsec" || label || version)
//!             └─ IndexSecret (random, generated once at init, stored wrapped)
//!                  ├─ HKDF "partnergate/v1/insz-lookup"      HMAC-SHA256 of the INSZ
//!                  ├─ HKDF "partnergate/v1/pid/<partner>"    AES-256 PRP: id <-> pid
//!                  ├─ HKDF "partnergate/v1/audit-pseudonym"  HMAC-SHA256 of the id
//!                  ├─ HKDF "partnergate/v1/token-mac"        MAC of sync cursors
//!                  └─ HKDF "partnergate/v1/idempotency"      HMAC of retried requests
//! ```
//!
//! Look-up hashes, pids and audit pseudonyms hang off the [`IndexSecret`], not off the master
//! key, so rotating the master key only re-wraps keys: nothing a partner or the audit log holds
//! changes, and old master versions can be retired.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aes_gcm::aes::Aes256;
use aes_gcm::aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use ring::{hkdf, hmac};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::crypto::{
    Cipher, CryptoError, DataKey, KEY_LEN, PARTICIPANT_ID_LEN, ParticipantId, WrappedKey,
    random_fill,
};
use super::insz::Insz;

/// Fixed HKDF salt: domain separation from any other use of the same key material.
const HKDF_SALT: &[u8] = b"partnergate hkdf salt v1";
const INFO_WRAP: &[u8] = b"partnergate/v1/wrap";
const INFO_INSZ: &[u8] = b"partnergate/v1/insz-lookup";
const INFO_PID: &[u8] = b"partnergate/v1/pid/";
const INFO_AUDIT: &[u8] = b"partnergate/v1/audit-pseudonym";
const INFO_TOKEN: &[u8] = b"partnergate/v1/token-mac";
const INFO_IDEMPOTENCY: &[u8] = b"partnergate/v1/idempotency";
/// Label under which the [`IndexSecret`] is wrapped.
const INDEX_SECRET_LABEL: &str = "index-secret";

/// HKDF-SHA256 (ring) of `ikm` with the fixed salt and the concatenated `info` parts.
fn derive(ikm: &[u8], info: &[&[u8]]) -> Zeroizing<[u8; KEY_LEN]> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(ikm);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    // 32 bytes is far below HKDF's 255 * 32 limit and matches the requested length, so
    // neither call can fail.
    prk.expand(info, hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut out[..]))
        .expect("HKDF-SHA256 output of 32 bytes");
    out
}

/// One master key version and the wrapping key derived from it, prepared for the data key of
/// every participant a page reads.
#[derive(Zeroize, ZeroizeOnDrop)]
struct MasterKey {
    master: [u8; KEY_LEN],
    /// Wipes itself on drop.
    #[zeroize(skip)]
    wrap: Cipher,
}

impl MasterKey {
    fn new(master: [u8; KEY_LEN]) -> Self {
        let wrap = Cipher::new(&derive(&master, &[INFO_WRAP]));
        Self { master, wrap }
    }
}

/// The versions of the 256-bit master key. The highest version is current: new wraps use it,
/// older versions only unwrap until they are retired.
///
/// Text format (file or environment variable): one line per version, `v<N>:<64 hex digits>`;
/// blank lines and lines starting with `#` are ignored.
pub struct MasterKeyring {
    keys: BTreeMap<u32, MasterKey>,
}

impl fmt::Debug for MasterKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKeyring")
            .field("versions", &self.versions())
            .field("current", &self.current_version())
            .finish()
    }
}

fn key_file_err(path: &Path, reason: impl Into<String>) -> CryptoError {
    CryptoError::KeyFile {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CryptoError + '_ {
    move |source| CryptoError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn random_key() -> Result<[u8; KEY_LEN], CryptoError> {
    let mut k = [0u8; KEY_LEN];
    random_fill(&mut k)?;
    Ok(k)
}

impl MasterKeyring {
    /// A new in-memory keyring with one random version (1).
    pub fn generate() -> Result<Self, CryptoError> {
        let mut keys = BTreeMap::new();
        keys.insert(1, MasterKey::new(random_key()?));
        Ok(Self { keys })
    }

    /// Parses the text format (as read from the key file or an environment variable).
    /// Errors give the line number, never the line.
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let mut keys = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || {
                CryptoError::KeyFormat(format!(
                    "line {}: expected v<N>:<64 hex digits> with N >= 1",
                    i + 1
                ))
            };
            let (version, hex_key) = line
                .strip_prefix('v')
                .and_then(|rest| rest.split_once(':'))
                .ok_or_else(bad)?;
            let version: u32 = version.parse().map_err(|_| bad())?;
            if version == 0 || hex_key.len() != 2 * KEY_LEN {
                return Err(bad());
            }
            let mut key = Zeroizing::new([0u8; KEY_LEN]);
            hex::decode_to_slice(hex_key, &mut key[..]).map_err(|_| bad())?;
            if keys.insert(version, MasterKey::new(*key)).is_some() {
                return Err(CryptoError::KeyFormat(format!(
                    "line {}: version {version} appears twice",
                    i + 1
                )));
            }
        }
        if keys.is_empty() {
            return Err(CryptoError::KeyFormat("no master key version".into()));
        }
        Ok(Self { keys })
    }

    /// Reads the keyring from environment variable `var`; `Ok(None)` if it is not set.
    pub fn from_env(var: &str) -> Result<Option<Self>, CryptoError> {
        match std::env::var(var) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                Self::parse(&text).map(Some)
            }
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(CryptoError::KeyFormat(format!(
                "environment variable {var} is not valid UTF-8"
            ))),
        }
    }

    /// Creates `path` (mode 0600, parent directories 0700) holding a new random version 1.
    /// Fails if the file already exists: a master key is never overwritten.
    pub fn generate_file(path: &Path) -> Result<Self, CryptoError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err(dir))?;
        }
        let ring = Self::generate()?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    key_file_err(path, "already exists; refusing to overwrite a master key")
                } else {
                    io_err(path)(e)
                }
            })?;
        if let Err(e) = file
            .write_all(ring.to_text().as_bytes())
            .and_then(|()| file.sync_all())
        {
            // Do not leave a half-written key file that a later `init` would refuse to replace.
            let _ = fs::remove_file(path);
            return Err(io_err(path)(e));
        }
        Ok(ring)
    }

    /// Loads the keyring from `path`, refusing a file that group or others can access.
    pub fn load(path: &Path) -> Result<Self, CryptoError> {
        let mut file = File::open(path).map_err(io_err(path))?;
        // Check the permissions of the file we actually opened (no check-then-open race).
        let meta = file.metadata().map_err(io_err(path))?;
        if !meta.is_file() {
            return Err(key_file_err(path, "is not a regular file"));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(key_file_err(
                path,
                format!(
                    "is accessible by group or others (mode {mode:04o}); \
                     restrict it with `chmod 600`"
                ),
            ));
        }
        let mut text = Zeroizing::new(String::new());
        file.read_to_string(&mut text).map_err(io_err(path))?;
        Self::parse(&text).map_err(|e| match e {
            CryptoError::KeyFormat(reason) => key_file_err(path, reason),
            other => other,
        })
    }

    /// Appends a new random version to the key file (atomically: a 0600 temporary file,
    /// fsync, rename) and returns its number. Used by `keys rotate`; wrapped keys are then
    /// re-wrapped online with [`MasterKeyring::rewrap`].
    pub fn add_version_to_file(path: &Path) -> Result<u32, CryptoError> {
        let mut ring = Self::load(path)?;
        let version = ring
            .current_version()
            .checked_add(1)
            .ok_or_else(|| key_file_err(path, "master key version overflow"))?;
        ring.keys.insert(version, MasterKey::new(random_key()?));
        ring.write_atomic(path)?;
        Ok(version)
    }

    /// Removes every version below `min_version` from the key file (atomically) and returns
    /// the retired version numbers. Keys still wrapped under them can no longer be unwrapped,
    /// so re-wrap first. The current version can never be retired.
    pub fn retire_versions_below(path: &Path, min_version: u32) -> Result<Vec<u32>, CryptoError> {
        let mut ring = Self::load(path)?;
        if min_version > ring.current_version() {
            return Err(key_file_err(
                path,
                format!(
                    "cannot retire the current master key version {}",
                    ring.current_version()
                ),
            ));
        }
        let retired: Vec<u32> = ring.keys.range(..min_version).map(|(v, _)| *v).collect();
        if !retired.is_empty() {
            ring.keys.retain(|v, _| *v >= min_version);
            ring.write_atomic(path)?;
        }
        Ok(retired)
    }

    fn to_text(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::from(
            "# partnergate master keyring: v<N>:<hex>, highest is current. Keep secret (0600).\n",
        ));
        for (v, k) in &self.keys {
            let hex_key = Zeroizing::new(hex::encode(k.master));
            s.push_str(&format!("v{v}:{}\n", hex_key.as_str()));
        }
        s
    }

    fn write_atomic(&self, path: &Path) -> Result<(), CryptoError> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut suffix = [0u8; 8];
        random_fill(&mut suffix)?;
        let file_name = path
            .file_name()
            .ok_or_else(|| key_file_err(path, "is not a file path"))?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            file_name.to_string_lossy(),
            hex::encode(suffix)
        ));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(self.to_text().as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            // Make the rename itself durable.
            File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(io_err(path))
    }

    /// The current (highest) version: new wraps use it.
    pub fn current_version(&self) -> u32 {
        // A keyring is never empty (parse and generate guarantee at least one version).
        self.keys.keys().next_back().copied().unwrap_or(0)
    }

    /// All versions held, ascending.
    pub fn versions(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// Whether `wrapped` should be re-wrapped under the current version.
    pub fn needs_rewrap(&self, wrapped: &WrappedKey) -> bool {
        wrapped.master_version != self.current_version()
    }

    fn wrap_key(&self, version: u32) -> Result<&Cipher, CryptoError> {
        self.keys
            .get(&version)
            .map(|k| &k.wrap)
            .ok_or(CryptoError::UnknownMasterVersion(version))
    }

    fn current(&self) -> (u32, &Cipher) {
        let (v, k) = self
            .keys
            .iter()
            .next_back()
            .expect("a keyring always holds at least one version");
        (*v, &k.wrap)
    }

    /// Wraps a participant's data key under the current master version.
    pub fn wrap(
        &self,
        participant: &ParticipantId,
        dek: &DataKey,
    ) -> Result<WrappedKey, CryptoError> {
        let (version, key) = self.current();
        let bytes = key.seal(&dek_aad(participant, version), dek.expose())?;
        Ok(WrappedKey {
            master_version: version,
            bytes,
        })
    }

    /// Unwraps a participant's data key; fails for another participant, a tampered value or a
    /// retired master version.
    pub fn unwrap(
        &self,
        participant: &ParticipantId,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, CryptoError> {
        let key = self.wrap_key(wrapped.master_version)?;
        let raw = key.open(
            &dek_aad(participant, wrapped.master_version),
            &wrapped.bytes,
        )?;
        DataKey::from_bytes(&raw)
    }

    /// Unwraps under whatever version wrapped it and wraps again under the current version.
    pub fn rewrap(
        &self,
        participant: &ParticipantId,
        wrapped: &WrappedKey,
    ) -> Result<WrappedKey, CryptoError> {
        let dek = self.unwrap(participant, wrapped)?;
        self.wrap(participant, &dek)
    }

    /// Wraps a named system secret (e.g. the index secret) under the current master version.
    pub fn wrap_secret(&self, label: &str, secret: &[u8]) -> Result<WrappedKey, CryptoError> {
        let (version, key) = self.current();
        let bytes = key.seal(&secret_aad(label, version), secret)?;
        Ok(WrappedKey {
            master_version: version,
            bytes,
        })
    }

    /// Unwraps a named system secret wrapped by [`MasterKeyring::wrap_secret`] with the same
    /// label.
    pub fn unwrap_secret(
        &self,
        label: &str,
        wrapped: &WrappedKey,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let key = self.wrap_key(wrapped.master_version)?;
        key.open(&secret_aad(label, wrapped.master_version), &wrapped.bytes)
    }

    /// Re-wraps a named system secret under the current master version.
    pub fn rewrap_secret(
        &self,
        label: &str,
        wrapped: &WrappedKey,
    ) -> Result<WrappedKey, CryptoError> {
        let secret = self.unwrap_secret(label, wrapped)?;
        self.wrap_secret(label, &secret)
    }
}

/// AAD for a wrapped data key: `"wrap" || participant id || master version (BE)`.
fn dek_aad(participant: &ParticipantId, version: u32) -> [u8; 4 + PARTICIPANT_ID_LEN + 4] {
    let mut aad = [0u8; 4 + PARTICIPANT_ID_LEN + 4];
    aad[..4].copy_from_slice(b"wrap");
    aad[4..4 + PARTICIPANT_ID_LEN].copy_from_slice(participant.as_bytes());
    aad[4 + PARTICIPANT_ID_LEN..].copy_from_slice(&version.to_be_bytes());
    aad
}

/// AAD for a wrapped system secret: `"wsec" || len(label) || label || master version (BE)`.
/// The different 4-byte tag keeps it apart from every data-key AAD.
fn secret_aad(label: &str, version: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(12 + label.len());
    aad.extend_from_slice(b"wsec");
    aad.extend_from_slice(&(label.len() as u32).to_be_bytes());
    aad.extend_from_slice(label.as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

/// The random 256-bit root of every stable pseudonym (INSZ look-up hashes, pids, audit
/// pseudonyms). Generated once at `init` and stored only wrapped under the master keyring.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct IndexSecret([u8; KEY_LEN]);

impl fmt::Debug for IndexSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IndexSecret(..)")
    }
}

impl IndexSecret {
    /// A fresh random index secret (only at `init`: changing it changes every pid).
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self(random_key()?))
    }

    /// Wraps it under the keyring's current master version, for storage.
    pub fn wrap(&self, keyring: &MasterKeyring) -> Result<WrappedKey, CryptoError> {
        keyring.wrap_secret(INDEX_SECRET_LABEL, &self.0)
    }

    /// Unwraps a stored index secret.
    pub fn unwrap_from(keyring: &MasterKeyring, wrapped: &WrappedKey) -> Result<Self, CryptoError> {
        let raw = keyring.unwrap_secret(INDEX_SECRET_LABEL, wrapped)?;
        let arr = <[u8; KEY_LEN]>::try_from(&raw[..]).map_err(|_| CryptoError::Malformed)?;
        Ok(Self(arr))
    }

    /// Re-wraps a stored index secret under the current master version (key rotation).
    pub fn rewrap(
        keyring: &MasterKeyring,
        wrapped: &WrappedKey,
    ) -> Result<WrappedKey, CryptoError> {
        keyring.rewrap_secret(INDEX_SECRET_LABEL, wrapped)
    }
}

/// A participant's pseudonym as one partner sees it: 32 lowercase hex characters.
///
/// Different for every partner, stable for a partner, and invertible only by the gateway.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize)]
#[serde(transparent)]
pub struct Pid(String);

impl Pid {
    /// The pid text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The pid text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One partner's pseudonym key: AES-256 as a pseudorandom permutation on the 16-byte
/// participant id. Hold it for a batch (e.g. a sync-feed page) to avoid re-deriving per item.
pub struct PartnerPidKey {
    // Wiped on drop: aes-gcm's `zeroize` feature turns on aes's.
    cipher: Aes256,
}

impl fmt::Debug for PartnerPidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PartnerPidKey(..)")
    }
}

impl PartnerPidKey {
    /// The partner's pid for `participant`.
    pub fn pid_for(&self, participant: &ParticipantId) -> Pid {
        // A single-block AES encryption is a PRP: deterministic (stable pids), unlinkable
        // across partners (independent keys) and invertible with the key.
        let mut block = aes_gcm::aes::Block::from(participant.to_bytes());
        self.cipher.encrypt_block(&mut block);
        Pid(hex::encode(block))
    }

    /// The participant behind `pid`, or `None` if `pid` is not 32 lowercase hex characters.
    /// A pid of another partner decodes to an unrelated id that will not exist.
    pub fn resolve(&self, pid: &str) -> Option<ParticipantId> {
        let b = pid.as_bytes();
        if b.len() != 2 * PARTICIPANT_ID_LEN
            || !b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        let mut raw = [0u8; PARTICIPANT_ID_LEN];
        hex::decode_to_slice(b, &mut raw).ok()?;
        let mut block = aes_gcm::aes::Block::from(raw);
        self.cipher.decrypt_block(&mut block);
        ParticipantId::from_slice(&block)
    }
}

/// The keys derived from the [`IndexSecret`], each in its own HKDF domain.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct IndexKeys {
    insz_lookup: [u8; KEY_LEN],
    pid_root: [u8; KEY_LEN],
    audit: [u8; KEY_LEN],
    token: [u8; KEY_LEN],
    idempotency: [u8; KEY_LEN],
}

impl fmt::Debug for IndexKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IndexKeys(..)")
    }
}

impl IndexKeys {
    /// Derives the INSZ look-up, pseudonym and audit keys from the index secret.
    pub fn derive(secret: &IndexSecret) -> Self {
        Self {
            insz_lookup: *derive(&secret.0, &[INFO_INSZ]),
            pid_root: *derive(&secret.0, &[INFO_PID]),
            audit: *derive(&secret.0, &[INFO_AUDIT]),
            token: *derive(&secret.0, &[INFO_TOKEN]),
            idempotency: *derive(&secret.0, &[INFO_IDEMPOTENCY]),
        }
    }

    /// A MAC (16 bytes) over an opaque token the gateway hands out, such as a sync cursor, so a
    /// forged or another client's token is recognised.
    pub fn token_mac(&self, data: &[u8]) -> [u8; 16] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.token);
        let tag = hmac::sign(&key, data);
        let mut out = [0u8; 16];
        out.copy_from_slice(&tag.as_ref()[..16]);
        out
    }

    /// The keyed hash of a request retried under an `Idempotency-Key`: the stored hash of a
    /// body with personal data cannot be confirmed by guessing without this key.
    pub fn idempotency_hash(&self, parts: &[&[u8]]) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.idempotency);
        let mut ctx = hmac::Context::with_key(&key);
        for p in parts {
            // Length-prefixed, so that part boundaries cannot shift.
            ctx.update(&(p.len() as u64).to_be_bytes());
            ctx.update(p);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    /// The keyed look-up hash of an INSZ: HMAC-SHA256 over its normalized 11 digits.
    pub fn insz_lookup_hash(&self, insz: &Insz) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.insz_lookup);
        let tag = hmac::sign(&key, insz.as_str().as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// The pseudonym key of one partner (HKDF info `partnergate/v1/pid/<partner_id>`).
    pub fn partner(&self, partner_id: &str) -> PartnerPidKey {
        let key = derive(&self.pid_root, &[INFO_PID, partner_id.as_bytes()]);
        PartnerPidKey {
            cipher: Aes256::new(&aes_gcm::aes::cipher::Key::<Aes256>::from(*key)),
        }
    }

    /// The pid of `participant` for `partner_id`.
    pub fn pid_for(&self, partner_id: &str, participant: &ParticipantId) -> Pid {
        self.partner(partner_id).pid_for(participant)
    }

    /// The participant behind a pid given by `partner_id`; `None` for malformed input.
    pub fn resolve_pid(&self, partner_id: &str, pid: &str) -> Option<ParticipantId> {
        self.partner(partner_id).resolve(pid)
    }

    /// The participant's pseudonym in the audit log: hex of HMAC-SHA256 truncated to 16
    /// bytes, in its own key domain (unlinkable to pids and INSZ hashes).
    pub fn audit_pseudonym(&self, participant: &ParticipantId) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.audit);
        let tag = hmac::sign(&key, participant.as_bytes());
        hex::encode(&tag.as_ref()[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> IndexKeys {
        IndexKeys::derive(&IndexSecret::generate().unwrap())
    }

    #[test]
    fn parse_accepts_comments_and_picks_highest() {
        let text = format!(
            "# comment\n\nv1:{}\nv3:{}\n",
            "11".repeat(32),
            "22".repeat(32)
        );
        let ring = MasterKeyring::parse(&text).unwrap();
        assert_eq!(ring.versions(), vec![1, 3]);
        assert_eq!(ring.current_version(), 3);
    }

    #[test]
    fn parse_rejects_bad_lines_without_quoting_them() {
        let secret = "ab".repeat(31);
        for text in [
            String::new(),
            format!("v1:{secret}"),
            format!("v0:{}", "ab".repeat(32)),
            format!("1:{}", "ab".repeat(32)),
            format!("v1:{}zz", "ab".repeat(31)),
            format!("v1:{}\nv1:{}", "ab".repeat(32), "cd".repeat(32)),
        ] {
            let e = MasterKeyring::parse(&text).unwrap_err().to_string();
            assert!(!e.contains("abab"), "{e}");
        }
    }

    #[test]
    fn to_text_round_trips() {
        let ring = MasterKeyring::generate().unwrap();
        let again = MasterKeyring::parse(&ring.to_text()).unwrap();
        assert_eq!(again.versions(), vec![1]);
        let p = ParticipantId::generate().unwrap();
        let dek = DataKey::generate().unwrap();
        let w = ring.wrap(&p, &dek).unwrap();
        assert_eq!(again.unwrap(&p, &w).unwrap().expose(), dek.expose());
    }

    #[test]
    fn secret_wrap_is_bound_to_label() {
        let ring = MasterKeyring::generate().unwrap();
        let w = ring.wrap_secret("a", b"0123").unwrap();
        assert_eq!(&ring.unwrap_secret("a", &w).unwrap()[..], b"0123");
        assert!(matches!(
            ring.unwrap_secret("b", &w),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn index_secret_survives_wrap() {
        let ring = MasterKeyring::generate().unwrap();
        let s = IndexSecret::generate().unwrap();
        let k1 = IndexKeys::derive(&s);
        let w = s.wrap(&ring).unwrap();
        let k2 = IndexKeys::derive(&IndexSecret::unwrap_from(&ring, &w).unwrap());
        let p = ParticipantId::generate().unwrap();
        assert_eq!(k1.pid_for("vdab", &p), k2.pid_for("vdab", &p));
        assert_eq!(k1.audit_pseudonym(&p), k2.audit_pseudonym(&p));
    }

    #[test]
    fn pid_format_and_resolution() {
        let k = keys();
        let p = ParticipantId::generate().unwrap();
        let pid = k.pid_for("jobandco", &p);
        assert_eq!(pid.as_str().len(), 32);
        assert!(
            pid.as_str()
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(k.resolve_pid("jobandco", pid.as_str()), Some(p));
        assert_eq!(
            k.resolve_pid("jobandco", &pid.as_str().to_uppercase()),
            None
        );
        assert_eq!(k.resolve_pid("jobandco", &pid.as_str()[..31]), None);
        assert_eq!(k.resolve_pid("jobandco", ""), None);
        assert_eq!(k.resolve_pid("jobandco", "é".repeat(16).as_str()), None);
        assert_eq!(k.resolve_pid("jobandco", &"g".repeat(32)), None);
    }

    #[test]
    fn partner_ids_are_not_prefix_ambiguous() {
        let k = keys();
        let p = ParticipantId::generate().unwrap();
        assert_ne!(k.pid_for("a", &p), k.pid_for("ab", &p));
        assert_ne!(k.pid_for("", &p), k.pid_for("a", &p));
    }

    #[test]
    fn audit_pseudonym_is_stable_and_distinct() {
        let k = keys();
        let p = ParticipantId::generate().unwrap();
        let a = k.audit_pseudonym(&p);
        assert_eq!(a.len(), 32);
        assert_eq!(a, k.audit_pseudonym(&p));
        assert_ne!(a, k.pid_for("vdab", &p).into_string());
        assert_ne!(a, k.audit_pseudonym(&ParticipantId::generate().unwrap()));
    }

    #[test]
    fn insz_hash_is_keyed_and_normalized() {
        let k = keys();
        let a = Insz::parse("93.05.18-223.61").unwrap();
        let b = Insz::parse("93051822361").unwrap();
        assert_eq!(k.insz_lookup_hash(&a), k.insz_lookup_hash(&b));
        assert_ne!(k.insz_lookup_hash(&a), keys().insz_lookup_hash(&a));
    }

    #[test]
    fn debug_is_redacted() {
        let ring = MasterKeyring::generate().unwrap();
        assert_eq!(
            format!("{ring:?}"),
            "MasterKeyring { versions: [1], current: 1 }"
        );
        assert_eq!(format!("{:?}", keys()), "IndexKeys(..)");
        assert_eq!(format!("{:?}", keys().partner("vdab")), "PartnerPidKey(..)");
    }
}
