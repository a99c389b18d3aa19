//! The serde model of what was learned about one flow: the JSON contract.
//!
//! In: written by the flow tables, the analyzers and `assess`. Out: serialized by
//! `output`. `finding` holds the finding codes with their severity and reference.

use crate::decode::path::{DecodeNotes, TunnelPath};
use crate::time::Timestamp;
use crate::version::Version;
use serde::Serialize;
use std::net::IpAddr;

pub mod finding;
pub mod frames;

pub use finding::{Code, Finding, Severity};
pub use frames::{FrameInputs, FrameMap, Frames};

/// Which side sent the bytes. Direction is always an enum, never a bool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dir {
    Client,
    Server,
}

impl Dir {
    pub fn other(self) -> Dir {
        match self {
            Dir::Client => Dir::Server,
            Dir::Server => Dir::Client,
        }
    }
}

/// A pair of per-direction values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PerDir<T> {
    pub client: T,
    pub server: T,
}

impl<T> PerDir<T> {
    pub fn get(&self, d: Dir) -> &T {
        match d {
            Dir::Client => &self.client,
            Dir::Server => &self.server,
        }
    }
    pub fn get_mut(&mut self, d: Dir) -> &mut T {
        match d {
            Dir::Client => &mut self.client,
            Dir::Server => &mut self.server,
        }
    }
    pub fn swap(&mut self) {
        std::mem::swap(&mut self.client, &mut self.server);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

/// The transport a flow ran over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
}

/// How a flow was protected. Stable strings; see the README.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encryption {
    /// TLS from the first byte.
    Tls,
    /// A plaintext protocol upgraded in place and a TLS handshake followed.
    Starttls,
    /// The upgrade was asked for and the server said no.
    StarttlsRefused,
    /// The server said yes, but no handshake (or a failed one) followed.
    StarttlsFailed,
    /// Payload both ways and no TLS.
    Plaintext,
    /// RDP Standard Security: RC4 inside the RDP protocol itself, not TLS.
    RdpStandard,
    /// MSSQL with ENCRYPTION OFF on both sides: TLS protects the login packet only.
    LoginOnly,
    /// Encrypted by SSH, not TLS.
    Ssh,
    /// PostgreSQL GSSAPI encryption (GSSENCRequest answered `G`), not TLS.
    Gssapi,
    /// QUIC (over UDP): a TLS 1.3 handshake inside QUIC packets.
    Quic,
    /// DTLS (over UDP): TLS with its own datagram record layer.
    Dtls,
    /// Too little seen to say.
    Unknown,
}

impl Encryption {
    pub fn as_str(self) -> &'static str {
        match self {
            Encryption::Tls => "tls",
            Encryption::Starttls => "starttls",
            Encryption::StarttlsRefused => "starttls-refused",
            Encryption::StarttlsFailed => "starttls-failed",
            Encryption::Plaintext => "plaintext",
            Encryption::RdpStandard => "rdp-standard",
            Encryption::LoginOnly => "login-only",
            Encryption::Ssh => "ssh",
            Encryption::Gssapi => "gssapi",
            Encryption::Quic => "quic",
            Encryption::Dtls => "dtls",
            Encryption::Unknown => "unknown",
        }
    }
}

/// Why a flow's record was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    Fin,
    Rst,
    IdleTimeout,
    EndOfInput,
    Evicted,
    CaptureStopped,
    /// A new connection (fresh SYN) reused the 5-tuple.
    PortReuse,
}

impl EndReason {
    /// The record was closed by the capture or by tlswatch (end of input, capture
    /// stopped, evicted), not by anything the peers did: what came after was not seen.
    pub fn cuts_short(self) -> bool {
        matches!(
            self,
            EndReason::EndOfInput | EndReason::CaptureStopped | EndReason::Evicted
        )
    }
}

