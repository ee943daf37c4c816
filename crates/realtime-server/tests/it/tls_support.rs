//! TLS in front of a plain loopback server, as a TLS-terminating proxy or load balancer
//! puts it in production: a private certificate authority made for the test, a
//! certificate for `localhost` signed by it, and a proxy that decrypts and forwards each
//! connection to a plain port. Clients trust the authority through `SSL_CERT_FILE` (the
//! variable every TLS client of the workspace honours, as OpenSSL's do) or not at all.
//!
//! Shared by this crate's tests and the CLI's (`#[path]`), so it uses only tokio,
//! tokio-rustls and rcgen.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate authority of the test's, written to `ca.pem` in its directory.
pub(crate) struct TestAuthority {
    /// The PEM file of the authority's certificate: what `SSL_CERT_FILE` points at.
    pub(crate) ca_file: PathBuf,
    server_config: Arc<ServerConfig>,
}

impl TestAuthority {
    /// A new authority, and a certificate for `localhost` and `127.0.0.1` it signed.
    pub(crate) fn new(dir: &Path) -> TestAuthority {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "realtime test authority");
        let authority = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();

        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let certificate = params.signed_by(&key, &authority).unwrap();

        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, authority.pem()).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let server_config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![certificate.der().clone()], key)
            .unwrap();
        TestAuthority { ca_file, server_config: Arc::new(server_config) }
    }

    /// A port that will speak TLS; [`TlsPort::forward_to`] starts it. Its address is known
    /// before the plain server starts, so that server can be told its public URL.
    pub(crate) async fn port(&self) -> TlsPort {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        TlsPort { listener, acceptor: TlsAcceptor::from(self.server_config.clone()) }
    }
}

/// A bound port that decrypts TLS once it forwards somewhere.
pub(crate) struct TlsPort {
    listener: TcpListener,
    acceptor: TlsAcceptor,
}

impl TlsPort {
    /// `https://localhost:<port>`: the name the certificate is for.
    pub(crate) fn https_url(&self) -> String {
        format!("https://localhost:{}", self.listener.local_addr().unwrap().port())
    }

    /// Decrypts every connection and relays it to `plain` until either side closes. A
    /// handshake that fails (a client that does not trust the authority) ends that
    /// connection only.
    pub(crate) fn forward_to(self, plain: SocketAddr) {
        tokio::spawn(async move {
            while let Ok((client, _)) = self.listener.accept().await {
                let acceptor = self.acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut client) = acceptor.accept(client).await else { return };
                    let Ok(mut server) = TcpStream::connect(plain).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
    }
}
