//! Identity at the connection: who gets in, who is refused, and how.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use partnergate::client::Identity;
use partnergate::pki::{CertificateAuthority, PkiPaths};
use time::OffsetDateTime;

use crate::harness::{Home, http_get};

fn identity_from(
    ca: &CertificateAuthority,
    trust_ca_pem: &str,
    cn: &str,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Identity {
    let (cert_pem, key_pem) = ca.make_client(cn, from, to).unwrap();
    Identity {
        ca_pem: trust_ca_pem.to_string(),
        cert_pem,
        key_pem,
    }
}

#[tokio::test]
async fn a_valid_certificate_gets_its_identity_from_me() {
    let home = Home::new();
    let gw = home.start();
    let res = gw.client("crm.ocmw-gent").get("/v1/me").await.unwrap();
    assert_eq!(res.status, 200, "{:?}", res.body);
    let me = res.json();
    assert_eq!(me["client"], "crm.ocmw-gent");
    assert_eq!(me["partner"], "ocmw-gent");
    assert!(
        me["partner_name"].as_str().unwrap().contains("Gent"),
        "{me}"
    );
    let roles: Vec<&str> = me["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(roles.contains(&"dossierbeheerder"), "{roles:?}");
    assert!(!roles.contains(&"dpo"), "{roles:?}");
    assert!(res.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn a_connection_without_a_client_certificate_is_refused_at_the_handshake() {
    let home = Home::new();
    let gw = home.start();
    let ca = std::fs::read_to_string(home.certs().join("ca.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(partnergate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(gw.api).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    // TLS 1.3 clients learn of the refusal on their first read.
    let outcome = async {
        let mut s = connector.connect(name, tcp).await?;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        s.write_all(b"GET /v1/me HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).await?;
        Ok::<usize, std::io::Error>(n)
    }
    .await;
    match outcome {
        Err(e) => assert!(e.to_string().to_lowercase().contains("certificate"), "{e}"),
        Ok(n) => assert_eq!(n, 0, "the server must not answer without a certificate"),
    }
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let home = Home::new();
    let gw = home.start();
    let other = tempfile::tempdir().unwrap();
    partnergate::pki::init_pki(other.path(), &[], false).unwrap();
    let rogue = CertificateAuthority::load(PkiPaths::new(other.path())).unwrap();
    let ca = std::fs::read_to_string(home.certs().join("ca.pem")).unwrap();
    let now = OffsetDateTime::now_utc();
    let id = identity_from(
        &rogue,
        &ca,
        "crm.ocmw-gent",
        now - time::Duration::hours(1),
        now + time::Duration::days(1),
    );
    assert!(gw.client_with(&id).get("/v1/me").await.is_err());
    // Control: the same request with the real certificate succeeds.
    assert_eq!(
        gw.client("crm.ocmw-gent")
            .get("/v1/me")
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let home = Home::new();
    let gw = home.start();
    let ca = CertificateAuthority::load(PkiPaths::new(home.certs())).unwrap();
    let ca_pem = std::fs::read_to_string(home.certs().join("ca.pem")).unwrap();
    let now = OffsetDateTime::now_utc();
    let expired = identity_from(
        &ca,
        &ca_pem,
        "crm.vdab",
        now - time::Duration::days(30),
        now - time::Duration::days(1),
    );
    assert!(gw.client_with(&expired).get("/v1/me").await.is_err());
    let valid = identity_from(
        &ca,
        &ca_pem,
        "crm.vdab",
        now - time::Duration::days(1),
        now + time::Duration::days(1),
    );
    assert_eq!(
        gw.client_with(&valid).get("/v1/me").await.unwrap().status,
        200
    );
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_without_a_restart() {
    let home = Home::new();
    let gw = home.start();
    assert_eq!(
        gw.client("crm.vdab").get("/v1/me").await.unwrap().status,
        200
    );
    let (ok, out) = home.run(&["certs", "revoke", "--client", "crm.vdab"]);
    assert!(ok, "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A new client each time: a new connection, a new handshake.
        if gw.client("crm.vdab").get("/v1/me").await.is_err() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "revoked certificate still accepted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Other clients are unaffected.
    assert_eq!(
        gw.client("crm.ocmw-gent")
            .get("/v1/me")
            .await
            .unwrap()
            .status,
        200
    );
    // A re-issued certificate for the same client works again.
    let (ok, out) = home.run(&["certs", "issue", "--client", "crm.vdab"]);
    assert!(ok, "{out}");
    assert_eq!(
        gw.client("crm.vdab").get("/v1/me").await.unwrap().status,
        200
    );
}

#[tokio::test]
async fn an_unknown_client_signed_by_the_ca_gets_a_403_json_error() {
    let home = Home::new();
    let gw = home.start();
    let ca = CertificateAuthority::load(PkiPaths::new(home.certs())).unwrap();
    let ca_pem = std::fs::read_to_string(home.certs().join("ca.pem")).unwrap();
    let now = OffsetDateTime::now_utc();
    let id = identity_from(
        &ca,
        &ca_pem,
        "crm.not-a-partner",
        now - time::Duration::hours(1),
        now + time::Duration::days(1),
    );
    let res = gw.client_with(&id).get("/v1/me").await.unwrap();
    assert_eq!(res.status, 403);
    assert_eq!(res.json()["error"], "unknown_client");
    assert!(res.json()["message"].is_string());
}

/// A minimal ClientHello with the given legacy version and no supported_versions extension.
fn client_hello(version: [u8; 2], suites: &[u8], extensions: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&version);
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&(suites.len() as u16).to_be_bytes());
    body.extend_from_slice(suites);
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(extensions);
    let mut hs = vec![1u8];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

fn first_record_type(addr: std::net::SocketAddr, hello: &[u8]) -> u8 {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(hello).unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    b[0]
}

#[test]
fn tls_1_1_is_refused_while_tls_1_2_is_accepted() {
    let home = Home::new();
    let gw = home.start();
    let ecdhe = [
        0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x1d, // supported_groups: x25519
        0x00, 0x0b, 0x00, 0x02, 0x01, 0x00, // ec_point_formats: uncompressed
        0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04,
        0x03, // signature_algorithms: ecdsa_secp256r1_sha256
    ];
    // TLS 1.1 with its CBC suites: the server answers with an alert (content type 21).
    let tls11 = client_hello([3, 2], &[0xc0, 0x0a, 0xc0, 0x09, 0x00, 0x2f], &ecdhe);
    assert_eq!(first_record_type(gw.api, &tls11), 0x15);
    // Control: the same hello as TLS 1.2 with an AEAD suite gets a ServerHello (handshake, 22).
    let tls12 = client_hello([3, 3], &[0xc0, 0x2b], &ecdhe);
    assert_eq!(first_record_type(gw.api, &tls12), 0x16);
}

#[test]
fn the_health_listener_answers_on_loopback_with_prometheus_text() {
    let home = Home::new();
    let gw = home.start();
    assert!(gw.health.ip().is_loopback());
    let (status, body) = http_get(gw.health, "/healthz");
    assert_eq!(status, 200);
    assert_eq!(body.trim(), "ok");
    // Produce some traffic so the exporter has series to show.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async { gw.client("crm.ocmw-gent").get("/v1/me").await.unwrap() });
    let (status, body) = http_get(gw.health, "/metrics");
    assert_eq!(status, 200);
    assert!(
        body.contains("# TYPE partnergate_http_requests_total counter"),
        "{body}"
    );
    assert!(body.contains("route=\"/v1/me\""), "{body}");
}

#[test]
fn init_twice_keeps_every_key() {
    let home = Home::new();
    let files = [
        "data/master.key",
        "data/audit-signing.key",
        "certs/ca.key",
        "certs/server.key",
        "certs/clients/crm.ocmw-gent.key",
        "data/partnergate.db",
    ];
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(home.path().join(f)).unwrap())
        .collect();
    let (ok, out) = home.run(&["init"]);
    assert!(ok, "{out}");
    let after: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(home.path().join(f)).unwrap())
        .collect();
    for ((f, b), a) in files.iter().zip(&before).zip(&after) {
        if *f != "data/partnergate.db" {
            assert_eq!(b, a, "{f} changed");
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(home.path().join("data/master.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
