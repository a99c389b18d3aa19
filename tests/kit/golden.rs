//! Golden files: output kept beside the inputs and compared byte for byte;
//! `TLSWATCH_BLESS=1 cargo test` rewrites them (after the change was checked).

use serde_json::Value;
use std::path::Path;

/// Whether this run rewrites the golden files.
pub fn blessing() -> bool {
    std::env::var_os("TLSWATCH_BLESS").is_some()
}

/// A JSON report pretty-printed (a change shows as a readable line diff), without
/// the summary's `memory` object: memory accounting follows struct layouts and
/// threads, not the capture, and is tested on its own.
pub fn pretty_without_memory(mut doc: Value) -> String {
    if let Some(summary) = doc["summary"].as_object_mut() {
        summary.remove("memory");
    }
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| panic!("{e}")) + "\n"
}

/// NDJSON with the summary's `memory` object taken out, the rest byte for byte.
pub fn ndjson_without_memory(ndjson: &str) -> String {
    let key = "\"memory\":{";
    let Some(start) = ndjson.find(key) else {
        return ndjson.to_string();
    };
    let end = ndjson[start..]
        .find('}')
        .map_or(ndjson.len(), |e| start + e + 1);
    let end = if ndjson[end..].starts_with(',') {
        end + 1
    } else {
        end
    };
    format!("{}{}", &ndjson[..start], &ndjson[end..])
}

/// What comparing with a golden file found.
#[derive(Debug, PartialEq, Eq)]
pub enum Golden {
    /// The file says the same.
    Same,
    /// The file differs: where, and how.
    Differs(String),
    /// There is no golden file.
    Absent,
    /// Blessing: the file was rewritten.
    Blessed,
}

/// Compares `got` with the golden file `path`, or rewrites it when blessing.
pub fn check(path: &Path, got: &str) -> Golden {
    if blessing() {
        std::fs::write(path, got).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return Golden::Blessed;
    }
    let Ok(want) = std::fs::read_to_string(path) else {
        return Golden::Absent;
    };
    if want == got {
        return Golden::Same;
    }
    let line = want
        .lines()
        .zip(got.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| want.lines().count().min(got.lines().count()));
    Golden::Differs(format!(
        "differs from {} at line {}:\n  want: {}\n  got:  {}",
        path.display(),
        line + 1,
        want.lines().nth(line).unwrap_or("(end)"),
        got.lines().nth(line).unwrap_or("(end)")
    ))
}

/// Fails unless `got` is what the golden file `path` says (or it was blessed).
pub fn assert_golden(path: &Path, got: &str) {
    match check(path, got) {
        Golden::Same | Golden::Blessed => {}
        Golden::Absent => panic!("{} is absent (TLSWATCH_BLESS=1 writes it)", path.display()),
        Golden::Differs(d) => {
            panic!("{d}\n(rerun with TLSWATCH_BLESS=1 after checking the change)")
        }
    }
}
