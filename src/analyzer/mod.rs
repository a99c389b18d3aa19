//! Analyzers: what each flow speaks and how it is protected.
//!
//! In: a flow's bytes in order (TCP) or its datagrams (UDP). Out: the verdict, the
//! handshake details and the notes, written into the flow's record.
//!
//! - `tcp`: the TCP dispatch (direct TLS, STARTTLS protocols, plaintext);
//! - `udp`: the UDP dispatch (QUIC, DTLS);
//! - `tls/`: the TLS record layer, handshake, hellos, certificates, fingerprints,
//!   SSLv2 and the cipher table, shared by every carrier of TLS;
//! - `starttls/`: one file per protocol that upgrades in place, and their registry;
//! - `quic/`, `dtls`: TLS carried over UDP;
//! - `options`, `text`: what the analyzers share.

pub mod dtls;
pub mod options;
pub mod quic;
pub mod starttls;
pub mod tcp;
pub mod text;
pub mod tls;
pub mod udp;
