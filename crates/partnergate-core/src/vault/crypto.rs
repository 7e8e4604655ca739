//! Field sealing: participant ids, per-participant data keys, and the AEAD primitives the key
//! hierarchy in [`super::keys`] builds on.
//!
//! Every field value is sealed with AES-256-GCM under the participant's own [`DataKey`]. The
//! associated data binds a ciphertext to its participant, its field name and the data-key
//! version, so a ciphertext copied to another row, another field or another key version does not
//! open. Secret bytes live in zeroizing containers and no `Debug` impl prints them.

use std::fmt;

use aes_gcm::aead::{Aead, AeadInOut, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of the random AES-GCM nonce that prefixes every sealed value.
pub const NONCE_LEN: usize = 12;
/// Length of the AES-GCM authentication tag at the end of every sealed value.
pub const TAG_LEN: usize = 16;
/// Length in bytes of a [`ParticipantId`].
pub const PARTICIPANT_ID_LEN: usize = 16;
/// Length in bytes of every symmetric key in the hierarchy (AES-256, HMAC-SHA256).
pub const KEY_LEN: usize = 32;

/// Errors of the key hierarchy and field sealing.
///
/// Messages name what went wrong, never plaintext, key bytes or personal data.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Authentication failed: wrong key, wrong participant/field/version, or tampered bytes.
    /// Deliberately one opaque variant so callers cannot learn which.
    #[error("decryption failed: wrong key or context, or the data was tampered with")]
    Decrypt,
    /// The sealed or wrapped value is too short or otherwise not in the expected layout.
    #[error("sealed value is malformed")]
    Malformed,
    /// The value was wrapped under a master key version the keyring does not hold (never
    /// existed, or retired).
    #[error("master key version {0} is not in the keyring (retired or unknown)")]
    UnknownMasterVersion(u32),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// A master key file or variable is not in the expected format.
    #[error("invalid master key material: {0}")]
    KeyFormat(String),
    /// A master key file is unsafe to use (permissions, already exists, ...).
    #[error("master key file {path}: {reason}")]
    KeyFile {
        /// The file concerned (a path is not secret).
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An I/O error while reading or writing a key file.
    #[error("master key file {path}: {source}")]
    Io {
        /// The file concerned.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Fills `buf` from the operating system's CSPRNG (ring's `SystemRandom`).
pub(crate) fn random_fill(buf: &mut [u8]) -> Result<(), CryptoError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError::Random)
}

/// An AES-256-GCM key ready for use: its key schedule and GHASH key are computed once, not
/// per value (per field, that was a sixth of a sync page's decryption time). aes-gcm's
/// `zeroize` feature wipes them on drop.
pub(crate) struct Cipher(Aes256Gcm);

// Fails to compile if aes-gcm stops wiping its key schedule on drop (its `zeroize` feature).
const _: fn() = || {
    fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    wiped_on_drop::<Aes256Gcm>();
};

impl Cipher {
    /// Prepares `key`.
    pub(crate) fn new(key: &[u8; KEY_LEN]) -> Self {
        Self(Aes256Gcm::new(key.into()))
    }

    /// Seals `plaintext` with a fresh random nonce: `nonce || ciphertext || tag`.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        random_fill(&mut nonce)?;
        let ct = self
            .0
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            // Only reachable for absurd lengths (> 64 GiB); not a decryption oracle.
            .map_err(|_| CryptoError::Malformed)?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens a value produced by [`Cipher::seal`] with the same key and associated data.
    pub(crate) fn open(
        &self,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let mut buf = Zeroizing::new(sealed.to_vec());
        let len = self.open_in_place(aad, &mut buf)?.len();
        buf.copy_within(NONCE_LEN..NONCE_LEN + len, 0);
        // The plaintext's tail is still there past `len`: wiped now, not only on drop.
        buf[len..].zeroize();
        buf.truncate(len);
        Ok(buf)
    }

    /// Opens `sealed` where it lies and returns the plaintext, a part of it: no allocation,
    /// for the many fields of a page. The caller wipes `sealed` after use.
    pub(crate) fn open_in_place<'b>(
        &self,
        aad: &[u8],
        sealed: &'b mut [u8],
    ) -> Result<&'b [u8], CryptoError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Malformed);
        }
        let (nonce, rest) = sealed.split_at_mut(NONCE_LEN);
        let (msg, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
        let nonce = Nonce::try_from(&*nonce).map_err(|_| CryptoError::Malformed)?;
        let tag = Tag::try_from(&*tag).map_err(|_| CryptoError::Malformed)?;
        self.0
            .decrypt_inout_detached(&nonce, aad, msg.into(), &tag)
            .map_err(|_| CryptoError::Decrypt)?;
        Ok(msg)
    }
}