/// Anomalies and facts about a flow, as stable snake_case codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Note {
    /// No SYN was seen: the capture started after the connection did.
    Midstream,
    /// Client and server were told apart by content (who sent the ClientHello or banner).
    RolesFromContent,
    /// Client and server were guessed from the port numbers.
    RolesFromPorts,
    /// Bytes of the stream were never captured; the analyzer was told of a hole.
    Gap,
    /// A retransmission carried different bytes for the same sequence numbers.
    ConflictingOverlap,
    /// Out-of-order data exceeded the reassembly cap; the oldest hole was declared a gap.
    ReassemblyCap,
    /// A segment far outside the expected sequence window was ignored.
    OutOfWindow,
    /// The client offered an SSLv2-format ClientHello.
    Sslv2ClientHello,
    /// The server answered with a HelloRetryRequest.
    HelloRetryRequest,
    /// A handshake message exceeded its buffer cap and was not parsed.
    HandshakeTooLarge,
    /// Bytes that should have been TLS records did not parse as such.
    TlsParseError,
    /// A hole in the stream fell inside the TLS handshake; the rest of that direction was not analysed.
    HandshakeGap,
    /// Only one direction carried packets.
    OneSided,
    /// TLS picked up in the middle of a connection (no handshake seen).
    TlsMidstream,
    /// The flow table was full and this flow was evicted early.
    Evicted,
    /// The capture stopped while the flow was open.
    CaptureStopped,
    /// Packets of this flow were cut short by the capture's snap length.
    Truncated,
    /// A handshake on a connection that was upgraded with STARTTLS began after non-TLS bytes.
    StarttlsAfterJunk,
    /// The MySQL server did not advertise CLIENT_SSL.
    MysqlNoSslCapability,
    /// PostgreSQL GSSAPI encryption was requested.
    GssencRequest,
    /// IP fragments of this flow overlapped with different bytes (the first were kept): a known evasion.
    IpFragmentOverlap,
    /// A first IP fragment too short to hold the transport header (RFC 1858).
    TinyIpFragment,
    /// An IP fragment overlapped the transport header (RFC 1858).
    IpFragmentHeaderOverlap,
    /// A QUIC packet that should have carried Initial keys did not decrypt.
    QuicDecryptFailed,
    /// QUIC bytes that did not parse (a length past the datagram, a bad frame).
    QuicMalformed,
    /// QUIC CRYPTO data past the reassembly cap (or far ahead of the stream) was dropped.
    QuicCryptoCap,
    /// A QUIC version without known Initial keys: the handshake could not be read.
    QuicUnknownVersion,
    /// The server answered with a QUIC Version Negotiation packet.
    QuicVersionNegotiation,
    /// A QUIC Retry whose integrity tag did not verify was ignored.
    QuicRetryInvalid,
    /// DTLS bytes that did not parse as records or handshake fragments.
    DtlsParseError,
    /// A DTLS handshake message exceeded the reassembly cap and was not parsed.
    DtlsFragmentCap,
    /// UDP datagrams were cut short by the capture's snap length or lied about their length.
    UdpTruncated,
    /// A Certificate message's list was malformed or longer than the chain cap.
    CertificateListMalformed,
    /// A certificate's DER did not parse; it is listed by its hash only.
    CertificateUnparsed,
    /// The server answered the client's ClientHello with plaintext (a banner or an
    /// error line), not with TLS records: no TLS session took place.
    ServerPlaintext,
    /// The record was closed while the connection was still open (end of input,
    /// capture stopped, evicted; no FIN or RST seen): the rest was not seen, and
    /// nothing is concluded from its absence.
    Incomplete,
    /// Bytes that are neither TLS nor a known protocol, high-entropy from the first
    /// one and text in neither direction: encrypted by something else, not plaintext.
    HighEntropy,
    /// An RST whose sequence number its receiver would not accept (RFC 5961 §3) was
    /// ignored: the connection went on (a known way to blind a monitor).
    RstIgnored,
    /// The two directions came through different tunnel ids or outer addresses (each
    /// direction its own VNI, GRE key or ERSPAN session; a 6to4 reply from another relay)
    /// and were joined into one flow.
    TunnelAsymmetric,
    /// Secrets for this TLS 1.3 session were given (`--keylog`, pcapng secrets) but
    /// do not open its handshake: the wrong keys, or another connection's.
    KeysMismatch,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClientHelloInfo {
    /// Record-layer version of the record that carried the ClientHello (`SSLv2` for the 2.0 format).
    pub record_version: Option<Version>,
    /// Legacy `client_version` field.
    pub version: Version,
    /// `supported_versions` extension, GREASE left out.
    pub supported_versions: Vec<Version>,
    pub sni: Option<String>,
    pub alpn: Vec<String>,
    /// IANA names (GREASE values left out); unknown suites as hex.
    pub cipher_suites: Vec<crate::analyzer::tls::cipher::Name>,
    /// Compression methods offered (`null`, `deflate`, `lzs`, or the number).
    pub compression_methods: Vec<crate::analyzer::tls::cipher::Name>,
    /// `TLS_FALLBACK_SCSV` among the suites: a client retrying with a lower version (RFC 7507).
    pub fallback_scsv: bool,
    /// Secure renegotiation signalled: the `renegotiation_info` extension or its SCSV (RFC 5746).
    pub renegotiation_info: bool,
    /// The `early_data` extension: 0-RTT data offered (RFC 8446 §4.2.10).
    pub early_data: bool,
    /// The `encrypted_client_hello` extension: the visible SNI is only the outer one.
    pub ech: bool,
    /// The ClientHello used the SSLv2 record format.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sslv2_format: bool,
    /// Legacy session id (at most 32 bytes), to recognise its echo (resumption).
    #[serde(skip)]
    pub session_id: Vec<u8>,
    /// JA3 fingerprint: MD5 (lowercase hex) of `ja3_full`; null for an SSLv2-format hello.
    pub ja3: Option<String>,
    /// The JA3 string: `version,ciphers,extensions,groups,point_formats` (GREASE left out).
    pub ja3_full: Option<String>,
    /// FoxIO JA4 fingerprint; null for an SSLv2-format hello.
    pub ja4: Option<String>,
    /// JA4 raw form (sorted lists in hex).
    pub ja4_r: Option<String>,
    /// A second ClientHello followed (after a HelloRetryRequest, RFC 8446
    /// §4.1.4): the group of its key share, the one the client switched to.
    /// Every other field, the fingerprints too, describes the first hello.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_group: Option<crate::analyzer::tls::cipher::Name>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ServerHelloInfo {
    /// Legacy `server_version` field.
    pub version: Version,
    /// `supported_versions` extension of the ServerHello, if present.
    pub selected_version: Option<Version>,
    pub cipher_suite: Option<crate::analyzer::tls::cipher::Name>,
    /// The selected suite's number, for policy checks.
    #[serde(skip)]
    pub cipher_id: Option<u16>,
    pub alpn: Option<String>,
    /// Compression method selected (`null` unless something is wrong).
    pub compression_method: Option<crate::analyzer::tls::cipher::Name>,
    /// The `renegotiation_info` extension (RFC 5746).
    pub renegotiation_info: bool,
    /// The `signed_certificate_timestamp` extension (RFC 6962 §3.3).
    #[serde(skip)]
    pub sct_extension: bool,
    /// JA3S fingerprint: MD5 (lowercase hex) of `ja3s_full`; null for SSLv2.
    pub ja3s: Option<String>,
    /// The JA3S string: `version,cipher,extensions`.
    pub ja3s_full: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub from: Dir,
    /// `warning`, `fatal`, or the number for anything else.
    pub level: String,
    pub description: String,
    /// The packet that carried it (see [`Frames`]).
    pub frame: u64,
    /// The input of `frame`, when it is not the record's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<usize>,
}

