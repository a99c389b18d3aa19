//! Certificate chain validation at capture time: does the chain a peer sent lead
//! to a trust anchor, at the flow's first packet, for the use it was sent for?
//!
//! The path building, signature, basicConstraints, name-constraint and extended
//! key usage checks are rustls-webpki's; the anchors are Mozilla's (webpki-roots)
//! and/or the certificates of `--ca-file` / `--ca-path`. The answer is one
//! [`Validation`]: the first problem in the order OpenSSL reports them — the path
//! to an anchor, then the extensions, then the dates.
//!
//! A chain's structure does not depend on the time inside the window where all its
//! certificates are valid, so the structural verdict is computed once per distinct
//! chain (per worker thread, in a bounded cache) and the dates are checked per flow
//! against the validity of the certificates on the path it found.

use crate::record::{Certificate, Validation};
use rustc_hash::FxHashMap;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use webpki::{EndEntityCert, KeyPurposeIdIter, KeyUsage};

/// Distinct chains whose verdict is kept (per thread).
pub const MAX_CACHED_CHAINS: usize = 4096;
/// Certificates of one chain considered; a longer chain is judged on its first ones.
pub const MAX_CHAIN: usize = 16;
/// Files read from one `--ca-path` directory.
pub const MAX_CA_PATH_FILES: usize = 10_000;

/// What a chain was sent for: the extended key usage it must allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Usage {
    Server,
    Client,
}

/// The trust anchors of a run.
pub struct TrustStore {
    /// Tells stores apart in the per-thread cache.
    id: u64,
    anchors: Vec<TrustAnchor<'static>>,
    /// The subject key identifier of each anchor read from a file (`None` for the
    /// built-in ones, which carry no extensions): an issuer whose name matches but
    /// whose key identifier differs is not the anchor (as OpenSSL matches them).
    skis: Vec<Option<Vec<u8>>>,
    /// Where the anchors came from, for messages.
    origin: String,
}

impl fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustStore")
            .field("anchors", &self.anchors.len())
            .field("origin", &self.origin)
            .finish()
    }
}

static NEXT_STORE: AtomicU64 = AtomicU64::new(1);

impl Default for TrustStore {
    /// Mozilla's roots, as webpki-roots ships them.
    fn default() -> Self {
        let anchors = webpki_roots::TLS_SERVER_ROOTS.to_vec();
        let skis = vec![None; anchors.len()];
        TrustStore::new(anchors, skis, "Mozilla roots")
    }
}

impl TrustStore {
    fn new(anchors: Vec<TrustAnchor<'static>>, skis: Vec<Option<Vec<u8>>>, origin: &str) -> Self {
        TrustStore {
            id: NEXT_STORE.fetch_add(1, Ordering::Relaxed),
            anchors,
            skis,
            origin: origin.to_string(),
        }
    }

    /// Mozilla's roots unless `no_default_roots`, plus every certificate of the
    /// PEM files `files` and of the files in the directories `dirs`. A file given
    /// by name must hold at least one certificate; files in a directory that hold
    /// none are skipped.
    pub fn load(files: &[String], dirs: &[String], no_default_roots: bool) -> Result<Self, String> {
        let mut ders: Vec<CertificateDer<'static>> = Vec::new();
        for f in files {
            let got = read_pem(Path::new(f)).map_err(|e| format!("--ca-file {f}: {e}"))?;
            if got.is_empty() {
                return Err(format!("--ca-file {f}: no PEM certificate in it"));
            }
            ders.extend(got);
        }
        for d in dirs {
            ders.extend(read_dir(Path::new(d)).map_err(|e| format!("--ca-path {d}: {e}"))?);
        }
        ders.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
        ders.dedup();
        let mut anchors: Vec<TrustAnchor<'static>> = if no_default_roots {
            Vec::new()
        } else {
            webpki_roots::TLS_SERVER_ROOTS.to_vec()
        };
        let mut skis = vec![None; anchors.len()];
        for der in &ders {
            // A certificate webpki cannot read as an anchor is left out, as a
            // system store's odd entry should not stop the run.
            if let Ok(a) = webpki::anchor_from_trusted_cert(der) {
                anchors.push(a.to_owned());
                skis.push(key_ids(der).0);
            }
        }
        if anchors.is_empty() {
            return Err("--no-default-roots without any --ca-file or --ca-path certificate: nothing would be trusted".into());
        }
        let mut origin = Vec::new();
        if !no_default_roots {
            origin.push("Mozilla roots".to_string());
        }
        if !ders.is_empty() {
            origin.push(format!(
                "{} certificates from --ca-file/--ca-path",
                ders.len()
            ));
        }
        Ok(TrustStore::new(anchors, skis, &origin.join(" and ")))
    }

    /// Number of trust anchors.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// Where the anchors came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Is this certificate (its subject and key) itself a trust anchor?
    fn trusts_directly(&self, der: &[u8]) -> bool {
        let der = CertificateDer::from(der);
        let Ok(ta) = webpki::anchor_from_trusted_cert(&der) else {
            return false;
        };
        self.anchors.iter().any(|a| {
            a.subject.as_ref() == ta.subject.as_ref()
                && a.subject_public_key_info.as_ref() == ta.subject_public_key_info.as_ref()
        })
    }
}

