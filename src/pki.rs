//! The partnership's development PKI: a CA, the server certificate, one client certificate per
//! agreement client, and the revocation list, all made with rcgen.
//!
//! File names follow DESIGN.md section 3: `ca.pem`/`ca.key`, `server.pem`/`server.key`,
//! `clients/<client>.pem`/`.key`, `revoked.crl`.

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// How long a client certificate issued by `init` or `certs issue` is valid.
pub const CLIENT_VALIDITY: Duration = Duration::days(397);

/// How long a freshly signed revocation list stays valid (its nextUpdate) unless told otherwise.
/// The server refuses every client once it passes, so re-sign it (`certs crl`) well before.
pub const DEFAULT_CRL_VALIDITY_DAYS: u32 = 7;

/// The longest revocation list validity the `certs` commands accept.
pub const MAX_CRL_VALIDITY_DAYS: u32 = 366;

/// How long a revocation list written now stays valid: `days`, between 1 and
/// [`MAX_CRL_VALIDITY_DAYS`].
pub fn crl_validity(days: u32) -> Result<Duration, PkiError> {
    if (1..=MAX_CRL_VALIDITY_DAYS).contains(&days) {
        Ok(Duration::days(days.into()))
    } else {
        Err(PkiError::BadValidity)
    }
}

/// A certificate serial number, normalised (no leading zero bytes) so that the same number
/// compares equal however it was DER-encoded or typed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Serial(Box<[u8]>);

impl Serial {
    /// The serial from its big-endian bytes (as in DER, possibly with a leading zero).
    pub fn from_bytes(raw: &[u8]) -> Self {
        let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
        match &raw[start..] {
            [] => Self(Box::new([0])),
            rest => Self(rest.into()),
        }
    }

    /// Parses hexadecimal as printed by `certs revoke` or openssl (`3a:f0:12`, `0x3AF012`).
    pub fn parse_hex(text: &str) -> Result<Self, PkiError> {
        let t = text.trim();
        let t = t
            .strip_prefix("0x")
            .or_else(|| t.strip_prefix("0X"))
            .unwrap_or(t);
        let mut digits: String = t.chars().filter(|c| *c != ':').collect();
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(PkiError::BadSerial);
        }
        if digits.len() % 2 == 1 {
            digits.insert(0, '0');
        }
        let bytes = hex::decode(&digits).map_err(|_| PkiError::BadSerial)?;
        let serial = Self::from_bytes(&bytes);
        // RFC 5280: at most 20 octets, positive.
        if serial.0.len() > 20 || serial.0.as_ref() == [0] {
            return Err(PkiError::BadSerial);
        }
        Ok(serial)
    }

    /// The big-endian bytes, without leading zeros.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Display for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

/// A revocation list as read back and checked against the CA.
#[derive(Clone, Debug)]
pub struct Crl {
    /// The revoked certificates, in list order.
    pub revoked: Vec<RevokedCertParams>,
    /// The CRL number.
    pub number: u64,
    /// When it was signed (thisUpdate).
    pub this_update: OffsetDateTime,
    /// When it stops being valid (nextUpdate).
    pub next_update: OffsetDateTime,
}

impl Crl {
    /// The revoked serial numbers.
    pub fn serials(&self) -> impl Iterator<Item = Serial> + '_ {
        self.revoked
            .iter()
            .map(|r| Serial::from_bytes(r.serial_number.as_ref()))
    }

    /// Whether the list is past its nextUpdate at `now`: it can no longer be trusted to name
    /// every revoked certificate.
    pub fn is_stale(&self, now: OffsetDateTime) -> bool {
        now >= self.next_update
    }
}