impl Alert {
    /// An alert from `dir` seen in packet `frame`, by its two bytes.
    pub fn new(dir: Dir, level: u8, description: String, frame: u64) -> Self {
        Alert {
            from: dir,
            level: match level {
                1 => "warning".to_string(),
                2 => "fatal".to_string(),
                n => n.to_string(),
            },
            description,
            frame,
            input: None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TlsInfo {
    /// Negotiated version: ServerHello `supported_versions`, else its legacy version; null without a ServerHello.
    pub version: Option<Version>,
    pub client_hello: Option<ClientHelloInfo>,
    pub server_hello: Option<ServerHelloInfo>,
    pub hello_retry_request: bool,
    /// Both sides moved past the handshake (ChangeCipherSpec or encrypted records both ways).
    pub established: bool,
    /// Alerts seen before encryption started.
    pub alerts: Vec<Alert>,
    /// Key exchange: from the selected suite (`rsa`, `dhe`, `ecdhe`, `psk`, ...);
    /// for TLS 1.3 `ecdhe`, `dhe`, `psk` or `psk_ecdhe`/`psk_dhe` from the key_share and pre_shared_key.
    pub key_exchange: Option<String>,
    /// Group of the key exchange (ServerKeyExchange curve or TLS 1.3 key_share).
    pub group: Option<crate::analyzer::tls::cipher::Name>,
    /// Size in bits of the DH prime (finite-field ServerKeyExchange).
    pub dh_bits: Option<u32>,
    /// An earlier session was resumed: session id echoed, ticket or PSK accepted, no certificate exchange.
    pub resumed: bool,
    /// The ServerHello random carries the RFC 8446 §4.1.3 downgrade sentinel:
    /// the server supports at least this version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downgrade_sentinel: Option<Version>,
    /// The server's certificate chain as sent, leaf first (TLS 1.3 encrypts it).
    pub certificates: Vec<std::sync::Arc<Certificate>>,
    /// The client's certificate chain (mutual TLS), leaf first.
    pub client_certificates: Vec<std::sync::Arc<Certificate>>,
    /// The server's chain judged at the flow's start for server authentication:
    /// `ok` or why not; null when no server certificate was seen.
    pub validation: Option<Validation>,
    /// The client's chain judged the same way, for client authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_validation: Option<Validation>,
    /// The TLS 1.3 handshake was decrypted with the session's keys (`--keylog`,
    /// or secrets in the pcapng): its certificates and the rest below were read.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub decrypted: bool,
    /// What the decrypted handshake showed beyond the certificates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted_handshake: Option<EncryptedHandshake>,
    /// The server stapled an OCSP response (a CertificateStatus message; TLS 1.3
    /// hides it with the certificates).
    pub ocsp_stapled: bool,
    /// Signed certificate timestamps (Certificate Transparency) came with the
    /// server's certificate: embedded in the leaf or in the ServerHello extension.
    pub sct: bool,
}

/// Whether a certificate chain leads to a trust anchor at the flow's time, or
/// the one reason it does not. Stable strings; see the README.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Validation {
    /// A path to a trust anchor, every certificate on it valid at the flow's start.
    Ok,
    /// The chain ends in a CA certificate whose issuer was neither sent nor trusted.
    UnknownIssuer,
    /// The chain ends in a certificate that is no CA and whose issuer was not sent:
    /// the intermediate is missing (a root never issues server certificates directly).
    IncompleteChain,
    /// The chain ends in a self-signed CA that is not a trust anchor.
    UntrustedRoot,
    /// The leaf is self-signed and not a trust anchor.
    SelfSigned,
    /// A certificate on the path had expired at the flow's start.
    Expired,
    /// A certificate on the path was not yet valid at the flow's start.
    NotYetValid,
    /// A signature on the path does not verify with its issuer's key.
    BadSignature,
    /// A certificate used as an issuer is not a CA (basicConstraints).
    NotACa,
    /// The leaf is a CA certificate (basicConstraints CA set).
    CaUsedAsLeaf,
    /// The leaf's extended key usage does not allow TLS server authentication.
    InvalidForServerAuth,
    /// The leaf's extended key usage does not allow TLS client authentication.
    InvalidForClientAuth,
    /// A CA's pathLenConstraint is exceeded.
    PathLenExceeded,
    /// A name is outside a CA's name constraints.
    NameConstraints,
    /// A signature algorithm or key the validator does not accept (MD5, SHA-1,
    /// RSA under 2048 bits, unknown algorithms).
    UnsupportedSignature,
    /// A critical extension the validator does not know.
    UnsupportedCriticalExtension,
    /// A key the validator distrusts explicitly.
    Distrusted,
    /// A certificate the validator could not decode.
    Malformed,
    /// Path building gave up (too many candidates or signatures).
    TooComplex,
    /// Any other failure.
    Other,
}

impl Validation {
    /// Every value, in the README's order.
    pub const ALL: &'static [Validation] = &[
        Validation::Ok,
        Validation::UnknownIssuer,
        Validation::IncompleteChain,
        Validation::UntrustedRoot,
        Validation::SelfSigned,
        Validation::Expired,
        Validation::NotYetValid,
        Validation::BadSignature,
        Validation::NotACa,
        Validation::CaUsedAsLeaf,
        Validation::InvalidForServerAuth,
        Validation::InvalidForClientAuth,
        Validation::PathLenExceeded,
        Validation::NameConstraints,
        Validation::UnsupportedSignature,
        Validation::UnsupportedCriticalExtension,
        Validation::Distrusted,
        Validation::Malformed,
        Validation::TooComplex,
        Validation::Other,
    ];

    /// The stable string (as serialized).
    pub const fn as_str(self) -> &'static str {
        match self {
            Validation::Ok => "ok",
            Validation::UnknownIssuer => "unknown_issuer",
            Validation::IncompleteChain => "incomplete_chain",
            Validation::UntrustedRoot => "untrusted_root",
            Validation::SelfSigned => "self_signed",
            Validation::Expired => "expired",
            Validation::NotYetValid => "not_yet_valid",
            Validation::BadSignature => "bad_signature",
            Validation::NotACa => "not_a_ca",
            Validation::CaUsedAsLeaf => "ca_used_as_leaf",
            Validation::InvalidForServerAuth => "invalid_for_server_auth",
            Validation::InvalidForClientAuth => "invalid_for_client_auth",
            Validation::PathLenExceeded => "path_len_exceeded",
            Validation::NameConstraints => "name_constraints",
            Validation::UnsupportedSignature => "unsupported_signature",
            Validation::UnsupportedCriticalExtension => "unsupported_critical_extension",
            Validation::Distrusted => "distrusted",
            Validation::Malformed => "malformed",
            Validation::TooComplex => "too_complex",
            Validation::Other => "other",
        }
    }
}