fn read_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM: {e}"))
}

/// The certificates of the regular files in `dir` (not recursive), in name order.
fn read_dir(dir: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut names: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .take(MAX_CA_PATH_FILES)
        .collect();
    names.sort();
    Ok(names
        .iter()
        .filter_map(|p| read_pem(p).ok())
        .flatten()
        .collect())
}

/// The structural verdict on one chain: the validity windows of the certificates
/// on the path found, leaf last, or the reason there is none.
type Verdict = Result<Arc<[(i64, i64)]>, Validation>;

/// The cache key of a chain judged at a time: the store, the usage, where the
/// time falls, and the chain's certificate hashes.
type Key = Box<str>;

#[derive(Default)]
struct Cache {
    map: FxHashMap<Key, Verdict>,
    order: VecDeque<Key>,
}

impl Cache {
    fn insert(&mut self, key: Key, v: Verdict) {
        while self.map.len() >= MAX_CACHED_CHAINS {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        self.order.push_back(key.clone());
        self.map.insert(key, v);
    }
}

thread_local! {
    // One cache per analysis thread: no locking on the flow path.
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// Judges `chain` (as sent, leaf first) at `time` (Unix seconds) for `usage`.
pub fn validate(
    chain: &[Arc<Certificate>],
    time: i64,
    usage: Usage,
    store: &TrustStore,
) -> Option<Validation> {
    let chain = chain.get(..chain.len().min(MAX_CHAIN))?;
    chain.first()?;
    let (when, key) = structural_time(chain, time, usage, store);
    let cached = CACHE.with(|c| c.borrow().map.get(&*key).cloned());
    let verdict = match cached {
        Some(v) => v,
        None => {
            let v = structure(chain, when, usage, store);
            CACHE.with(|c| c.borrow_mut().insert(key, v.clone()));
            v
        }
    };
    Some(match verdict {
        Ok(path) => dates(&path, time),
        Err(reason) => reason,
    })
}

/// The time to judge the structure at, and the cache key. Inside the window where
/// every certificate of the chain is valid the structural verdict is the same at
/// any time, so the flow's time is moved into it and the key is the chain alone;
/// without such a window the key also holds where the flow's time falls in each
/// certificate's validity.
fn structural_time(
    chain: &[Arc<Certificate>],
    time: i64,
    usage: Usage,
    store: &TrustStore,
) -> (i64, Key) {
    let mut key = String::with_capacity(24 + chain.len() * 65);
    let _ = write!(key, "{}/{}/", store.id, u8::from(usage == Usage::Server));
    let windows = chain.iter().filter_map(|c| c.validity);
    let from = windows.clone().map(|w| w.0).max().unwrap_or(time);
    let to = windows.map(|w| w.1).min().unwrap_or(time);
    let when = if from <= to {
        key.push('w');
        time.clamp(from, to)
    } else {
        for c in chain {
            key.push(match c.validity {
                Some((nb, _)) if time < nb => '<',
                Some((_, na)) if time > na => '>',
                _ => '=',
            });
        }
        time
    };
    for c in chain {
        key.push('/');
        key.push_str(&c.sha256);
    }
    (when, key.into_boxed_str())
}

/// The first date problem on the path, from the top down (OpenSSL's order).
fn dates(path: &[(i64, i64)], time: i64) -> Validation {
    for &(nb, na) in path {
        if time < nb {
            return Validation::NotYetValid;
        }
        if time > na {
            return Validation::Expired;
        }
    }
    Validation::Ok
}

/// Accepts any extended key usage, noting whether the one required was missing:
/// the trust path is judged before the purpose, and a second pass is needed
/// only when a purpose failed somewhere.
struct NoteUsage {
    required: KeyUsage,
    failed: std::cell::Cell<bool>,
}

impl webpki::ExtendedKeyUsageValidator for NoteUsage {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        if self.required.validate(iter).is_err() {
            self.failed.set(true);
        }
        Ok(())
    }
}

/// The structural verdict at `when`: a path to an anchor (trust first, then the
/// purpose), or the reason.
fn structure(chain: &[Arc<Certificate>], when: i64, usage: Usage, store: &TrustStore) -> Verdict {
    let leaf = chain.first().ok_or(Validation::Other)?;
    if store.trusts_directly(&leaf.der) {
        return match leaf_allows(&leaf.der, usage) {
            true => Ok(Arc::from([leaf.validity.unwrap_or((i64::MIN, i64::MAX))])),
            false => Err(purpose_reason(usage)),
        };
    }
    if leaf.self_signed {
        return Err(Validation::SelfSigned);
    }
    reaches_an_anchor(chain, store)?;
    let ee_der = CertificateDer::from(&leaf.der[..]);
    let ee = EndEntityCert::try_from(&ee_der).map_err(|_| Validation::Malformed)?;
    let rest: Vec<CertificateDer<'_>> = chain
        .iter()
        .skip(1)
        .map(|c| CertificateDer::from(&c.der[..]))
        .collect();
    let at = UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(when).unwrap_or(0)));
    let algs = webpki::ALL_VERIFICATION_ALGS;
    let eku = || match usage {
        Usage::Server => KeyUsage::server_auth(),
        Usage::Client => KeyUsage::client_auth(),
    };
    let noted = NoteUsage {
        required: eku(),
        failed: std::cell::Cell::new(false),
    };
    let path = ee
        .verify_for_usage(algs, &store.anchors, &rest, at, &noted, None, None)
        .map_err(|e| reason(&e, chain, usage))?;
    let mut windows: Vec<(i64, i64)> = path
        .intermediate_certificates()
        .filter_map(|c| {
            let der = c.der();
            chain
                .iter()
                .find(|x| x.der.as_ref() == der.as_ref())
                .and_then(|x| x.validity)
        })
        .collect();
    windows.reverse();
    windows.extend(leaf.validity);
    if noted.failed.get() {
        ee.verify_for_usage(algs, &store.anchors, &rest, at, eku(), None, None)
            .map_err(|e| reason(&e, chain, usage))?;
    }
    Ok(Arc::from(windows))
}