/// The internal, random identifier of a participant (16 bytes).
///
/// Never shown to partners (they see a per-partner [`super::keys::Pid`]) and never logged:
/// `Debug` is redacted and there is deliberately no `Display`. Storage code uses
/// [`ParticipantId::as_bytes`] / [`ParticipantId::from_slice`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId([u8; PARTICIPANT_ID_LEN]);

impl ParticipantId {
    /// A fresh random id from the system CSPRNG.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut b = [0u8; PARTICIPANT_ID_LEN];
        random_fill(&mut b)?;
        Ok(Self(b))
    }

    /// Wraps 16 raw bytes (e.g. read from the database).
    pub const fn from_bytes(bytes: [u8; PARTICIPANT_ID_LEN]) -> Self {
        Self(bytes)
    }

    /// Parses raw bytes; `None` unless exactly 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; PARTICIPANT_ID_LEN]>::try_from(bytes).ok().map(Self)
    }

    /// The raw bytes, for storage and key derivation.
    pub const fn as_bytes(&self) -> &[u8; PARTICIPANT_ID_LEN] {
        &self.0
    }

    /// A copy of the raw bytes.
    pub const fn to_bytes(&self) -> [u8; PARTICIPANT_ID_LEN] {
        self.0
    }
}

impl fmt::Debug for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The internal id links a participant across partners: keep it out of logs.
        f.write_str("ParticipantId(..)")
    }
}

/// A participant's data-encryption key: 256 random bits, zeroized on drop, with its cipher
/// prepared once for the many fields it seals and opens.
///
/// Stored only wrapped under the master keyring ([`super::keys::MasterKeyring::wrap`]);
/// deleting the wrapped key crypto-shreds every field sealed under it. Not `Clone`, so a key
/// cannot be copied around by accident.
pub struct DataKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    cipher: Cipher,
}

impl DataKey {
    /// A fresh random data key.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        random_fill(&mut bytes[..])?;
        Ok(Self::from_array(bytes))
    }

    /// Rebuilds a key from unwrapped bytes (only the keyring does that).
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let mut arr = Zeroizing::new([0u8; KEY_LEN]);
        if bytes.len() != KEY_LEN {
            return Err(CryptoError::Malformed);
        }
        arr.copy_from_slice(bytes);
        Ok(Self::from_array(arr))
    }

    fn from_array(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        let cipher = Cipher::new(&bytes);
        Self { bytes, cipher }
    }

    /// The raw key bytes, for wrapping.
    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// Seals one field value: `12-byte random nonce || AES-256-GCM ciphertext || tag`.
    ///
    /// The associated data binds the result to `participant`, `field_name` and `dek_version`.
    pub fn seal(
        &self,
        participant: &ParticipantId,
        field_name: &str,
        dek_version: u32,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.cipher
            .seal(&field_aad(participant, field_name, dek_version), plaintext)
    }

    /// Opens a value sealed by [`DataKey::seal`] with the same participant, field and version.
    pub fn open(
        &self,
        participant: &ParticipantId,
        field_name: &str,
        dek_version: u32,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.cipher
            .open(&field_aad(participant, field_name, dek_version), sealed)
    }

    /// [`DataKey::open`] where the sealed value lies: the plaintext is a part of `sealed`,
    /// which the caller wipes after use.
    pub(crate) fn open_in_place<'b>(
        &self,
        participant: &ParticipantId,
        field_name: &str,
        dek_version: u32,
        sealed: &'b mut [u8],
    ) -> Result<&'b [u8], CryptoError> {
        self.cipher
            .open_in_place(&field_aad(participant, field_name, dek_version), sealed)
    }
}

