//! Identity at the connection: who gets in, who is refused, and how.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use partnergate::pki::{CertificateAuthority, PkiPaths};
use partnergate_client::Identity;
use time::OffsetDateTime;

use crate::harness::{Gateway, Home, http_get};

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
        assert_eq!(b, a, "{f} changed");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(home.path().join("data/master.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

// ---------------------------------------------------------------------------------------------
// Revocation on open connections, certificate rotation, revocation by serial, stale lists.

/// One TLS connection used for several HTTP/1.1 requests in a row, so a test knows for
/// certain that they share a connection (a pooled client could silently reconnect).
struct OneConnection {
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    buf: Vec<u8>,
}

/// A parsed HTTP/1.1 answer.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl OneConnection {
    async fn open(gw: &Gateway, id: &Identity) -> std::io::Result<Self> {
        let config = id.tls_config().unwrap();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(gw.api).await?;
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let stream = connector.connect(name, tcp).await?;
        Ok(Self {
            stream,
            buf: Vec::new(),
        })
    }

    /// Sends `GET path` and reads the whole answer (bodies carry Content-Length).
    async fn get(&mut self, path: &str) -> std::io::Result<Answer> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nX-Acting-User: tester-1\r\n\r\n");
        self.stream.write_all(req.as_bytes()).await?;
        let eof = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed");
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(eof());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap()[9..12].parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .expect("the gateway sends Content-Length");
        while self.buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(eof());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        let body = self.buf[head_end..head_end + len].to_vec();
        self.buf.drain(..head_end + len);
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Whether the server has closed the connection (end of stream or reset within 2 s).
    async fn closed_by_server(&mut self) -> bool {
        use tokio::io::AsyncReadExt;
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(2), self.stream.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// Requests `path` on `conn` until the answer is not 200, which must come within `limit`
/// of `since`. Every earlier answer must have been a 200 on this same connection.
async fn first_refusal(
    conn: &mut OneConnection,
    path: &str,
    since: Instant,
    limit: Duration,
) -> Answer {
    loop {
        let a = conn
            .get(path)
            .await
            .expect("the connection stays open until the refusal");
        if a.status != 200 {
            eprintln!("refused {:?} after the change", since.elapsed());
            assert!(
                since.elapsed() <= limit,
                "refused only after {:?}",
                since.elapsed()
            );
            return a;
        }
        assert!(
            since.elapsed() <= limit,
            "still served {:?} after the change",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Refused audit records of `client` whose reason starts with `code`.
async fn refusals_in_audit(gw: &Gateway, client: &str, code: &str) -> Vec<serde_json::Value> {
    let dpo = gw.client("dpo.stad-gent").acting("audit", "dpo-1");
    let r = dpo
        .get(&format!(
            "/v1/audit?client={client}&decision=refused&limit=1000"
        ))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.json()["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["reason"].as_str().is_some_and(|r| r.starts_with(code)))
        .cloned()
        .collect()
}

/// The value of a Prometheus series with all the given labels.
fn metric(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    body.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| {
            let rest = &l[name.len()..];
            rest.starts_with('{') || rest.starts_with(' ')
        })
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn vdab(home: &Home) -> Identity {
    Identity::from_certs_dir(&home.certs(), "crm.vdab").unwrap()
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_on_an_already_open_connection_within_two_seconds() {
    let home = Home::new();
    let gw = home.start();
    let id = vdab(&home);
    let mut a = OneConnection::open(&gw, &id).await.unwrap();
    let mut b = OneConnection::open(&gw, &id).await.unwrap();
    let mut other = OneConnection::open(
        &gw,
        &Identity::from_certs_dir(&home.certs(), "crm.ocmw-gent").unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(a.get("/v1/me").await.unwrap().status, 200);
    assert_eq!(b.get("/v1/me").await.unwrap().status, 200);
    assert_eq!(other.get("/v1/me").await.unwrap().status, 200);

    let (ok, out) = home.run(&["certs", "revoke", "--client", "crm.vdab"]);
    assert!(ok, "{out}");
    assert!(out.contains("on open connections too"), "{out}");
    let revoked_at = Instant::now();

    let refused = first_refusal(&mut a, "/v1/me", revoked_at, Duration::from_secs(2)).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["error"], "certificate_revoked");
    assert!(refused.json()["message"].is_string());
    assert_eq!(refused.header("connection"), Some("close"));
    assert!(
        a.closed_by_server().await,
        "the connection stays open after the refusal"
    );

    // A request no route needs identity for (the 404 fallback) is refused too, and closes.
    let fallback = b.get("/no-such-endpoint").await.unwrap();
    assert_eq!(fallback.status, 403);
    assert_eq!(fallback.json()["error"], "certificate_revoked");
    assert!(b.closed_by_server().await);

    // Both refusals are audited; new handshakes are refused; other clients are untouched,
    // on their open connection as well as on new ones.
    let records = refusals_in_audit(&gw, "crm.vdab", "certificate_revoked").await;
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(
        records
            .iter()
            .all(|r| r["action"] == "request" && r["partner"] == "vdab")
    );
    assert!(gw.client_with(&id).get("/v1/me").await.is_err());
    assert_eq!(other.get("/v1/me").await.unwrap().status, 200);
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
async fn certs_issue_for_a_client_with_a_valid_certificate_needs_rotate_which_retires_the_old_one()
{
    let home = Home::new();
    let gw = home.start();
    let old = vdab(&home);
    let mut conn = OneConnection::open(&gw, &old).await.unwrap();
    assert_eq!(conn.get("/v1/me").await.unwrap().status, 200);
    let cert_file = home.certs().join("clients/crm.vdab.pem");

    // Without --rotate: refused, nothing written, the old certificate keeps working.
    let (ok, out) = home.run(&["certs", "issue", "--client", "crm.vdab"]);
    assert!(!ok, "{out}");
    assert!(out.contains("--rotate"), "{out}");
    assert_eq!(std::fs::read_to_string(&cert_file).unwrap(), old.cert_pem);
    assert_eq!(conn.get("/v1/me").await.unwrap().status, 200);

    let (ok, out) = home.run(&["certs", "issue", "--client", "crm.vdab", "--rotate"]);
    assert!(ok, "{out}");
    assert!(out.contains("revoked the previous certificate"), "{out}");
    let rotated_at = Instant::now();
    let refused = first_refusal(&mut conn, "/v1/me", rotated_at, Duration::from_secs(2)).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["error"], "certificate_revoked");
    assert!(conn.closed_by_server().await);

    // The old certificate is refused on new connections; the new one works as the same client.
    assert!(gw.client_with(&old).get("/v1/me").await.is_err());
    let new = vdab(&home);
    assert_ne!(new.cert_pem, old.cert_pem);
    let me = gw.client_with(&new).get("/v1/me").await.unwrap();
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["client"], "crm.vdab");
}

#[tokio::test]
async fn revoking_by_serial_refuses_that_certificate_and_no_other() {
    let home = Home::new();
    let gw = home.start();
    let id = vdab(&home);
    let serial = partnergate::pki::certificate_serial(&id.cert_pem).unwrap();
    // Typed the way openssl prints it: upper case, colon-separated.
    let typed = serial
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let mut conn = OneConnection::open(&gw, &id).await.unwrap();
    let mut other = OneConnection::open(
        &gw,
        &Identity::from_certs_dir(&home.certs(), "crm.ocmw-gent").unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(conn.get("/v1/me").await.unwrap().status, 200);
    assert_eq!(other.get("/v1/me").await.unwrap().status, 200);

    let (ok, out) = home.run(&["certs", "revoke", "--serial", "not-hex"]);
    assert!(!ok, "{out}");
    assert_eq!(
        conn.get("/v1/me").await.unwrap().status,
        200,
        "a bad serial revokes nothing"
    );

    let (ok, out) = home.run(&["certs", "revoke", "--serial", &typed]);
    assert!(ok, "{out}");
    assert!(
        out.contains("crm.vdab"),
        "names the client it belongs to: {out}"
    );
    let refused = first_refusal(&mut conn, "/v1/me", Instant::now(), Duration::from_secs(2)).await;
    assert_eq!(refused.json()["error"], "certificate_revoked");
    assert!(gw.client_with(&id).get("/v1/me").await.is_err());
    assert_eq!(other.get("/v1/me").await.unwrap().status, 200);
    assert_eq!(
        gw.client("crm.ocmw-gent")
            .get("/v1/me")
            .await
            .unwrap()
            .status,
        200
    );
}

/// Replaces the revocation list with one the CA signed but whose nextUpdate has passed.
fn write_stale_crl(home: &Home) {
    let certs = home.certs();
    let key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(certs.join("ca.key")).unwrap()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(
        &std::fs::read_to_string(certs.join("ca.pem")).unwrap(),
        key,
    )
    .unwrap();
    let now = OffsetDateTime::now_utc();
    let crl = rcgen::CertificateRevocationListParams {
        this_update: now - time::Duration::days(8),
        next_update: now - time::Duration::days(1),
        crl_number: rcgen::SerialNumber::from(900u64),
        issuing_distribution_point: None,
        revoked_certs: Vec::new(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)
    .unwrap();
    partnergate::pki::write_file(
        &certs.join("revoked.crl"),
        crl.pem().unwrap().as_bytes(),
        0o644,
    )
    .unwrap();
}

/// New connections of `client` until one is served 200, within `limit`.
async fn served_again_within(gw: &Gateway, client: &str, limit: Duration) {
    let since = Instant::now();
    loop {
        if let Ok(r) = gw.client(client).get("/v1/me").await {
            assert_eq!(r.status, 200);
            return;
        }
        assert!(since.elapsed() <= limit, "still refused after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const STALE_LOG: &str = "revocation list is past its nextUpdate";

#[tokio::test]
async fn a_stale_revocation_list_refuses_every_client_until_certs_crl_re_signs_it() {
    let home = Home::new();
    let gw = home.start();
    let (_, m) = http_get(gw.health, "/metrics");
    let left = metric(&m, "partnergate_crl_next_update_seconds", &[]).expect("gauge published");
    assert!(
        left > 6.0 * 86400.0 && left <= 7.0 * 86400.0,
        "init signs for 7 days: {left}"
    );
    let mut conn = OneConnection::open(
        &gw,
        &Identity::from_certs_dir(&home.certs(), "crm.ocmw-gent").unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(conn.get("/v1/me").await.unwrap().status, 200);

    write_stale_crl(&home);
    let refused = first_refusal(&mut conn, "/v1/me", Instant::now(), Duration::from_secs(2)).await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.json()["error"], "revocation_list_expired");
    assert!(conn.closed_by_server().await);
    // New handshakes are refused too, for every client.
    assert!(gw.client("crm.ocmw-gent").get("/v1/me").await.is_err());
    assert!(gw.client("dpo.stad-gent").get("/v1/me").await.is_err());
    assert!(gw.logs().contains(STALE_LOG), "{}", gw.logs());
    let (_, m) = http_get(gw.health, "/metrics");
    assert!(
        metric(&m, "partnergate_crl_next_update_seconds", &[]).unwrap() < 0.0,
        "{m}"
    );
    let refusals = |stage| {
        metric(
            &m,
            "partnergate_revocation_refusals_total",
            &[("stage", stage), ("reason", "revocation_list_expired")],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(refusals("request"), 1.0, "{m}");
    assert!(refusals("handshake") >= 2.0, "{m}");

    // Re-signing fixes it without a restart, and the refusal was audited.
    let (ok, out) = home.run(&["certs", "crl"]);
    assert!(ok, "{out}");
    served_again_within(&gw, "crm.ocmw-gent", Duration::from_secs(3)).await;
    assert_eq!(
        refusals_in_audit(&gw, "crm.ocmw-gent", "revocation_list_expired")
            .await
            .len(),
        1
    );
    let (_, m) = http_get(gw.health, "/metrics");
    assert!(metric(&m, "partnergate_crl_next_update_seconds", &[]).unwrap() > 0.0);

    // Starting on a stale list: the server comes up, says why, refuses, and recovers live.
    gw.stop();
    write_stale_crl(&home);
    let gw = home.start();
    assert_eq!(http_get(gw.health, "/healthz").0, 200);
    assert!(gw.client("crm.ocmw-gent").get("/v1/me").await.is_err());
    let log = gw.logs();
    assert_eq!(
        log.matches(STALE_LOG).count(),
        2,
        "logged once per stale period: {log}"
    );
    let (ok, out) = home.run(&["certs", "crl", "--crl-valid-days", "2"]);
    assert!(ok, "{out}");
    served_again_within(&gw, "crm.ocmw-gent", Duration::from_secs(3)).await;
    let (_, m) = http_get(gw.health, "/metrics");
    let left = metric(&m, "partnergate_crl_next_update_seconds", &[]).unwrap();
    assert!(left > 86400.0 && left <= 2.0 * 86400.0, "{left}");
}

// ---------------------------------------------------------------------------------------------
// Handshake floods.

/// `n` TCP connections from 127.0.0.2 that never send a byte.
async fn idle_connections_from_127_0_0_2(gw: &Gateway, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut idle = Vec::with_capacity(n);
    for _ in 0..n {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        idle.push(s.connect(gw.api).await.unwrap());
    }
    idle
}

/// An installation whose idle connections keep their handshake slot for 10 s, far longer
/// than a partner may wait: only the per-address cap can keep a partner in.
fn home_with_slow_hello_timeout() -> Home {
    let home = Home::new();
    let config = home.path().join("partnergate.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[tls]\nclient_hello_timeout_secs = 10\nhandshake_timeout_secs = 10\n");
    std::fs::write(&config, text).unwrap();
    home
}

/// Waits until the server has turned away `n` connections over the per-address cap, i.e.
/// has accepted the whole flood.
async fn wait_for_shed(gw: &Gateway, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, m) = http_get(gw.health, "/metrics");
        let shed = metric(
            &m,
            "partnergate_tls_handshakes_shed_total",
            &[("reason", "per_ip_limit")],
        );
        if shed == Some(n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "shed {shed:?}, expected {n}: {m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn three_hundred_idle_connections_from_one_address_do_not_keep_a_partner_out() {
    let home = home_with_slow_hello_timeout();
    let gw = home.start();
    let _idle = idle_connections_from_127_0_0_2(&gw, 300).await;
    // The kernel queues connections in order, so the server takes the partner's connection
    // only after all 300 idle ones: 32 of them hold a handshake slot (for 10 s here), the
    // rest are closed at once.
    let started = Instant::now();
    let me = gw.client("crm.ocmw-gent").get("/v1/me").await.unwrap();
    let took = started.elapsed();
    eprintln!("partner served in {took:?} during the flood");
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["client"], "crm.ocmw-gent");
    assert!(
        took < Duration::from_secs(3),
        "partner served after {took:?}"
    );
    wait_for_shed(&gw, 268.0).await;
}

#[tokio::test]
async fn shutdown_with_idle_connections_and_pending_handshakes_open_finishes_promptly() {
    let home = home_with_slow_hello_timeout();
    let gw = home.start();
    let mut keep_alive = OneConnection::open(
        &gw,
        &Identity::from_certs_dir(&home.certs(), "crm.ocmw-gent").unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(keep_alive.get("/v1/me").await.unwrap().status, 200);
    let flood_started = Instant::now();
    let _idle = idle_connections_from_127_0_0_2(&gw, 300).await;
    wait_for_shed(&gw, 268.0).await;
    // Signal while 32 handshakes still wait for their ClientHello (for 10 s here).
    assert!(flood_started.elapsed() < Duration::from_secs(5));
    let log = gw.log.clone();
    let started = Instant::now();
    gw.stop();
    let took = started.elapsed();
    eprintln!("shutdown took {took:?}");
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    // It was a clean stop (audit drained, database checkpointed), not a kill.
    assert!(std::fs::read_to_string(log).unwrap().contains("stopped"));
    assert!(keep_alive.closed_by_server().await);
}