/// The encrypted part of a TLS 1.3 handshake, read with the session's keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EncryptedHandshake {
    /// The extensions of EncryptedExtensions, in order (the selected ALPN
    /// protocol goes to `server_hello.alpn`).
    pub encrypted_extensions: Vec<crate::analyzer::tls::cipher::Name>,
    /// The algorithm a CompressedCertificate used (RFC 8879): `zlib`, `brotli`, `zstd`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_compression: Option<crate::analyzer::tls::cipher::Name>,
    /// The server asked for a client certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_request: Option<CertificateRequest>,
    /// Signature scheme of the server's CertificateVerify.
    pub server_signature: Option<crate::analyzer::tls::cipher::Name>,
    /// Signature scheme of the client's CertificateVerify (mutual TLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_signature: Option<crate::analyzer::tls::cipher::Name>,
    /// The sides whose Finished was read, in the order read.
    pub finished: Vec<Dir>,
}

/// A TLS 1.3 CertificateRequest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CertificateRequest {
    /// Signature schemes the server accepts from the client.
    pub signature_algorithms: Vec<crate::analyzer::tls::cipher::Name>,
    /// How many certificate authorities it names.
    pub certificate_authorities: u32,
}

/// Public key of a certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PublicKey {
    /// `rsa`, `ec`, `dsa`, `ed25519`, `ed448`, `dh` or `other`.
    #[serde(rename = "type")]
    pub kind: String,
    pub bits: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curve: Option<String>,
}