// Both parts wipe themselves: the bytes are `Zeroizing`, the cipher is checked above.
impl ZeroizeOnDrop for DataKey {}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// AAD for a field: length-prefixed id and field name (so no two contexts share an encoding),
/// then the data-key version.
fn field_aad(participant: &ParticipantId, field_name: &str, dek_version: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(4 + PARTICIPANT_ID_LEN + 4 + field_name.len() + 4);
    aad.extend_from_slice(&(PARTICIPANT_ID_LEN as u32).to_be_bytes());
    aad.extend_from_slice(participant.as_bytes());
    aad.extend_from_slice(&(field_name.len() as u32).to_be_bytes());
    aad.extend_from_slice(field_name.as_bytes());
    aad.extend_from_slice(&dek_version.to_be_bytes());
    aad
}

/// A key (or system secret) encrypted under one version of the master keyring.
///
/// `bytes` is `nonce || ciphertext || tag`; it is not secret, but `Debug` still prints only its
/// length to keep logs small.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The master key version that wrapped it.
    pub master_version: u32,
    /// The wrapped bytes.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("master_version", &self.master_version)
            .field("len", &self.bytes.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid() -> ParticipantId {
        ParticipantId::generate().unwrap()
    }

    #[test]
    fn seal_open_round_trip() {
        let k = DataKey::generate().unwrap();
        let p = pid();
        let ct = k.seal(&p, "life.housing", 1, b"dakloos").unwrap();
        assert_eq!(ct.len(), NONCE_LEN + 7 + TAG_LEN);
        assert_eq!(&k.open(&p, "life.housing", 1, &ct).unwrap()[..], b"dakloos");
    }

    #[test]
    fn opening_in_place_gives_the_plaintext_and_refuses_a_changed_byte() {
        let k = DataKey::generate().unwrap();
        let p = pid();
        let mut ct = k.seal(&p, "life.housing", 1, b"dakloos").unwrap();
        let mut tampered = ct.clone();
        assert_eq!(
            k.open_in_place(&p, "life.housing", 1, &mut ct).unwrap(),
            b"dakloos"
        );
        tampered[NONCE_LEN] ^= 1;
        assert!(matches!(
            k.open_in_place(&p, "life.housing", 1, &mut tampered),
            Err(CryptoError::Decrypt)
        ));
        let mut ct = k.seal(&p, "life.housing", 1, b"dakloos").unwrap();
        assert!(k.open_in_place(&p, "life.income", 1, &mut ct).is_err());
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let k = DataKey::generate().unwrap();
        let p = pid();
        let ct = k.seal(&p, "x.y", 1, b"").unwrap();
        assert!(k.open(&p, "x.y", 1, &ct).unwrap().is_empty());
    }

    #[test]
    fn nonces_are_fresh() {
        let k = DataKey::generate().unwrap();
        let p = pid();
        let a = k.seal(&p, "a.b", 1, b"same").unwrap();
        let b = k.seal(&p, "a.b", 1, b"same").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn truncated_is_malformed() {
        let k = DataKey::generate().unwrap();
        assert!(matches!(
            k.open(&pid(), "a.b", 1, &[0u8; 27]),
            Err(CryptoError::Malformed)
        ));
    }

    #[test]
    fn field_aad_is_unambiguous() {
        let p = pid();
        assert_ne!(field_aad(&p, "a.b", 1), field_aad(&p, "a.b", 256));
        assert_ne!(field_aad(&p, "a.bc", 1), field_aad(&p, "a.b", 1));
    }

    #[test]
    fn participant_id_slices() {
        let p = pid();
        assert_eq!(ParticipantId::from_slice(p.as_bytes()), Some(p));
        assert_eq!(ParticipantId::from_slice(&[1; 15]), None);
        assert_eq!(ParticipantId::from_bytes(p.to_bytes()), p);
        assert_eq!(format!("{p:?}"), "ParticipantId(..)");
    }

    #[test]
    fn error_messages_are_generic() {
        assert_eq!(
            CryptoError::Decrypt.to_string(),
            "decryption failed: wrong key or context, or the data was tampered with"
        );
    }
}
