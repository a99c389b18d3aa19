//! RDP security negotiation (MS-RDPBCGR 2.2.1.1 and 2.2.1.2): a TPKT (RFC 1006)
//! carrying an X.224 Connection Request with RDP_NEG_REQ (the protocols the
//! client accepts), answered by a Connection Confirm with RDP_NEG_RSP (the one
//! selected: TLS follows for SSL, HYBRID (CredSSP), RDSTLS, HYBRID_EX and RDSAAD)
//! or RDP_NEG_FAILURE. selectedProtocol 0, or a Confirm without negotiation
//! data, is Standard RDP Security: RC4 inside RDP, reported as `rdp-standard`.

use super::frame::{Framer, Next, Parse, be, le, with_at};
use super::protocol::{Cx, Protocol, Step, Verdict};
use crate::record::{Dir, Encryption, PerDir};

/// TPKT version byte.
const TPKT_VERSION: u8 = 3;
/// TPKT header (4) plus the shortest X.224 TPDU (a Data TPDU: LI, code, EOT).
const MIN_TPKT: usize = 7;
/// Longest TPKT kept whole; the negotiation TPDUs are far shorter.
const MAX_TPKT: usize = 4 * 1024;
/// X.224 TPDU codes (high nibble).
const X224_CR: u8 = 0xe0;
const X224_CC: u8 = 0xd0;
/// Bytes of a CR or CC after the length indicator: code, DST-REF, SRC-REF, class.
const X224_FIXED: usize = 6;
/// RDP negotiation structure types.
const NEG_REQ: u8 = 1;
const NEG_RSP: u8 = 2;
const NEG_FAILURE: u8 = 3;
/// Length of RDP_NEG_REQ, RDP_NEG_RSP and RDP_NEG_FAILURE.
const NEG_LEN: u32 = 8;

/// Security protocol flags (requestedProtocols, selectedProtocol).
const PROTOCOLS: [(u32, &str); 5] = [
    (0x01, "SSL"),
    (0x02, "HYBRID"),
    (0x04, "RDSTLS"),
    (0x08, "HYBRID_EX"),
    (0x10, "RDSAAD"),
];

/// TPKT framing: `Done((), length)`.
pub fn tpkt(b: &[u8]) -> Parse<()> {
    match (b.first(), b.get(1)) {
        (Some(&v), _) if v != TPKT_VERSION => return Parse::Invalid,
        (_, Some(&r)) if r != 0 => return Parse::Invalid,
        _ => {}
    }
    match be(b, 2, 2) {
        None => Parse::NeedMore,
        Some(n) if (n as usize) < MIN_TPKT => Parse::Invalid,
        Some(n) => Parse::Done((), n as usize),
    }
}

/// An X.224 CR or CC inside a TPKT's payload: its code and variable part.
pub fn x224(payload: &[u8]) -> Option<(u8, &[u8])> {
    let li = usize::from(*payload.first()?);
    let code = payload.get(1)? & 0xf0;
    if li < X224_FIXED || !matches!(code, X224_CR | X224_CC) {
        return None;
    }
    let end = (1 + li).min(payload.len());
    Some((code, payload.get(1 + X224_FIXED..end)?))
}

/// Negotiation data: `(type, value)` for RDP_NEG_REQ/RSP/FAILURE, after any
/// cookie or routing token (text ending in CR LF).
pub fn negotiation(var: &[u8]) -> Option<(u8, u32)> {
    let neg = match var.first() {
        Some(&(NEG_REQ | NEG_RSP | NEG_FAILURE)) => var,
        Some(_) => {
            let crlf = var.windows(2).position(|w| w == b"\r\n")?;
            var.get(crlf + 2..)?
        }
        None => return None,
    };
    let &kind = neg.first()?;
    if !matches!(kind, NEG_REQ | NEG_RSP | NEG_FAILURE) || le(neg, 2, 2)? != NEG_LEN {
        return None;
    }
    Some((kind, le(neg, 4, 4)?))
}