/// One X.509 certificate as sent on the wire. Names are RFC 4514 strings with
/// wire bytes escaped; times are RFC 3339 UTC.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Certificate {
    /// SHA-256 of the DER, lowercase hex.
    pub sha256: String,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub subject_cn: Option<String>,
    /// Serial number, lowercase hex.
    pub serial: Option<String>,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    /// Subject alternative names: DNS names and IP addresses.
    pub san: Vec<String>,
    pub key: Option<PublicKey>,
    pub signature_algorithm: Option<String>,
    /// Subject equals issuer (and the key identifiers, when both are present).
    pub self_signed: bool,
    /// basicConstraints CA flag.
    pub ca: bool,
    /// Why the DER did not parse; the other fields are then empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Validity as Unix seconds, for the capture-time checks.
    #[serde(skip)]
    pub validity: Option<(i64, i64)>,
    /// More SAN entries than kept.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub san_truncated: bool,
    /// The DER as sent, for chain validation.
    #[serde(skip)]
    pub der: std::sync::Arc<[u8]>,
    /// Embedded signed certificate timestamps (RFC 6962 §3.3).
    #[serde(skip)]
    pub sct: bool,
}

impl TlsInfo {
    pub fn fatal_alert(&self) -> bool {
        self.alerts.iter().any(|a| a.level == "fatal")
    }
}

/// The plaintext phase of an upgraded (or not upgraded) connection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StartTls {
    /// The server advertised the upgrade.
    pub offered: bool,
    /// The client asked for it.
    pub requested: bool,
    /// The server said yes.
    pub accepted: bool,
    /// The client's upgrade request (escaped; never carries credentials).
    pub command: Option<String>,
    /// The server's answer (escaped).
    pub reply: Option<String>,
    /// Stream offset where TLS begins in the client-to-server direction.
    pub client_offset: Option<u64>,
    /// Stream offset where TLS begins in the server-to-client direction.
    pub server_offset: Option<u64>,
    /// Evidence that the capability was masked or removed (the line seen).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stripped: Option<String>,
    /// Client plaintext after its upgrade request that was not TLS (escaped, shortened).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub injection: Option<String>,
    /// Server plaintext after its go-ahead that was not TLS (escaped, shortened).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_injection: Option<String>,
    /// IMAP PREAUTH greeting: no chance to upgrade before authentication.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub preauth: bool,
}

/// The proxy a connection was opened through (HTTP CONNECT, SOCKS): what the
/// client asked for, and whether the tunnel opened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProxyHop {
    /// `http-connect`, `socks4`, `socks4a` or `socks5`.
    pub kind: &'static str,
    /// `host:port` the client asked the proxy for (escaped; IPv6 in brackets).
    pub target: String,
    /// The proxy answered with success: the tunnel opened.
    pub established: bool,
}

/// Credentials seen in the clear: the mechanism, and the user only on request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CleartextAuth {
    pub mechanism: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The password went as a salted hash (PostgreSQL MD5): open to offline
    /// guessing, not readable.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hashed: bool,
}