/// Parses a DER revocation list and checks that the CA with certificate `ca_der` signed it.
/// A list without nextUpdate is refused: it could never go stale.
pub fn parse_crl(der: &[u8], ca_der: &[u8], path: &Path) -> Result<Crl, PkiError> {
    let parse_err = || PkiError::Parse(path.to_path_buf());
    let (_, ca) = x509_parser::parse_x509_certificate(ca_der).map_err(|_| parse_err())?;
    let (_, crl) = x509_parser::parse_x509_crl(der).map_err(|_| parse_err())?;
    if crl.issuer().as_raw() != ca.subject().as_raw() {
        return Err(PkiError::ForeignCrl(path.to_path_buf(), "another issuer"));
    }
    crl.verify_signature(ca.public_key())
        .map_err(|_| PkiError::ForeignCrl(path.to_path_buf(), "bad signature"))?;
    let next_update = crl
        .next_update()
        .ok_or(PkiError::ForeignCrl(path.to_path_buf(), "no nextUpdate"))?
        .to_datetime();
    let number = crl
        .crl_number()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0);
    let revoked = crl
        .iter_revoked_certificates()
        .map(|r| RevokedCertParams {
            serial_number: SerialNumber::from_slice(Serial::from_bytes(r.raw_serial()).as_bytes()),
            revocation_time: r.revocation_date.to_datetime(),
            reason_code: r.reason_code().and_then(|(_, code)| reason(code.0)),
            invalidity_date: r.invalidity_date().map(|(_, t)| t.to_datetime()),
        })
        .collect();
    Ok(Crl {
        revoked,
        number,
        this_update: crl.last_update().to_datetime(),
        next_update,
    })
}

/// The rcgen reason for an RFC 5280 reason code, so re-signing keeps every entry's reason.
fn reason(code: u8) -> Option<RevocationReason> {
    use RevocationReason::*;
    Some(match code {
        0 => Unspecified,
        1 => KeyCompromise,
        2 => CaCompromise,
        3 => AffiliationChanged,
        4 => Superseded,
        5 => CessationOfOperation,
        6 => CertificateHold,
        8 => RemoveFromCrl,
        9 => PrivilegeWithdrawn,
        10 => AaCompromise,
        _ => return None,
    })
}

/// What `certs issue` did.
#[derive(Debug)]
pub struct Issued {
    /// The new certificate's serial.
    pub serial: Serial,
    /// The serial of the previous certificate, revoked by `--rotate`.
    pub revoked: Option<Serial>,
}

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// rcgen refused to build or sign.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A certificate or CRL on disk does not parse.
    #[error("cannot parse {0}")]
    Parse(PathBuf),
    /// The named client has no certificate.
    #[error("no certificate for client {0}; issue one with `partnergate certs issue --client {0}`")]
    NoSuchClient(String),
    /// A client name that cannot be a file name.
    #[error("invalid client name {0:?}: use letters, digits, '.', '-' and '_'")]
    BadName(String),
    /// A serial number that is not 1 to 20 bytes of hexadecimal.
    #[error("invalid serial number: give 1 to 20 bytes in hexadecimal, e.g. 3a:f0:12 or 3af012")]
    BadSerial,
    /// `certs issue` for a client whose current certificate is still valid, without `--rotate`.
    #[error(
        "{client} already has a valid certificate (serial {serial}); run `partnergate certs issue --client {client} --rotate` to issue a new one and revoke that one"
    )]
    StillValid {
        /// The client.
        client: String,
        /// The serial of its current certificate.
        serial: Serial,
    },
    /// The revocation list is not signed by the partnership CA, or has no nextUpdate.
    #[error("{0}: not a revocation list of this CA ({1})")]
    ForeignCrl(PathBuf, &'static str),
    /// A nextUpdate outside the accepted range.
    #[error("the revocation list validity must be 1 to {MAX_CRL_VALIDITY_DAYS} days")]
    BadValidity,
}

/// An exclusive lock on the revocation list for one read-modify-write, so two `certs`
/// commands at once cannot drop each other's entries. Released on drop.
struct CrlLock {
    // Held only for its lock; closing the file releases it.
    _file: fs::File,
}

