//! A small mutual-TLS client for the gateway (hyper + rustls, keep-alive pool). The reference
//! CRM client, the CSV import, the load generator and the integration tests all speak through it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a client call failed (transport, not HTTP status).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A PEM file is missing or invalid.
    #[error("{0}")]
    Pem(String),
    /// rustls refused the configuration.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The request could not be built.
    #[error("request: {0}")]
    Http(#[from] hyper::http::Error),
    /// The connection or request failed.
    #[error("transport: {0}")]
    Transport(String),
}

/// One answer: status, headers and body.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Response {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A client certificate identity and the CA to trust, as PEM text.
#[derive(Clone)]
pub struct Identity {
    /// The partnership CA certificate.
    pub ca_pem: String,
    /// The client certificate.
    pub cert_pem: String,
    /// The client key.
    pub key_pem: String,
}

impl Identity {
    /// Reads the three PEM files.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<Self, ClientError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .map_err(|e| ClientError::Pem(format!("{}: {e}", p.display())))
        };
        Ok(Self {
            ca_pem: read(ca)?,
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        })
    }

    /// The files of `client` in a partnergate certs folder.
    pub fn from_certs_dir(certs: &Path, client: &str) -> Result<Self, ClientError> {
        Self::from_files(
            &certs.join("ca.pem"),
            &certs.join("clients").join(format!("{client}.pem")),
            &certs.join("clients").join(format!("{client}.key")),
        )
    }

    /// A rustls client configuration presenting this identity and trusting only the CA.
    pub fn tls_config(&self) -> Result<rustls::ClientConfig, ClientError> {
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(ca.map_err(|e| ClientError::Pem(format!("CA: {e}")))?)?;
        }
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClientError::Pem(format!("certificate: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| ClientError::Pem(format!("key: {e}")))?;
        Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(VERSIONS)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?)
    }
}

/// The protocol versions the client offers: TLS 1.3, then 1.2, as the gateway speaks them.
static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A keep-alive mTLS client bound to one gateway and one identity.
#[derive(Clone)]
pub struct GatewayClient {
    base: Arc<str>,
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    defaults: Arc<Vec<(String, String)>>,
}

impl GatewayClient {
    /// A client for `base` (e.g. `https://localhost:8443`), with `pool_size` idle connections.
    pub fn new(base: &str, identity: &Identity, pool_size: usize) -> Result<Self, ClientError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(identity.tls_config()?)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(pool_size)
            .pool_idle_timeout(Duration::from_secs(60))
            .build(https);
        Ok(Self {
            base: base.trim_end_matches('/').into(),
            http,
            defaults: Arc::new(Vec::new()),
        })
    }

    /// The same client, sending `X-Purpose` and `X-Acting-User` on every request.
    pub fn acting(&self, purpose: &str, acting_user: &str) -> Self {
        let mut c = self.clone();
        c.defaults = Arc::new(vec![
            ("x-purpose".into(), purpose.into()),
            ("x-acting-user".into(), acting_user.into()),
        ]);
        c
    }

    /// Sends one request; `body`, when given, is sent as JSON.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<Response, ClientError> {
        match body {
            Some(b) => {
                let mut with_type = headers.to_vec();
                with_type.push(("content-type", "application/json"));
                let bytes = serde_json::to_vec(b).expect("json");
                self.send_raw(method, path, &with_type, bytes).await
            }
            None => self.send_raw(method, path, headers, Vec::new()).await,
        }
    }

    /// Sends raw body bytes with exactly the given headers (plus the defaults).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Response, ClientError> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        for (k, v) in self.defaults.iter() {
            req = req.header(k.as_str(), v.as_str());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.execute(req.body(Full::new(Bytes::from(body)))?).await
    }

    async fn execute(&self, req: Request<Full<Bytes>>) -> Result<Response, ClientError> {
        let res = self
            .http
            .request(req)
            .await
            .map_err(|e| ClientError::Transport(format!("{e:?}")))?;
        let (parts, body) = res.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?
            .to_bytes();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Result<Response, ClientError> {
        self.send(Method::GET, path, &[], None).await
    }

    /// POST with a JSON body.
    pub async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Response, ClientError> {
        self.send(Method::POST, path, &[], Some(body)).await
    }
}
