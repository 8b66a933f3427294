//! A `redis-server` that speaks only TLS, with a certificate authority and a
//! server certificate made here by `rcgen` (no external tool).
//!
//! ## Behavior
//!
//! - [`Pki::new`] makes a throwaway CA and a server certificate it signs
//!   for the given names (IP addresses become IP SANs).
//! - [`TlsRedis::start`] runs `redis-server --port 0 --tls-port <free>` (no
//!   plain TCP port at all) with `--tls-auth-clients no`: clients check the
//!   server, the server asks no client certificate. No persistence, its own
//!   temp dir, its log quoted when it fails to start.
//! - Ready means a TLS client that trusts only this CA, checking the
//!   certificate's first name, gets `+PONG`: a server someone else started
//!   on the port could not pass that handshake.
//! - Returns `None` (the caller skips, saying why) when no `redis-server` is
//!   on `PATH`. A `redis-server` built without TLS is a panic quoting its log.
//! - Dropping it kills and reaps the server.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::support::poll_within;

/// How long a starting server has to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// Fresh ports to try when the chosen one is taken meanwhile.
const PORT_ATTEMPTS: usize = 10;

/// A CA and one server certificate it signed, all PEM.
pub(crate) struct Pki {
    /// The first name of the server certificate, used to check readiness.
    pub(crate) server_name: String,
    pub(crate) ca_pem: String,
    pub(crate) server_cert_pem: String,
    pub(crate) server_key_pem: String,
}

impl Pki {
    /// A fresh CA, and a server certificate for `names` (DNS names or IPs).
    pub(crate) fn new(names: &[&str]) -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "fleet-breaker test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().expect("a CA key");
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("a self-signed CA");

        let server_name = names.first().expect("at least one name").to_string();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("server certificate params");
        params
            .distinguished_name
            .push(DnType::CommonName, "fleet-breaker test redis");
        let key = KeyPair::generate().expect("a server key");
        let cert = params
            .signed_by(&key, &ca)
            .expect("a CA-signed certificate");
        Pki {
            server_name,
            ca_pem: ca.pem(),
            server_cert_pem: cert.pem(),
            server_key_pem: key.serialize_pem(),
        }
    }
}

/// A TLS-only `redis-server` child process.
pub(crate) struct TlsRedis {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    ca_pem: String,
    server_name: String,
}

impl TlsRedis {
    /// A TLS-only server whose certificate, signed by a fresh CA, names
    /// `127.0.0.1` and `localhost`.
    pub(crate) async fn start() -> Option<TlsRedis> {
        Self::start_with(Pki::new(&["127.0.0.1", "localhost"])).await
    }

    /// A TLS-only server presenting `pki`'s server certificate; `None` when
    /// no `redis-server` is on `PATH`.
    ///
    /// # Panics
    ///
    /// When the server does not come up within 5 s (its log is quoted).
    pub(crate) async fn start_with(pki: Pki) -> Option<TlsRedis> {
        let binary = find_binary()?;
        let mut dir = tempfile::Builder::new()
            .prefix("fleet-breaker-tls-redis-")
            .tempdir()
            .expect("a temp dir for redis-server");
        for (name, pem) in [
            ("ca.pem", &pki.ca_pem),
            ("server.pem", &pki.server_cert_pem),
            ("server.key", &pki.server_key_pem),
        ] {
            fs::write(dir.path().join(name), pem).expect("write a PEM file");
        }
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let mut server = TlsRedis {
                child: spawn(&binary, dir.path(), port),
                dir,
                port,
                ca_pem: pki.ca_pem.clone(),
                server_name: pki.server_name.clone(),
            };
            if server.wait_ready().await {
                return Some(server);
            }
            // It exited because the port was taken meanwhile: try another.
            dir = server.into_dir();
        }
        panic!("a TLS redis-server found {PORT_ATTEMPTS} free ports taken by the time it bound");
    }

    /// The temp dir of a server that exited, its log emptied for the next try.
    fn into_dir(mut self) -> tempfile::TempDir {
        let placeholder = tempfile::tempdir().expect("a placeholder temp dir");
        let dir = std::mem::replace(&mut self.dir, placeholder);
        let _ = fs::remove_file(dir.path().join("redis.log"));
        dir
    }

    /// `rediss://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:PORT`: plain TCP to the TLS port.
    pub(crate) fn plain_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The CA that signed the server's certificate, PEM.
    pub(crate) fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA as a file, for `SSL_CERT_FILE`.
    pub(crate) fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn log(&self) -> String {
        let path = self.dir.path().join("redis.log");
        fs::read_to_string(&path).unwrap_or_else(|e| format!("(no log at {}: {e})", path.display()))
    }

    /// Waits until the server answers `PING` over TLS: `true`; `false`
    /// when it exited because its port was taken.
    async fn wait_ready(&mut self) -> bool {
        let ready = poll_within(READY_TIMEOUT, Duration::from_millis(20), || {
            let exited = self.child.try_wait().expect("poll redis-server");
            let exited = exited.map(|status| (status, self.log()));
            let (port, ca, name) = (self.port, self.ca_pem.clone(), self.server_name.clone());
            async move {
                if let Some((status, log)) = exited {
                    if log.contains("Address already in use") {
                        return Some(false);
                    }
                    panic!(
                        "the TLS redis-server on port {port} exited ({status}) before answering; \
                         was it built with TLS (BUILD_TLS=yes)? Its log:\n{log}"
                    );
                }
                tokio::task::spawn_blocking(move || ping_over_tls(port, &ca, &name))
                    .await
                    .expect("the readiness check ran")
                    .then_some(true)
            }
        })
        .await;
        ready.unwrap_or_else(|| {
            panic!(
                "the TLS redis-server on port {} did not answer within {READY_TIMEOUT:?}; \
                 its log:\n{}",
                self.port,
                self.log()
            )
        })
    }
}

/// Whether `127.0.0.1:port` completes a TLS handshake as `server_name`,
/// trusting only `ca_pem`, and answers `PING` with `+PONG`. Plain rustls,
/// so that a certificate for another host can be checked for readiness too.
fn ping_over_tls(port: u16, ca_pem: &str, server_name: &str) -> bool {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("the CA PEM")).expect("a CA root");
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_owned()).expect("a server name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("a TLS client");
    let Ok(tcp) = TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_millis(250),
    ) else {
        return false;
    };
    if tcp
        .set_read_timeout(Some(Duration::from_millis(500)))
        .is_err()
    {
        return false;
    }
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut reply = [0u8; 7];
    tls.write_all(b"PING\r\n").is_ok()
        && tls.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        // Fails only if it already exited; `wait` reaps either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(binary: &Path, dir: &Path, port: u16) -> Child {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("redis.log"))
        .expect("open the redis-server log");
    let log_err = log.try_clone().expect("clone the log handle");
    Command::new(binary)
        .args(["--port", "0"])
        .arg("--tls-port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1"])
        .arg("--tls-cert-file")
        .arg(dir.join("server.pem"))
        .arg("--tls-key-file")
        .arg(dir.join("server.key"))
        .arg("--tls-ca-cert-file")
        .arg(dir.join("ca.pem"))
        .args(["--tls-auth-clients", "no"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .args(["--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()))
}

/// The first executable `redis-server` on `PATH`.
fn find_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
}

/// A loopback port that was free a moment ago, never 6379 (the machine's
/// shared Redis).
fn free_port() -> u16 {
    loop {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0 for a free port");
        let port = listener.local_addr().expect("the bound address").port();
        if port != 6379 {
            return port;
        }
    }
}