fn purpose_reason(usage: Usage) -> Validation {
    match usage {
        Usage::Server => Validation::InvalidForServerAuth,
        Usage::Client => Validation::InvalidForClientAuth,
    }
}

/// Does a certificate's extended key usage (if any) allow `usage`?
fn leaf_allows(der: &[u8], usage: Usage) -> bool {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return false;
    };
    match cert.extended_key_usage() {
        Ok(Some(eku)) => {
            let e = eku.value;
            e.any
                || match usage {
                    Usage::Server => e.server_auth,
                    Usage::Client => e.client_auth,
                }
        }
        Ok(None) => true,
        Err(_) => false,
    }
}

/// Our reason for a webpki error.
fn reason(e: &webpki::Error, chain: &[Arc<Certificate>], usage: Usage) -> Validation {
    use webpki::Error as E;
    #[allow(deprecated)]
    match e {
        E::UnknownIssuer => chain_top(chain),
        E::CertExpired { .. } => Validation::Expired,
        E::CertNotValidYet { .. } => Validation::NotYetValid,
        E::InvalidSignatureForPublicKey | E::SignatureAlgorithmMismatch => Validation::BadSignature,
        E::UnsupportedSignatureAlgorithm
        | E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKey
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            Validation::UnsupportedSignature
        }
        E::EndEntityUsedAsCa => Validation::NotACa,
        E::CaUsedAsEndEntity => Validation::CaUsedAsLeaf,
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => {
            purpose_reason(usage)
        }
        E::PathLenConstraintViolated => Validation::PathLenExceeded,
        E::NameConstraintViolation
        | E::MalformedNameConstraint
        | E::MaximumNameConstraintComparisonsExceeded
        | E::InvalidNetworkMaskConstraint => Validation::NameConstraints,
        E::UnsupportedCriticalExtension => Validation::UnsupportedCriticalExtension,
        E::CertDistrusted => Validation::Distrusted,
        E::MaximumPathBuildCallsExceeded
        | E::MaximumSignatureChecksExceeded
        | E::MaximumPathDepthExceeded => Validation::TooComplex,
        E::BadDer
        | E::BadDerTime
        | E::TrailingData(_)
        | E::MalformedExtensions
        | E::ExtensionValueInvalid
        | E::InvalidCertValidity
        | E::InvalidSerialNumber
        | E::UnsupportedCertVersion
        | E::MalformedDnsIdentifier => Validation::Malformed,
        _ => Validation::Other,
    }
}