impl CrlLock {
    fn take(paths: &PkiPaths) -> Result<Self, PkiError> {
        let path = paths.crl().with_extension("crl.lock");
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(io(&path))?;
        f.lock().map_err(io(&path))?;
        Ok(Self { _file: f })
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a file, creating it with `mode` (0600 for private keys) and replacing it atomically.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    partnergate_core::files::write_file(path, contents, mode).map_err(io(path))
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(io(path))
}

/// Paths of the PKI files below one folder.
#[derive(Clone, Debug)]
pub struct PkiPaths {
    dir: PathBuf,
}

impl PkiPaths {
    /// The PKI below `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
    /// The partnership CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    /// The partnership CA key.
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    /// The server certificate.
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    /// The server key.
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
    /// The folder of the client certificates and keys.
    pub fn clients_dir(&self) -> PathBuf {
        self.dir.join("clients")
    }
    /// A client's certificate.
    pub fn client_cert(&self, client: &str) -> PathBuf {
        self.clients_dir().join(format!("{client}.pem"))
    }
    /// A client's key.
    pub fn client_key(&self, client: &str) -> PathBuf {
        self.dir.join("clients").join(format!("{client}.key"))
    }
    /// The certificate revocation list.
    pub fn crl(&self) -> PathBuf {
        self.dir.join("revoked.crl")
    }
    /// The Ed25519 public key DPOs verify audit exports with.
    pub fn audit_public_key(&self) -> PathBuf {
        self.dir.join("audit-signing.pub")
    }
}

/// The partnership CA, loaded to sign certificates and revocation lists.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate (DER), to check revocation lists against.
    cert_der: Vec<u8>,
    paths: PkiPaths,
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "partnergate partnership CA");
    dn.push(DnType::OrganizationName, "partnergate");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.key_identifier_method = KeyIdMethod::Sha256;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(3650);
    params.serial_number = Some(random_serial());
    params
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the OS random generator works");
    bytes[0] &= 0x7f; // keep the serial positive
    SerialNumber::from_slice(&bytes)
}

fn validate_name(client: &str) -> Result<(), PkiError> {
    let ok = !client.is_empty()
        && client.len() <= 64
        && client
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        && !client.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(PkiError::BadName(client.to_string()))
    }
}