/// `SSL|HYBRID`, or `PROTOCOL_RDP` for none.
pub fn protocol_names(flags: u32) -> String {
    let names: Vec<&str> = PROTOCOLS
        .iter()
        .filter(|(f, _)| flags & f != 0)
        .map(|&(_, n)| n)
        .collect();
    if names.is_empty() {
        "PROTOCOL_RDP".to_string()
    } else {
        names.join("|")
    }
}

/// RDP_NEG_FAILURE codes (MS-RDPBCGR 2.2.1.2.2).
pub fn failure_name(code: u32) -> &'static str {
    match code {
        1 => "SSL_REQUIRED_BY_SERVER",
        2 => "SSL_NOT_ALLOWED_BY_SERVER",
        3 => "SSL_CERT_NOT_ON_SERVER",
        4 => "INCONSISTENT_FLAGS",
        5 => "HYBRID_REQUIRED_BY_SERVER",
        6 => "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER",
        _ => "unknown",
    }
}

/// Does this flow speak RDP? The client opens with a TPKT carrying an X.224
/// Connection Request whose variable part is empty, a cookie or routing token,
/// or RDP_NEG_REQ (ISO-TSAP users such as S7comm put COTP parameters there).
pub fn detect(client: &[u8], _server: &[u8], _port: u16) -> Verdict {
    match tpkt(client) {
        Parse::Invalid => return Verdict::No,
        Parse::NeedMore if client.is_empty() => return Verdict::No,
        Parse::NeedMore => return Verdict::Maybe,
        Parse::Done(..) => {}
    }
    let payload = client.get(4..).unwrap_or_default();
    let (Some(&li), Some(&code)) = (payload.first(), payload.get(1)) else {
        return Verdict::Maybe;
    };
    if code & 0xf0 != X224_CR || usize::from(li) < X224_FIXED {
        return Verdict::No;
    }
    match payload.get(1 + X224_FIXED) {
        None if payload.len() > usize::from(li) => Verdict::Yes { swap: false },
        None => Verdict::Maybe,
        Some(&NEG_REQ) => Verdict::Yes { swap: false },
        Some(&b) if b.is_ascii_alphanumeric() => Verdict::Yes { swap: false },
        Some(_) => Verdict::No,
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    #[default]
    Request,
    Confirm,
    /// Negotiated without TLS: nothing more to learn.
    Done,
}

/// The RDP state machine.
#[derive(Debug, Default)]
pub struct Rdp {
    framer: PerDir<Framer>,
    phase: Phase,
    /// The client asked for a TLS-based protocol (the driver holds its bytes).
    requested: bool,
    /// Standard RDP Security was negotiated.
    standard: bool,
}

impl Protocol for Rdp {
    fn on_data(&mut self, dir: Dir, data: &[u8], cx: &mut Cx<'_>) -> Step {
        cx.app("rdp");
        let mut pos = 0;
        while let Some(rest) = data.get(pos..).filter(|r| !r.is_empty()) {
            if self.phase == Phase::Done {
                return Step::Stop;
            }
            match self.framer.get_mut(dir).next(rest, MAX_TPKT, tpkt) {
                Next::More => return Step::Continue,
                // Fast-path PDUs (no TPKT) after Standard Security, or not RDP.
                Next::Invalid { .. } => return Step::Stop,
                Next::Msg { bytes, used, .. } => {
                    pos += used;
                    let tpdu = x224(bytes.get(4..).unwrap_or_default());
                    let step = match (dir, tpdu) {
                        (Dir::Client, Some((X224_CR, var))) => self.request(var, cx),
                        (Dir::Server, Some((X224_CC, var))) => self.confirm(var, cx),
                        // Data before the negotiation is over: not following.
                        _ => Step::Stop,
                    };
                    if step != Step::Continue {
                        return with_at(step, pos);
                    }
                }
            }
        }
        Step::Continue
    }

    fn encryption(&self) -> Option<Encryption> {
        self.standard.then_some(Encryption::RdpStandard)
    }
}

impl Rdp {
    fn request(&mut self, var: &[u8], cx: &mut Cx<'_>) -> Step {
        if self.phase != Phase::Request {
            return Step::Stop;
        }
        self.phase = Phase::Confirm;
        match negotiation(var) {
            Some((NEG_REQ, flags)) => {
                let cmd = format!(
                    "RDP_NEG_REQ requestedProtocols=0x{flags:08x} ({})",
                    protocol_names(flags)
                );
                cx.command(cmd.as_bytes());
                if flags == 0 {
                    return Step::Continue;
                }
                self.requested = true;
                Step::Requested { at: 0 }
            }
            _ => {
                cx.command(b"X.224 Connection Request without RDP_NEG_REQ");
                Step::Continue
            }
        }
    }

    fn confirm(&mut self, var: &[u8], cx: &mut Cx<'_>) -> Step {
        if self.phase != Phase::Confirm {
            return Step::Stop;
        }
        self.phase = Phase::Done;
        match negotiation(var) {
            Some((NEG_RSP, selected)) if selected != 0 => {
                let reply = format!(
                    "RDP_NEG_RSP selectedProtocol=0x{selected:08x} ({})",
                    protocol_names(selected)
                );
                cx.reply(reply.as_bytes());
                if self.requested {
                    Step::Accepted { at: 0 }
                } else {
                    Step::Upgrade { at: 0 }
                }
            }
            Some((NEG_FAILURE, code)) => {
                let reply = format!(
                    "RDP_NEG_FAILURE failureCode={code} ({})",
                    failure_name(code)
                );
                cx.reply(reply.as_bytes());
                Step::Refused { at: 0 }
            }
            neg => {
                self.standard = true;
                cx.reply(if neg.is_some() {
                    b"RDP_NEG_RSP selectedProtocol=0x00000000 (PROTOCOL_RDP)"
                } else {
                    b"X.224 Connection Confirm without RDP_NEG_RSP"
                });
                if self.requested {
                    // The held client bytes go back to plaintext; the verdict is Standard Security.
                    Step::Refused { at: 0 }
                } else {
                    Step::Stop
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::starttls::Proto;
    use crate::analyzer::starttls::tests::{client_hello, run_split_invariant, server_hello};
    use crate::record::Code;

    /// TPKT + X.224 TPDU with `code` and variable part `var`.
    fn tpdu(code: u8, var: &[u8]) -> Vec<u8> {
        let li = X224_FIXED + var.len();
        let total = 4 + 1 + li;
        let mut v = vec![
            TPKT_VERSION,
            0,
            (total >> 8) as u8,
            total as u8,
            li as u8,
            code,
        ];
        v.extend([0, 0, 0x12, 0x34, 0]);
        v.extend(var);
        v
    }

    fn neg(kind: u8, value: u32) -> Vec<u8> {
        let mut v = vec![kind, 0, 8, 0];
        v.extend(value.to_le_bytes());
        v
    }

    fn cr(requested: Option<u32>) -> Vec<u8> {
        let mut var = b"Cookie: mstshash=AWAKECODI\r\n".to_vec();
        if let Some(r) = requested {
            var.extend(neg(NEG_REQ, r));
        }
        tpdu(X224_CR, &var)
    }

    fn accepted(selected: u32) -> Vec<(Dir, Vec<u8>)> {
        vec![
            (Dir::Client, cr(Some(3))),
            (Dir::Server, tpdu(X224_CC, &neg(NEG_RSP, selected))),
            (Dir::Client, client_hello()),
            (Dir::Server, server_hello()),
        ]
    }

    #[test]
    fn framing_need_more_invalid_done() {
        assert_eq!(tpkt(&[3, 0, 0]), Parse::NeedMore);
        assert_eq!(tpkt(&[3, 0, 0, 0x2f]), Parse::Done((), 0x2f));
        assert_eq!(tpkt(&[3, 1, 0, 0x2f]), Parse::Invalid);
        assert_eq!(tpkt(&[3, 0, 0, 4]), Parse::Invalid);
        assert_eq!(tpkt(&[0x16, 3, 1]), Parse::Invalid);
        let c = cr(Some(0x0b));
        let (code, var) = x224(&c[4..]).unwrap_or_default();
        assert_eq!(code, X224_CR);
        assert_eq!(negotiation(var), Some((NEG_REQ, 0x0b)));
        assert_eq!(protocol_names(0x0b), "SSL|HYBRID|HYBRID_EX");
        assert_eq!(protocol_names(0), "PROTOCOL_RDP");
        assert_eq!(negotiation(b"Cookie: mstshash=x"), None);
        assert_eq!(negotiation(&[2, 0, 9, 0, 1, 0, 0, 0]), None);
        assert_eq!(failure_name(6), "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER");
    }

    #[test]
    fn detects_by_content_not_port() {
        let yes = Verdict::Yes { swap: false };
        assert_eq!(detect(&cr(Some(1)), b"", 13389), yes);
        assert_eq!(detect(&tpdu(X224_CR, &neg(NEG_REQ, 1)), b"", 13389), yes);
        assert_eq!(detect(&tpdu(X224_CR, &[]), b"", 13389), yes);
        assert_eq!(detect(&cr(Some(1))[..5], b"", 3389), Verdict::Maybe);
        // S7comm's COTP CR carries TSAP parameters, not an RDP cookie.
        assert_eq!(
            detect(&tpdu(X224_CR, &[0xc1, 2, 1, 0]), b"", 102),
            Verdict::No
        );
        assert_eq!(detect(&tpdu(X224_CC, &[]), b"", 3389), Verdict::No);
        assert_eq!(detect(b"EHLO x\r\n", b"", 3389), Verdict::No);
    }

    #[test]
    fn tls_selected_offsets() {
        for selected in [1, 2, 8] {
            let t = accepted(selected);
            let rec = run_split_invariant(Proto::Rdp, &t);
            let st = rec.starttls.clone().unwrap_or_default();
            assert!(st.requested && st.accepted);
            assert_eq!(
                st.command.as_deref(),
                Some("RDP_NEG_REQ requestedProtocols=0x00000003 (SSL|HYBRID)")
            );
            assert_eq!(st.client_offset, Some(t[0].1.len() as u64));
            assert_eq!(st.server_offset, Some(19));
            assert_eq!(rec.encryption, Encryption::Starttls);
            assert_eq!(rec.app_protocol.as_deref(), Some("rdp"));
        }
        let rec = run_split_invariant(Proto::Rdp, &accepted(2));
        assert_eq!(
            rec.starttls.and_then(|s| s.reply).as_deref(),
            Some("RDP_NEG_RSP selectedProtocol=0x00000002 (HYBRID)")
        );
    }

    #[test]
    fn failure_is_refused_with_its_name() {
        let t = vec![
            (Dir::Client, cr(Some(1))),
            (Dir::Server, tpdu(X224_CC, &neg(NEG_FAILURE, 5))),
        ];
        let rec = run_split_invariant(Proto::Rdp, &t);
        assert_eq!(rec.encryption, Encryption::StarttlsRefused);
        assert_eq!(
            rec.starttls.and_then(|s| s.reply).as_deref(),
            Some("RDP_NEG_FAILURE failureCode=5 (HYBRID_REQUIRED_BY_SERVER)")
        );
    }

    #[test]
    fn standard_security_selected_or_legacy() {
        // MCS Connect Initial in an X.224 Data TPDU follows in the clear.
        let mcs = {
            let mut v = vec![TPKT_VERSION, 0, 0, 12, 2, 0xf0, 0x80];
            v.extend([0x7f, 0x65, 0x82, 0x01, 0x00]);
            v
        };
        let selected = vec![
            (Dir::Client, cr(Some(1))),
            (Dir::Server, tpdu(X224_CC, &neg(NEG_RSP, 0))),
            (Dir::Client, mcs.clone()),
        ];
        let legacy = vec![
            (Dir::Client, cr(None)),
            (Dir::Server, tpdu(X224_CC, &[])),
            (Dir::Client, mcs),
        ];
        for t in [selected, legacy] {
            let rec = run_split_invariant(Proto::Rdp, &t);
            assert_eq!(rec.encryption, Encryption::RdpStandard);
            assert!(rec.tls.is_none());
            let codes: Vec<_> = crate::assess::assess(&rec, &Default::default())
                .iter()
                .map(|f| f.code)
                .collect();
            assert_eq!(codes, vec![Code::RdpStandardSecurity]);
        }
    }
}