/// A certificate's subject and issuer (raw DER contents, as webpki compares
/// them) and its authority key identifier.
struct Names {
    subject: Vec<u8>,
    issuer: Vec<u8>,
    aki: Option<Vec<u8>>,
}

/// The [`Names`] of each certificate (X.509 v1 included); `None` for one that
/// does not parse.
fn names(chain: &[Arc<Certificate>]) -> Vec<Option<Names>> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    chain
        .iter()
        .map(|c| {
            let (_, cert) = X509Certificate::from_der(&c.der).ok()?;
            Some(Names {
                subject: der_contents(cert.subject().as_raw())?.to_vec(),
                issuer: der_contents(cert.issuer().as_raw())?.to_vec(),
                aki: key_ids(&c.der).1,
            })
        })
        .collect()
}

/// The contents of one DER element (its tag and length left out).
fn der_contents(tlv: &[u8]) -> Option<&[u8]> {
    let (&len0, rest) = tlv.get(1..)?.split_first()?;
    if len0 < 0x80 {
        return rest.get(..usize::from(len0));
    }
    let n = usize::from(len0 & 0x7f);
    let len = rest.get(..n)?.iter().fold(0usize, |a, &b| {
        a.saturating_mul(256).saturating_add(usize::from(b))
    });
    rest.get(n..)?.get(..len)
}

/// The subject and authority key identifiers of a certificate, when present.
fn key_ids(der: &[u8]) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    use x509_parser::extensions::ParsedExtension;
    use x509_parser::prelude::{FromDer, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return (None, None);
    };
    let (mut ski, mut aki) = (None, None);
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                aki = a.key_identifier.as_ref().map(|k| k.0.to_vec());
            }
            _ => {}
        }
    }
    (ski, aki)
}

/// Is `n`'s issuer this anchor: the same name and, when both are known, the
/// same key identifier?
fn issued_by_anchor(n: &Names, store: &TrustStore) -> bool {
    store.anchors.iter().zip(&store.skis).any(|(a, ski)| {
        a.subject.as_ref() == &n.issuer[..]
            && match (&n.aki, ski) {
                (Some(aki), Some(ski)) => aki == ski,
                _ => true,
            }
    })
}

/// The trust question first, by names alone, as OpenSSL builds its chain before
/// it checks anything else: is a certificate reachable from the leaf through
/// the issuer names of the certificates sent either a trust anchor or issued by
/// one? If not, the reason is where the chain stops ([`chain_top`]).
fn reaches_an_anchor(chain: &[Arc<Certificate>], store: &TrustStore) -> Result<(), Validation> {
    let names = names(chain);
    let mut reached = vec![false; names.len()];
    let mut todo = vec![0usize];
    while let Some(i) = todo.pop() {
        if std::mem::replace(reached.get_mut(i).ok_or(Validation::Other)?, true) {
            continue;
        }
        let Some(Some(n)) = names.get(i) else {
            continue;
        };
        let is_anchor = chain.get(i).is_some_and(|c| store.trusts_directly(&c.der));
        if is_anchor || issued_by_anchor(n, store) {
            return Ok(());
        }
        if n.subject == n.issuer {
            continue;
        }
        for (j, m) in names.iter().enumerate() {
            if matches!(m, Some(m) if m.subject == n.issuer)
                && !reached.get(j).copied().unwrap_or(true)
            {
                todo.push(j);
            }
        }
    }
    Err(chain_top(chain))
}