/// What the QUIC long headers of a flow said.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QuicInfo {
    /// `1`, `2`, or the version number in hex (drafts, unknown versions).
    pub version: String,
    /// The server sent a Retry (the client started again with a new connection ID).
    pub retry: bool,
    /// The client's first Destination Connection ID (hex): the Initial keys derive from it.
    pub dcid: String,
    /// The client's Source Connection ID (hex).
    pub scid: String,
    /// Versions a Version Negotiation packet offered, if the server sent one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub offered_versions: Vec<String>,
}

/// What the DTLS record layer of a flow said.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DtlsInfo {
    /// The server asked for a cookie (HelloVerifyRequest) before going on.
    pub hello_verify_request: bool,
    /// Highest record epoch seen (epoch 1 and up are encrypted).
    pub max_epoch: u16,
}

/// Everything known about one connection (TCP) or conversation (UDP).
#[derive(Clone, Debug, Serialize)]
pub struct FlowRecord {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: u64,
    pub transport: Transport,
    /// Community ID v1 of the (innermost) 5-tuple; set by the output stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub community_id: Option<String>,
    pub start: Timestamp,
    pub end: Timestamp,
    /// Index in `inputs` of the file of the flow's first packet (set by the output stage).
    pub input: usize,
    /// The packets behind the verdict (see [`Frames`]).
    pub frames: Frames,
    /// Frames of `frames` that lie in a later input than `input` (a flow read
    /// across several files), by name; omitted when empty.
    #[serde(skip_serializing_if = "FrameInputs::is_empty")]
    pub frame_inputs: FrameInputs,
    pub client: Endpoint,
    pub server: Endpoint,
    /// Encapsulations the flow came through, outermost first, outer addresses as the client sent.
    #[serde(skip_serializing_if = "TunnelPath::is_empty")]
    pub tunnel: TunnelPath,
    pub app_protocol: Option<String>,
    pub encryption: Encryption,
    pub starttls: Option<StartTls>,
    /// The proxy the connection was opened through; what travels in its tunnel
    /// is what the rest of the record describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyHop>,
    pub tls: Option<TlsInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quic: Option<QuicInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtls: Option<DtlsInfo>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cleartext_auth: Vec<CleartextAuth>,
    pub packets: PerDir<u64>,
    pub bytes: PerDir<u64>,
    pub end_reason: EndReason,
    /// Present and true when the record was closed before the connection was (see
    /// [`Note::Incomplete`]): verdicts say how far it got, not how it ended.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
    pub findings: Vec<Finding>,
    pub notes: Vec<Note>,
    /// Ordinal of the packet whose bytes are being analysed: the flow engine sets it
    /// before each delivery, and analyzers stamp their events with it.
    #[serde(skip)]
    pub at: u64,
}

impl FlowRecord {
    pub fn new(id: u64, ts: Timestamp, client: Endpoint, server: Endpoint) -> Self {
        FlowRecord {
            kind: "flow",
            id,
            transport: Transport::Tcp,
            community_id: None,
            start: ts,
            end: ts,
            input: 0,
            frames: Frames::default(),
            frame_inputs: FrameInputs::new(),
            client,
            server,
            tunnel: TunnelPath::default(),
            app_protocol: None,
            encryption: Encryption::Unknown,
            starttls: None,
            proxy: None,
            tls: None,
            quic: None,
            dtls: None,
            cleartext_auth: Vec::new(),
            packets: PerDir::default(),
            bytes: PerDir::default(),
            end_reason: EndReason::EndOfInput,
            incomplete: false,
            findings: Vec::new(),
            notes: Vec::new(),
            at: 0,
        }
    }

    /// Adds a note once.
    pub fn note(&mut self, n: Note) {
        if !self.notes.contains(&n) {
            self.notes.push(n);
        }
    }

    /// Notes what the decoder saw of a packet of this flow.
    pub fn note_decode(&mut self, d: &DecodeNotes) {
        for n in decode_notes(d) {
            self.note(n);
        }
    }

    pub fn has_note(&self, n: Note) -> bool {
        self.notes.contains(&n)
    }

    /// Marks the record as closed before the connection was ([`Note::Incomplete`]).
    pub fn mark_incomplete(&mut self) {
        self.incomplete = true;
        self.note(Note::Incomplete);
    }

    pub fn tls_mut(&mut self) -> &mut TlsInfo {
        self.tls.get_or_insert_with(TlsInfo::default)
    }

    pub fn starttls_mut(&mut self) -> &mut StartTls {
        self.starttls.get_or_insert_with(StartTls::default)
    }