impl CertificateAuthority {
    /// Creates a new CA and writes `ca.pem` and `ca.key` (0600).
    pub fn create(paths: PkiPaths) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let params = ca_params();
        let cert = params.self_signed(&key)?;
        write_file(&paths.ca_cert(), cert.pem().as_bytes(), 0o644)?;
        write_file(&paths.ca_key(), key.serialize_pem().as_bytes(), 0o600)?;
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert_der: cert.der().to_vec(),
            paths,
        })
    }

    /// Loads the CA from `ca.pem` and `ca.key`.
    pub fn load(paths: PkiPaths) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(&read(&paths.ca_key())?)?;
        let pem = read(&paths.ca_cert())?;
        let issuer = Issuer::from_ca_cert_pem(&pem, key)?;
        let cert_der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| PkiError::Parse(paths.ca_cert()))?
            .to_vec();
        Ok(Self {
            issuer,
            cert_der,
            paths,
        })
    }

    /// The file layout this CA writes to.
    pub fn paths(&self) -> &PkiPaths {
        &self.paths
    }

    /// Issues the server certificate for `localhost` and `127.0.0.1` (plus `extra_names`).
    pub fn issue_server(&self, extra_names: &[String]) -> Result<(), PkiError> {
        let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        names.extend(extra_names.iter().cloned());
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "partnergate");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(397);
        params.serial_number = Some(random_serial());
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        write_file(&self.paths.server_cert(), cert.pem().as_bytes(), 0o644)?;
        write_file(
            &self.paths.server_key(),
            key.serialize_pem().as_bytes(),
            0o600,
        )
    }

    /// Makes a client certificate with subject CN `client`, valid between the two times,
    /// and returns `(certificate PEM, key PEM)` without writing them.
    pub fn make_client(
        &self,
        client: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<(String, String), PkiError> {
        validate_name(client)?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, client);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "partnergate partnership");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(random_serial());
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Issues `client`'s certificate and writes it under `clients/`, replacing any file there
    /// without revoking it (for `init`, where the old one is gone or from another CA).
    pub fn issue_client(&self, client: &str) -> Result<(), PkiError> {
        let now = OffsetDateTime::now_utc();
        let (cert, key) =
            self.make_client(client, now - Duration::hours(1), now + CLIENT_VALIDITY)?;
        write_file(&self.paths.client_cert(client), cert.as_bytes(), 0o644)?;
        write_file(&self.paths.client_key(client), key.as_bytes(), 0o600)
    }

    /// `certs issue`: issues `client` a new certificate, so that it never holds two valid ones.
    /// If its current certificate is still valid (ours, not expired, not revoked) this is
    /// refused unless `rotate`, which revokes the current one (reason superseded) before the
    /// new files are written. `crl_validity` is the nextUpdate of a re-signed list.
    pub fn issue_or_rotate(
        &self,
        client: &str,
        rotate: bool,
        crl_validity: Duration,
    ) -> Result<Issued, PkiError> {
        validate_name(client)?;
        let now = OffsetDateTime::now_utc();
        let (cert, key) =
            self.make_client(client, now - Duration::hours(1), now + CLIENT_VALIDITY)?;
        let serial = certificate_serial(&cert)
            .map(|s| Serial::from_bytes(&s))
            .ok_or_else(|| PkiError::Parse(self.paths.client_cert(client)))?;
        let _lock = CrlLock::take(&self.paths)?;
        let mut revoked = None;
        if let Some(current) = self.current_valid_serial(client, now)? {
            if !rotate {
                return Err(PkiError::StillValid {
                    client: client.to_string(),
                    serial: current,
                });
            }
            // Revoke first: if writing the new files fails, the client is locked out rather
            // than holding two valid certificates.
            self.add_to_crl(&current, Some(RevocationReason::Superseded), crl_validity)?;
            revoked = Some(current);
        }
        write_file(&self.paths.client_cert(client), cert.as_bytes(), 0o644)?;
        write_file(&self.paths.client_key(client), key.as_bytes(), 0o600)?;
        Ok(Issued { serial, revoked })
    }

    /// The serial of `client`'s current certificate if it is still valid: issued by this CA,
    /// not expired and not on the revocation list.
    fn current_valid_serial(
        &self,
        client: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Serial>, PkiError> {
        let path = self.paths.client_cert(client);
        if !path.exists() {
            return Ok(None);
        }
        let pem = read(&path)?;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| PkiError::Parse(path.clone()))?;
        let (_, cert) =
            x509_parser::parse_x509_certificate(der.as_ref()).map_err(|_| PkiError::Parse(path))?;
        let (_, ca) = x509_parser::parse_x509_certificate(&self.cert_der)
            .map_err(|_| PkiError::Parse(self.paths.ca_cert()))?;
        let ours = cert.verify_signature(Some(ca.public_key())).is_ok();
        let serial = Serial::from_bytes(cert.raw_serial());
        let expired = cert.validity().not_after.to_datetime() <= now;
        let revoked = self.read_crl()?.serials().any(|s| s == serial);
        Ok((ours && !expired && !revoked).then_some(serial))
    }

    /// Adds `client`'s current certificate to the revocation list and re-signs it.
    /// Returns the revoked serial number.
    pub fn revoke_client(&self, client: &str, crl_validity: Duration) -> Result<Serial, PkiError> {
        validate_name(client)?;
        let cert_path = self.paths.client_cert(client);
        if !cert_path.exists() {
            return Err(PkiError::NoSuchClient(client.to_string()));
        }
        let serial = certificate_serial(&read(&cert_path)?)
            .map(|s| Serial::from_bytes(&s))
            .ok_or_else(|| PkiError::Parse(cert_path.clone()))?;
        let _lock = CrlLock::take(&self.paths)?;
        self.add_to_crl(
            &serial,
            Some(RevocationReason::CessationOfOperation),
            crl_validity,
        )?;
        Ok(serial)
    }

    /// Adds a serial number to the revocation list and re-signs it (for a certificate whose
    /// file is gone, or an older one of a client). Returns the client whose current
    /// certificate has that serial, if any.
    pub fn revoke_serial(
        &self,
        serial: &Serial,
        crl_validity: Duration,
    ) -> Result<Option<String>, PkiError> {
        let _lock = CrlLock::take(&self.paths)?;
        self.add_to_crl(serial, None, crl_validity)?;
        Ok(self.client_with_serial(serial))
    }

    /// The client whose certificate file under `clients/` has `serial`.
    fn client_with_serial(&self, serial: &Serial) -> Option<String> {
        fs::read_dir(self.paths.clients_dir())
            .ok()?
            .flatten()
            .find_map(|e| {
                let path = e.path();
                let client = path
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".pem")?
                    .to_string();
                let s = certificate_serial(&fs::read_to_string(&path).ok()?)?;
                (Serial::from_bytes(&s) == *serial).then_some(client)
            })
    }

    /// Re-signs the revocation list with the same entries, a new thisUpdate and nextUpdate and
    /// the next number (`certs crl`). Run it before the nextUpdate passes.
    pub fn resign_crl(&self, crl_validity: Duration) -> Result<Crl, PkiError> {
        let _lock = CrlLock::take(&self.paths)?;
        let crl = self.read_crl()?;
        self.write_crl(crl.revoked, crl.number + 1, crl_validity)?;
        self.read_crl()
    }

    fn add_to_crl(
        &self,
        serial: &Serial,
        reason: Option<RevocationReason>,
        crl_validity: Duration,
    ) -> Result<(), PkiError> {
        let crl = self.read_crl()?;
        let mut revoked = crl.revoked;
        if !revoked
            .iter()
            .any(|r| Serial::from_bytes(r.serial_number.as_ref()) == *serial)
        {
            revoked.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(serial.as_bytes()),
                revocation_time: OffsetDateTime::now_utc(),
                reason_code: reason,
                invalidity_date: None,
            });
        }
        self.write_crl(revoked, crl.number + 1, crl_validity)
    }

    /// Makes sure a fresh revocation list exists (for `init`): writes an empty one if there is
    /// none, and re-signs one past its nextUpdate (same entries) so a re-run `init` never leaves
    /// a stale list behind. Returns whether it wrote one.
    pub fn ensure_fresh_crl(&self) -> Result<bool, PkiError> {
        let _lock = CrlLock::take(&self.paths)?;
        let validity = crl_validity(DEFAULT_CRL_VALIDITY_DAYS)?;
        if !self.paths.crl().exists() {
            self.write_crl(Vec::new(), 1, validity)?;
            return Ok(true);
        }
        let crl = self.read_crl()?;
        if crl.is_stale(OffsetDateTime::now_utc()) {
            self.write_crl(crl.revoked, crl.number + 1, validity)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Reads the revocation list (an empty one numbered 0 if there is none yet), checked
    /// against this CA: a list it did not sign is an error, never silently replaced.
    pub fn read_crl(&self) -> Result<Crl, PkiError> {
        let path = self.paths.crl();
        if !path.exists() {
            let now = OffsetDateTime::now_utc();
            return Ok(Crl {
                revoked: Vec::new(),
                number: 0,
                this_update: now,
                next_update: now,
            });
        }
        let pem = read(&path)?;
        let der = rustls_pki_types::CertificateRevocationListDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| PkiError::Parse(path.clone()))?;
        parse_crl(der.as_ref(), &self.cert_der, &path)
    }

    fn write_crl(
        &self,
        revoked: Vec<RevokedCertParams>,
        number: u64,
        validity: Duration,
    ) -> Result<(), PkiError> {
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            // A little back-dated, for servers whose clock runs slightly behind.
            this_update: now - Duration::minutes(5),
            next_update: now + validity,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer)?;
        write_file(&self.paths.crl(), crl.pem()?.as_bytes(), 0o644)
    }
}