/// Why a chain with no path to an anchor stops where it does: follow the issuer
/// names from the leaf through the certificates sent; the last one reached is a
/// self-signed root ([`Validation::UntrustedRoot`]), a CA whose issuer is unknown
/// ([`Validation::UnknownIssuer`]) or a certificate that is no CA, sent without
/// its issuer ([`Validation::IncompleteChain`]).
fn chain_top(chain: &[Arc<Certificate>]) -> Validation {
    let Some(mut top) = chain.first() else {
        return Validation::Other;
    };
    for _ in 0..chain.len() {
        if top.subject == top.issuer {
            break;
        }
        let next = chain
            .iter()
            .find(|c| !Arc::ptr_eq(c, top) && c.subject.is_some() && c.subject == top.issuer);
        match next {
            Some(n) => top = n,
            None => break,
        }
    }
    if top.subject.is_some() && top.subject == top.issuer {
        Validation::UntrustedRoot
    } else if top.ca {
        Validation::UnknownIssuer
    } else {
        Validation::IncompleteChain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(sha: &str, validity: (i64, i64)) -> Arc<Certificate> {
        Arc::new(Certificate {
            sha256: sha.into(),
            validity: Some(validity),
            ..Certificate::default()
        })
    }

    /// Inside the window where every certificate is valid, any time gives the
    /// same cache key (and a time inside it); outside, the key says where the
    /// time falls for each certificate.
    #[test]
    fn the_cache_key_depends_on_the_time_only_outside_the_common_window() {
        let store = TrustStore::default();
        let chain = [cert("aa", (100, 1000)), cert("bb", (50, 2000))];
        let (t1, k1) = structural_time(&chain, 200, Usage::Server, &store);
        let (t2, k2) = structural_time(&chain, 900, Usage::Server, &store);
        assert_eq!((t1, t2), (200, 900));
        assert_eq!(k1, k2);
        // Before and after the window: the time is moved into it, same key.
        let (t3, k3) = structural_time(&chain, 5000, Usage::Server, &store);
        assert_eq!((t3, &k3), (1000, &k1));
        let (_, client) = structural_time(&chain, 200, Usage::Client, &store);
        assert_ne!(client, k1);
        let other = TrustStore::default();
        assert_ne!(structural_time(&chain, 200, Usage::Server, &other).1, k1);
        // No common window: the key holds each certificate's side of the time.
        let apart = [cert("aa", (100, 200)), cert("bb", (300, 400))];
        let (_, early) = structural_time(&apart, 150, Usage::Server, &store);
        let (_, late) = structural_time(&apart, 350, Usage::Server, &store);
        assert_ne!(early, late);
        assert!(early.contains("=<"), "{early}");
        assert!(late.contains(">="), "{late}");
    }

    /// Dates are judged from the top of the path down, as OpenSSL does.
    #[test]
    fn dates_report_the_first_problem_from_the_top() {
        let path = [(0, 100), (50, 500)];
        assert_eq!(dates(&path, 60), Validation::Ok);
        assert_eq!(dates(&path, 200), Validation::Expired);
        assert_eq!(dates(&path, 10), Validation::NotYetValid);
        assert_eq!(dates(&[(0, 100), (500, 600)], 200), Validation::Expired);
    }

    #[test]
    fn der_contents_skip_the_tag_and_length() {
        assert_eq!(
            der_contents(&[0x30, 2, 0xaa, 0xbb, 0xcc]),
            Some(&[0xaa, 0xbb][..])
        );
        let long: Vec<u8> = [0x30, 0x81, 3, 1, 2, 3].to_vec();
        assert_eq!(der_contents(&long), Some(&[1, 2, 3][..]));
        assert_eq!(der_contents(&[0x30, 5, 1]), None);
        assert_eq!(der_contents(&[0x30]), None);
    }

    /// `--no-default-roots` with nothing else trusts nothing: refused.
    #[test]
    fn an_empty_store_is_refused_and_a_missing_file_named() {
        assert!(TrustStore::load(&[], &[], true).is_err());
        let e = TrustStore::load(&["/nonexistent/ca.pem".into()], &[], false).unwrap_err();
        assert!(e.contains("--ca-file /nonexistent/ca.pem"), "{e}");
        let s = TrustStore::load(&[], &[], false).unwrap();
        assert_eq!(s.len(), webpki_roots::TLS_SERVER_ROOTS.len());
        assert_eq!(validate(&[], 0, Usage::Server, &s), None);
    }
}