    /// Heap bytes the record holds, roughly: each string counted at a typical length
    /// (for the flow table's memory cap, which needs an O(1)-ish figure per packet).
    pub fn heap_bytes(&self) -> usize {
        const STR: usize = std::mem::size_of::<String>() + 32;
        let opt = |s: &Option<String>| s.as_ref().map_or(0, |s| s.capacity());
        let mut n = self.notes.capacity() * std::mem::size_of::<Note>()
            + self.findings.capacity() * (std::mem::size_of::<Finding>() + 64)
            + self.cleartext_auth.capacity() * (std::mem::size_of::<CleartextAuth>() + STR)
            + opt(&self.app_protocol)
            + self
                .proxy
                .as_ref()
                .map_or(0, |p| std::mem::size_of::<ProxyHop>() + p.target.capacity());
        if let Some(st) = &self.starttls {
            n += std::mem::size_of::<StartTls>()
                + opt(&st.command)
                + opt(&st.reply)
                + opt(&st.stripped)
                + opt(&st.injection)
                + opt(&st.response_injection);
        }
        if let Some(t) = &self.tls {
            n += std::mem::size_of::<TlsInfo>()
                + t.alerts.capacity() * (std::mem::size_of::<Alert>() + 2 * STR);
            if let Some(ch) = &t.client_hello {
                n += std::mem::size_of::<ClientHelloInfo>()
                    + (ch.cipher_suites.capacity() + ch.alpn.capacity()) * STR
                    + ch.supported_versions.capacity() * std::mem::size_of::<Version>()
                    + opt(&ch.sni);
            }
            if let Some(sh) = &t.server_hello {
                n += std::mem::size_of::<ServerHelloInfo>()
                    + sh.cipher_suite.as_ref().map_or(0, |c| match c {
                        std::borrow::Cow::Owned(o) => o.capacity(),
                        std::borrow::Cow::Borrowed(_) => 0,
                    })
                    + opt(&sh.alpn);
            }
        }
        n + self.more_heap_bytes()
    }

    /// The rest of [`FlowRecord::heap_bytes`]: the tunnel path, the QUIC header
    /// fields, the hello fingerprints and what the handshake showed beyond the hellos.
    fn more_heap_bytes(&self) -> usize {
        const STR: usize = std::mem::size_of::<String>() + 32;
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::capacity);
        let mut n = self.tunnel.heap_bytes();
        if let Some(q) = &self.quic {
            n += q.version.capacity()
                + q.dcid.capacity()
                + q.scid.capacity()
                + q.offered_versions.capacity() * STR;
        }
        let Some(t) = &self.tls else {
            return n;
        };
        n += opt(&t.key_exchange)
            + (t.certificates.capacity() + t.client_certificates.capacity())
                * std::mem::size_of::<std::sync::Arc<Certificate>>();
        if let Some(ch) = &t.client_hello {
            n += opt(&ch.ja3)
                + opt(&ch.ja3_full)
                + opt(&ch.ja4)
                + opt(&ch.ja4_r)
                + ch.compression_methods.capacity() * STR
                + ch.session_id.capacity();
        }
        if let Some(sh) = &t.server_hello {
            n += opt(&sh.ja3s) + opt(&sh.ja3s_full);
        }
        if let Some(e) = &t.encrypted_handshake {
            let requested = e
                .certificate_request
                .as_ref()
                .map_or(0, |r| r.signature_algorithms.capacity());
            n += (e.encrypted_extensions.capacity() + requested) * STR + e.finished.capacity();
        }
        n
    }

    /// Payload was carried in at least one direction.
    pub fn has_payload(&self) -> bool {
        self.bytes.client > 0 || self.bytes.server > 0
    }

    /// Rewrites every frame from a packet ordinal to its number within its input
    /// (`map`), and sets `input` to the input of the first packet. Frames in another
    /// input are named in `frame_inputs` (and on alerts and findings, in their own
    /// `input`).
    pub fn locate_frames(&mut self, map: &FrameMap) {
        let (input, _) = map.locate(self.frames.first);
        self.input = input;
        let mut other = FrameInputs::new();
        for (name, f) in self.frames.fields_mut() {
            let (i, n) = map.locate(*f);
            *f = n;
            if n != 0 && i != input {
                other.insert(name, i);
            }
        }
        self.frame_inputs = other;
        let locate = |f: &mut u64| {
            let (i, n) = map.locate(*f);
            *f = n;
            (n != 0 && i != input).then_some(i)
        };
        if let Some(t) = self.tls.as_mut() {
            for a in &mut t.alerts {
                a.input = locate(&mut a.frame);
            }
        }
        for f in &mut self.findings {
            f.input = locate(&mut f.frame);
        }
    }

    /// Swap client and server (roles learned from content after the record was opened).
    pub fn swap_roles(&mut self) {
        std::mem::swap(&mut self.client, &mut self.server);
        let f = &mut self.frames;
        std::mem::swap(&mut f.first_client_payload, &mut f.first_server_payload);
        self.tunnel = self.tunnel.reversed();
        self.packets.swap();
        self.bytes.swap();
    }
}

