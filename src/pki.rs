//! The partnership's development PKI: a CA, the server certificate, one client certificate per
//! agreement client, and the revocation list, all made with rcgen.
//!
//! File names follow DESIGN.md section 3: `ca.pem`/`ca.key`, `server.pem`/`server.key`,
//! `clients/<client>.pem`/`.key`, `revoked.crl`.

use std::fs;
use std::io::Write;
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
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a file, creating it with `mode` (0600 for private keys) and replacing it atomically.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(contents).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
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
    /// A client's certificate.
    pub fn client_cert(&self, client: &str) -> PathBuf {
        self.dir.join("clients").join(format!("{client}.pem"))
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
            paths,
        })
    }

    /// Loads the CA from `ca.pem` and `ca.key`.
    pub fn load(paths: PkiPaths) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(&read(&paths.ca_key())?)?;
        let issuer = Issuer::from_ca_cert_pem(&read(&paths.ca_cert())?, key)?;
        Ok(Self { issuer, paths })
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

    /// Issues (or re-issues) `client`'s certificate and writes it under `clients/`.
    pub fn issue_client(&self, client: &str) -> Result<(), PkiError> {
        let now = OffsetDateTime::now_utc();
        let (cert, key) =
            self.make_client(client, now - Duration::hours(1), now + CLIENT_VALIDITY)?;
        write_file(&self.paths.client_cert(client), cert.as_bytes(), 0o644)?;
        write_file(&self.paths.client_key(client), key.as_bytes(), 0o600)
    }

    /// Adds `client`'s current certificate to the revocation list and re-signs it.
    /// Returns the revoked serial number as hex.
    pub fn revoke_client(&self, client: &str) -> Result<String, PkiError> {
        validate_name(client)?;
        let cert_path = self.paths.client_cert(client);
        if !cert_path.exists() {
            return Err(PkiError::NoSuchClient(client.to_string()));
        }
        let serial = certificate_serial(&read(&cert_path)?)
            .ok_or_else(|| PkiError::Parse(cert_path.clone()))?;
        let (mut revoked, number) = self.read_crl()?;
        if !revoked
            .iter()
            .any(|r| r.serial_number.as_ref() == serial.as_slice())
        {
            revoked.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                revocation_time: OffsetDateTime::now_utc(),
                reason_code: Some(RevocationReason::CessationOfOperation),
                invalidity_date: None,
            });
        }
        self.write_crl(revoked, number + 1)?;
        Ok(hex::encode(serial))
    }

    /// Writes an empty revocation list if none exists yet.
    pub fn ensure_crl(&self) -> Result<(), PkiError> {
        if self.paths.crl().exists() {
            return Ok(());
        }
        self.write_crl(Vec::new(), 1)
    }

    fn read_crl(&self) -> Result<(Vec<RevokedCertParams>, u64), PkiError> {
        let path = self.paths.crl();
        if !path.exists() {
            return Ok((Vec::new(), 0));
        }
        let pem = read(&path)?;
        let der = rustls_pki_types::CertificateRevocationListDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| PkiError::Parse(path.clone()))?;
        let (_, crl) =
            x509_parser::parse_x509_crl(der.as_ref()).map_err(|_| PkiError::Parse(path.clone()))?;
        let number = crl
            .crl_number()
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0);
        let revoked = crl
            .iter_revoked_certificates()
            .map(|r| RevokedCertParams {
                serial_number: SerialNumber::from_slice(r.raw_serial()),
                revocation_time: r.revocation_date.to_datetime(),
                reason_code: Some(RevocationReason::CessationOfOperation),
                invalidity_date: None,
            })
            .collect();
        Ok((revoked, number))
    }

    fn write_crl(&self, revoked: Vec<RevokedCertParams>, number: u64) -> Result<(), PkiError> {
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - Duration::minutes(5),
            next_update: now + Duration::days(3650),
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
        if force {
            // A new CA invalidates the old revocation list and certificates.
            let _ = fs::remove_file(paths.crl());
        }
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
    if !paths.crl().exists() {
        report.created.push(paths.crl());
    }
    ca.ensure_crl()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoking_adds_the_serial_to_the_crl_and_bumps_its_number() {
        let dir = tempfile::tempdir().unwrap();
        init_pki(dir.path(), &["crm.a".into(), "crm.b".into()], false).unwrap();
        let ca = CertificateAuthority::load(PkiPaths::new(dir.path())).unwrap();
        let serial = ca.revoke_client("crm.a").unwrap();
        let (revoked, number) = ca.read_crl().unwrap();
        assert_eq!(revoked.len(), 1);
        assert_eq!(hex::encode(revoked[0].serial_number.as_ref()), serial);
        assert_eq!(number, 2);
        ca.revoke_client("crm.a").unwrap();
        assert_eq!(
            ca.read_crl().unwrap().0.len(),
            1,
            "revoking twice lists it once"
        );
    }

    #[test]
    fn client_names_that_could_escape_the_folder_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        init_pki(dir.path(), &[], false).unwrap();
        let ca = CertificateAuthority::load(PkiPaths::new(dir.path())).unwrap();
        assert!(matches!(ca.issue_client("../x"), Err(PkiError::BadName(_))));
    }
}
