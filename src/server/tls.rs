//! TLS for `wss://`: the certificate and key from the config, shared by every shard, and
//! reloaded on SIGHUP without touching established sessions.
//!
//! Shards read the current [`rustls::ServerConfig`] when a connection starts its handshake:
//! one atomic load compares generations, and only after a reload does a shard take the lock
//! to fetch the new `Arc` (a control-path event, never per message).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The current TLS settings and their generation.
#[derive(Debug)]
pub struct TlsState {
    generation: AtomicU64,
    current: Mutex<Arc<ServerConfig>>,
    cert_path: String,
    key_path: String,
}

/// Loads a certificate chain and private key (PEM) into a server config.
///
/// # Errors
/// A sentence naming the file and what was wrong with it.
pub fn load_config(cert_path: &str, key_path: &str) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(Path::new(cert_path))
        .map_err(|e| format!("{cert_path}: cannot read certificates: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{cert_path}: bad PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{cert_path}: no certificate found"));
    }
    let key = PrivateKeyDer::from_pem_file(Path::new(key_path))
        .map_err(|e| format!("{key_path}: cannot read a private key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{cert_path} / {key_path}: certificate and key do not fit: {e}"))?;
    // WebSocket is HTTP/1.1 only.
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

impl TlsState {
    /// Loads the files once.
    ///
    /// # Errors
    /// As [`load_config`].
    pub fn new(cert_path: &str, key_path: &str) -> Result<TlsState, String> {
        let cfg = load_config(cert_path, key_path)?;
        Ok(TlsState {
            generation: AtomicU64::new(1),
            current: Mutex::new(cfg),
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
        })
    }

    /// Reads the files again; on success new handshakes use them, on failure the old ones
    /// stay in force.
    ///
    /// # Errors
    /// As [`load_config`].
    pub fn reload(&self) -> Result<(), String> {
        let cfg = load_config(&self.cert_path, &self.key_path)?;
        *self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = cfg;
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// The config for a new handshake, refreshing `cache` only after a reload.
    pub fn config(&self, cache: &mut Option<(u64, Arc<ServerConfig>)>) -> Arc<ServerConfig> {
        let g = self.generation.load(Ordering::Acquire);
        match cache {
            Some((cached, cfg)) if *cached == g => cfg.clone(),
            _ => {
                let cfg = self
                    .current
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                *cache = Some((g, cfg.clone()));
                cfg
            }
        }
    }
}
