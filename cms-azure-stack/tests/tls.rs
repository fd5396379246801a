//! HTTPS against a stamp whose certificate an internal CA signed: trusted when the CA is configured as an
//! extra root, refused (and not retried) when it is not.
//!
//! The server is a small rustls server on 127.0.0.1 (`tiny_http`'s TLS needs another rustls); the certificate
//! and CA in `tests/data/` are test-only (see `tests/data/README.md`).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use cms_azure_stack::{RegionConfig, UsageApiClient};
use cms_core::CmsError;
use cms_core::source::UsageSource;
use common::{AUDIENCE, USAGE_PATH, at, config, delays, page, record, recording_sleep};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const ROOT_CA: &str = include_str!("data/test-root-ca.pem");
const SERVER_CERT: &[u8] = include_bytes!("data/test-server-cert.pem");
const SERVER_KEY: &[u8] = include_bytes!("data/test-server-key.pem");

/// An HTTPS stamp answering metadata, tokens and one usage page; it records the paths it served.
struct TlsStamp {
    base: String,
    paths: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TlsStamp {
    fn start() -> Self {
        let certificates: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(SERVER_CERT).collect::<Result<_, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_slice(SERVER_KEY).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certificates, key)
            .unwrap();
        let tls = Arc::new(tls);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let paths = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (paths, stop, base) = (Arc::clone(&paths), Arc::clone(&stop), base.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    // A failed handshake (the client distrusts us) just ends that connection.
                    let _ = serve(&tls, stream, &base, &paths);
                }
            })
        };
        Self { base, paths, stop, thread: Some(thread) }
    }

    fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

impl Drop for TlsStamp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.base.trim_start_matches("https://"));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One request per connection (`Connection: close`).
fn serve(
    tls: &Arc<rustls::ServerConfig>,
    stream: TcpStream,
    base: &str,
    paths: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let connection = rustls::ServerConnection::new(Arc::clone(tls)).map_err(std::io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(connection, stream);
    let mut reader = BufReader::new(&mut stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut content_length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            content_length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body)?;
    let target = request_line.split_whitespace().nth(1).unwrap_or_default().to_owned();
    let path = target.split('?').next().unwrap_or_default().to_owned();
    paths.lock().unwrap().push(path.clone());
    let reply = match path.as_str() {
        "/metadata/endpoints" => serde_json::json!({
            "authentication": {"loginEndpoint": format!("{base}/adfs/"), "audiences": [AUDIENCE]}
        })
        .to_string(),
        "/adfs/oauth2/token" => {
            r#"{"access_token":"tls-token","token_type":"Bearer","expires_in":3600}"#.to_owned()
        }
        USAGE_PATH => page(&[record("sub-a", "2025-03-10T00:00:00Z", "4")], None),
        _ => "{}".to_owned(),
    };
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
    stream.write_all(response.as_bytes())?;
    stream.conn.send_close_notify();
    stream.flush()
}

fn https_config(base: &str) -> RegionConfig {
    let mut settings = config("east", base, &["sub-a"]);
    settings.allow_http = false;
    settings
}

#[test]
fn trusts_an_internal_root_ca() {
    let stamp = TlsStamp::start();
    let mut settings = https_config(&stamp.base);
    settings.extra_root_certificates_pem = Some(ROOT_CA.to_owned());
    let mut client = UsageApiClient::new(settings, at("2025-03-10T01:00:00Z")).unwrap();
    let page = client.next_page().unwrap().unwrap();
    assert_eq!(page.page.records.len(), 1);
    assert!(page.origin.name.starts_with(&stamp.base), "{}", page.origin.name);
    assert_eq!(stamp.paths(), ["/metadata/endpoints", "/adfs/oauth2/token", USAGE_PATH]);
}

#[test]
fn refuses_an_unknown_ca_without_retrying() {
    let stamp = TlsStamp::start();
    let (log, sleep) = recording_sleep();
    let mut client =
        UsageApiClient::new(https_config(&stamp.base), at("2025-03-10T01:00:00Z")).unwrap().with_sleep(sleep);
    match client.next_page().unwrap_err() {
        CmsError::Http { status, url, message, .. } => {
            assert_eq!(status, None);
            assert!(url.contains("/metadata/endpoints"), "{url}");
            assert!(message.to_lowercase().contains("certificate"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(delays(&log).is_empty(), "a certificate problem does not go away by waiting");
    assert!(stamp.paths().is_empty());
}

#[test]
fn plain_http_needs_allow_http() {
    let error =
        UsageApiClient::new(https_config("http://127.0.0.1:1"), at("2025-03-10T01:00:00Z")).unwrap_err();
    assert_eq!(error.code(), "invalid_value");
    assert!(error.to_string().contains("arm_endpoint"), "{error}");
}