/// Appends `bytes` as lowercase hex, without the formatting machinery (digests,
/// fingerprints and identifiers run through it for every handshake).
pub fn push_hex(s: &mut String, bytes: &[u8]) {
    let digit = |n: u8| char::from(if n < 10 { b'0' + n } else { b'a' + n - 10 });
    for &b in bytes {
        s.push(digit(b >> 4));
        s.push(digit(b & 0xf));
    }
}

/// `bytes` as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_hex(&mut s, bytes);
    s
}

/// Renders bytes from the wire as a safe string: printable ASCII kept, anything
/// else (control characters, bytes >= 0x7f, backslash) as `\xNN` escapes, so no
/// wire byte can ever reach a terminal raw. Capped at `max` input bytes.
pub fn escape_wire(bytes: &[u8], max: usize) -> String {
    let mut s = String::with_capacity(bytes.len().min(max));
    for &b in bytes.iter().take(max) {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    if bytes.len() > max {
        s.push_str("...");
    }
    s
}

/// The notes a packet's IP-layer anomalies put on its flow.
pub fn decode_notes(d: &DecodeNotes) -> impl Iterator<Item = Note> {
    let f = d.fragments.unwrap_or_default();
    [
        (f.conflicting_overlap, Note::IpFragmentOverlap),
        (f.tiny_first, Note::TinyIpFragment),
        (f.header_overlap, Note::IpFragmentHeaderOverlap),
    ]
    .into_iter()
    .filter_map(|(on, n)| on.then_some(n))
}

/// The version a flow is counted under in `by_version` and a server's `versions`:
/// TLS-protected flows only, `unknown` without a ServerHello.
pub fn version_key(rec: &FlowRecord) -> Option<String> {
    negotiated_version(rec).map(|v| v.map_or_else(|| "unknown".to_string(), |v| v.to_string()))
}

/// The negotiated version of a TLS-protected flow (`Some(None)` without a
/// ServerHello); `None` for flows TLS did not protect.
pub fn negotiated_version(rec: &FlowRecord) -> Option<Option<Version>> {
    let tls_used = matches!(
        rec.encryption,
        Encryption::Tls
            | Encryption::Starttls
            | Encryption::StarttlsFailed
            | Encryption::Quic
            | Encryption::Dtls
    );
    tls_used.then(|| rec.tls.as_ref().and_then(|t| t.version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x09, 0xab, 0x10, 0xff]), "0009ab10ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn escape_wire_neutralises_control_bytes() {
        assert_eq!(escape_wire(b"mail.example.com", 64), "mail.example.com");
        assert_eq!(escape_wire(b"a\x1b[31mb", 64), "a\\x1b[31mb");
        assert_eq!(
            escape_wire(b"\\\r\n\xc2\x9b", 64),
            "\\x5c\\x0d\\x0a\\xc2\\x9b"
        );
        assert_eq!(escape_wire(b"abcdef", 3), "abc...");
    }

    #[test]
    fn encryption_spellings_are_the_contract() {
        let all = [
            (Encryption::Tls, "tls"),
            (Encryption::Starttls, "starttls"),
            (Encryption::StarttlsRefused, "starttls-refused"),
            (Encryption::StarttlsFailed, "starttls-failed"),
            (Encryption::Plaintext, "plaintext"),
            (Encryption::RdpStandard, "rdp-standard"),
            (Encryption::LoginOnly, "login-only"),
            (Encryption::Ssh, "ssh"),
            (Encryption::Gssapi, "gssapi"),
            (Encryption::Quic, "quic"),
            (Encryption::Dtls, "dtls"),
            (Encryption::Unknown, "unknown"),
        ];
        for (e, s) in all {
            assert_eq!(e.as_str(), s);
            assert_eq!(serde_json::to_value(e).ok(), Some(serde_json::json!(s)));
        }
    }

    #[test]
    fn validation_spellings_are_their_serialization() {
        for (i, v) in Validation::ALL.iter().enumerate() {
            assert_eq!(
                serde_json::to_value(v).ok(),
                Some(serde_json::json!(v.as_str()))
            );
            assert!(Validation::ALL.iter().skip(i + 1).all(|w| w != v));
        }
        assert_eq!(Validation::NotACa.as_str(), "not_a_ca");
        assert_eq!(Validation::ALL.len(), 20);
    }
}