use rustls_pki_types::pem::PemObject;

/// The serial number of a PEM certificate, as big-endian bytes.
pub fn certificate_serial(pem: &str) -> Option<Vec<u8>> {
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(cert.raw_serial().to_vec())
}

/// The end of validity of a PEM certificate.
pub fn certificate_not_after(pem: &str) -> Option<OffsetDateTime> {
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(cert.validity().not_after.to_datetime())
}

/// What `init_pki` did.
#[derive(Debug, Default)]
pub struct PkiReport {
    /// Files newly written.
    pub created: Vec<PathBuf>,
    /// Files that existed and were kept.
    pub kept: Vec<PathBuf>,
}

/// Creates the whole development PKI below `dir`. Existing files are kept unless `force`;
/// clients without a certificate get one even when the CA already existed.
pub fn init_pki(dir: &Path, clients: &[String], force: bool) -> Result<PkiReport, PkiError> {
    let paths = PkiPaths::new(dir);
    let mut report = PkiReport::default();
    let fresh_ca = force || !paths.ca_cert().exists() || !paths.ca_key().exists();
    let ca = if fresh_ca {
        // A new CA invalidates the old revocation list (it could not verify against the new
        // CA) and every certificate it signed.
        let _ = fs::remove_file(paths.crl());
        report.created.push(paths.ca_cert());
        CertificateAuthority::create(paths.clone())?
    } else {
        report.kept.push(paths.ca_cert());
        CertificateAuthority::load(paths.clone())?
    };
    if fresh_ca || !paths.server_cert().exists() {
        ca.issue_server(&[])?;
        report.created.push(paths.server_cert());
    } else {
        report.kept.push(paths.server_cert());
    }
    for client in clients {
        if fresh_ca || !paths.client_cert(client).exists() {
            ca.issue_client(client)?;
            report.created.push(paths.client_cert(client));
        } else {
            report.kept.push(paths.client_cert(client));
        }
    }
    if ca.ensure_fresh_crl()? {
        report.created.push(paths.crl());
    } else {
        report.kept.push(paths.crl());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn week() -> Duration {
        crl_validity(DEFAULT_CRL_VALIDITY_DAYS).unwrap()
    }

    #[test]
    fn revoking_adds_the_serial_to_the_crl_and_bumps_its_number() {
        let dir = tempfile::tempdir().unwrap();
        init_pki(dir.path(), &["crm.a".into(), "crm.b".into()], false).unwrap();
        let ca = CertificateAuthority::load(PkiPaths::new(dir.path())).unwrap();
        let serial = ca.revoke_client("crm.a", week()).unwrap();
        let crl = ca.read_crl().unwrap();
        assert_eq!(crl.serials().collect::<Vec<_>>(), vec![serial]);
        assert_eq!(crl.number, 2);
        ca.revoke_client("crm.a", week()).unwrap();
        assert_eq!(
            ca.read_crl().unwrap().revoked.len(),
            1,
            "revoking twice lists it once"
        );
    }

    #[test]
    fn a_fresh_crl_lasts_its_validity_and_re_signing_keeps_entries_and_reasons() {
        let dir = tempfile::tempdir().unwrap();
        init_pki(dir.path(), &["crm.a".into()], false).unwrap();
        let ca = CertificateAuthority::load(PkiPaths::new(dir.path())).unwrap();
        let now = OffsetDateTime::now_utc();
        let first = ca.read_crl().unwrap();
        let left = first.next_update - now;
        assert!(
            left > Duration::days(6) && left <= Duration::days(7),
            "{left}"
        );
        let serial = ca.revoke_client("crm.a", week()).unwrap();
        let resigned = ca.resign_crl(crl_validity(2).unwrap()).unwrap();
        assert_eq!(resigned.serials().collect::<Vec<_>>(), vec![serial]);
        assert_eq!(
            resigned.revoked[0].reason_code,
            Some(RevocationReason::CessationOfOperation)
        );
        assert_eq!(resigned.number, 3);
        let left = resigned.next_update - now;
        assert!(
            left > Duration::days(1) && left <= Duration::days(2),
            "{left}"
        );
        assert!(crl_validity(0).is_err() && crl_validity(367).is_err());
    }

    #[test]
    fn a_crl_from_another_ca_is_refused_not_replaced() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        init_pki(a.path(), &[], false).unwrap();
        init_pki(b.path(), &[], false).unwrap();
        fs::copy(b.path().join("revoked.crl"), a.path().join("revoked.crl")).unwrap();
        let ca = CertificateAuthority::load(PkiPaths::new(a.path())).unwrap();
        assert!(matches!(ca.read_crl(), Err(PkiError::ForeignCrl(..))));
        assert!(ca.resign_crl(week()).is_err());
    }

    #[test]
    fn issuing_for_a_client_with_a_valid_certificate_needs_rotate_which_revokes_it() {
        let dir = tempfile::tempdir().unwrap();
        init_pki(dir.path(), &["crm.a".into()], false).unwrap();
        let ca = CertificateAuthority::load(PkiPaths::new(dir.path())).unwrap();
        let path = ca.paths().client_cert("crm.a");
        let before = fs::read(&path).unwrap();
        let old =
            Serial::from_bytes(&certificate_serial(&String::from_utf8_lossy(&before)).unwrap());
        match ca.issue_or_rotate("crm.a", false, week()) {
            Err(PkiError::StillValid { serial, .. }) => assert_eq!(serial, old),
            other => panic!("{other:?}"),
        }
        assert_eq!(fs::read(&path).unwrap(), before, "nothing written");
        assert_eq!(ca.read_crl().unwrap().revoked.len(), 0, "nothing revoked");
        let issued = ca.issue_or_rotate("crm.a", true, week()).unwrap();
        assert_eq!(issued.revoked, Some(old.clone()));
        assert_ne!(issued.serial, old);
        assert_eq!(
            ca.read_crl().unwrap().serials().collect::<Vec<_>>(),
            vec![old]
        );
        // Once revoked, a new one needs no --rotate; a client without a file neither.
        ca.revoke_client("crm.a", week()).unwrap();
        assert!(
            ca.issue_or_rotate("crm.a", false, week())
                .unwrap()
                .revoked
                .is_none()
        );
        assert!(ca.issue_or_rotate("crm.new", false, week()).is_ok());
    }

    #[test]
    fn init_re_signs_a_stale_crl_and_keeps_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        init_pki(dir.path(), &["crm.a".into()], false).unwrap();
        let ca = CertificateAuthority::load(PkiPaths::new(dir.path())).unwrap();
        let serial = ca.revoke_client("crm.a", week()).unwrap();
        let crl = ca.read_crl().unwrap();
        ca.write_crl(crl.revoked, 7, Duration::minutes(-1)).unwrap();
        let now = OffsetDateTime::now_utc();
        assert!(ca.read_crl().unwrap().is_stale(now));
        init_pki(dir.path(), &["crm.a".into()], false).unwrap();
        let crl = ca.read_crl().unwrap();
        assert!(!crl.is_stale(now));
        assert_eq!(crl.number, 8);
        assert_eq!(crl.serials().collect::<Vec<_>>(), vec![serial]);
    }

    #[test]
    fn serials_compare_equal_however_they_are_written() {
        let s = Serial::parse_hex("00:3A:f0:12").unwrap();
        assert_eq!(s, Serial::from_bytes(&[0x3a, 0xf0, 0x12]));
        assert_eq!(s, Serial::parse_hex("0x3af012").unwrap());
        assert_eq!(Serial::parse_hex("abc").unwrap().as_bytes(), &[0x0a, 0xbc]);
        assert_eq!(s.to_string(), "3af012");
        for bad in ["", "xyz", "00", &"ab".repeat(21)] {
            assert!(Serial::parse_hex(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_names_that_could_escape_the_folder_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        init_pki(dir.path(), &[], false).unwrap();
        let ca = CertificateAuthority::load(PkiPaths::new(dir.path())).unwrap();
        assert!(matches!(ca.issue_client("../x"), Err(PkiError::BadName(_))));
    }
}
