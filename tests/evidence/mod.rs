//! The evidence behind each verdict: packet numbers and Community IDs against
//! tshark, transcripts, and flows written back out to a capture.

use super::kit;
use super::{TupleKey, assert_references, reference_mismatches, reference_sets};
use kit::fixture;
use serde_json::Value;
use std::path::Path;

/// The frame fields of `fixtures/FRAMES*.tsv` (`fixtures/tools/frames_expect.py`).
const FRAME_FIELDS: &[&str] = &[
    "first",
    "last",
    "client_hello",
    "server_hello",
    "certificate",
    "first_encrypted",
    "starttls_command",
    "starttls_reply",
];

/// Compares tlswatch's frames and Community ID with the rows tshark gave.
fn frame_mismatches(tsv: &Path, base: &Path) -> (usize, Vec<String>) {
    let exceptions: Vec<(String, String, String)> =
        kit::tsv_lines(&fixture("FRAMES-exceptions.tsv"))
            .into_iter()
            .filter_map(|c| Some((c.first()?.clone(), c.get(1)?.clone(), c.get(2)?.clone())))
            .collect();
    reference_mismatches(tsv, base, &mut |row, key: &TupleKey, candidates, errors| {
        let candidates: Vec<&Value> = candidates
            .iter()
            .filter(|f| f["transport"].as_str() == Some(row["transport"].as_str()))
            .collect();
        let mut checked = 0;
        for field in FRAME_FIELDS.iter().copied().chain(["community_id"]) {
            let want = &row[field];
            let excepted = exceptions
                .iter()
                .any(|(f, p, x)| *f == row["file"] && *p == row["client_port"] && x == field);
            if want == "-" || excepted {
                continue;
            }
            checked += 1;
            let got: Vec<String> = candidates
                .iter()
                .map(|f| match field {
                    "community_id" => f[field].as_str().unwrap_or("-").to_string(),
                    _ => f["frames"][field]
                        .as_u64()
                        .map_or("-".to_string(), |n| n.to_string()),
                })
                .collect();
            if !got.iter().any(|g| g == want) {
                errors.push(format!(
                    "{} {key:?} {field}: tshark {want}, tlswatch {got:?}",
                    row["file"]
                ));
            }
        }
        checked
    })
}

/// Every flow's packet numbers (first and last packet, the hellos, the
/// certificate, the first encrypted record, the STARTTLS request and its answer)
/// are where tshark shows them, and its Community ID is tshark's, over the
/// fixtures and the shared captures, TCP and UDP.
#[test]
fn frames_and_community_id_match_tshark() {
    assert_references(
        reference_sets("FRAMES", 661, 822),
        "values",
        frame_mismatches,
    );
}
