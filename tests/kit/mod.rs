//! The test kit every integration test file shares (`mod kit;`): paths, the shared
//! captures and their skip message, running the binary and reading its reports,
//! byte-built captures (pcap and pcapng, Ethernet, IPv4, IPv6, TCP, UDP, TLS and
//! DTLS handshakes), golden files and a seeded random source.
//!
//! Each test file uses a part of it, so what one file leaves unused is no warning.
#![allow(dead_code)]

pub mod golden;
pub mod net;
pub mod pcap;
pub mod quic;
pub mod report;
pub mod tls;

use std::collections::BTreeMap;
use std::ops::Index;
use std::path::{Path, PathBuf};

/// The checkout (the crate's manifest directory).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file or folder under `fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    root().join("fixtures").join(rel)
}

/// A path as a command-line argument.
pub fn arg(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("{}: not UTF-8", path.display()))
}

/// A path for `name` in this test process's own temporary folder.
pub fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tlswatch-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir.join(name)
}

/// Where `../shared` may stand: beside the checkout (CI), or two levels up (a worktree).
const SHARED: [&str; 2] = ["../shared", "../../shared"];

/// `rel` under `../shared` (real captures and tools), when it is there.
pub fn shared(rel: &str) -> Option<PathBuf> {
    SHARED
        .iter()
        .map(|s| root().join(s).join(rel))
        .find(|p| p.exists())
}

/// `rel` under `../shared`; when it is absent, says on standard error that what
/// needs it is skipped.
pub fn shared_or_skip(rel: &str) -> Option<PathBuf> {
    let found = shared(rel);
    if found.is_none() {
        eprintln!(
            "skipped: {} is absent",
            root().join(SHARED[0]).join(rel).display()
        );
    }
    found
}

/// The pcap and pcapng files under `dir` and its subfolders, sorted.
pub fn capture_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// The recorded fixture captures that have golden reports (fixtures/README.md).
pub fn recorded_captures() -> Vec<PathBuf> {
    ["tls", "starttls", "binary", "udp", "depth", "proxy"]
        .iter()
        .flat_map(|sub| capture_files(&fixture(sub)))
        .collect()
}

/// One row of a tab-separated file with a header line.
#[derive(Clone, Debug)]
pub struct TsvRow {
    /// 1-based line number in the file.
    pub line: usize,
    cols: BTreeMap<String, String>,
}

impl TsvRow {
    /// The cell of column `col`, or `-` when the row has none.
    pub fn get(&self, col: &str) -> &str {
        self.cols.get(col).map_or("-", String::as_str)
    }
}

impl Index<&str> for TsvRow {
    type Output = String;

    fn index(&self, col: &str) -> &String {
        self.cols
            .get(col)
            .unwrap_or_else(|| panic!("line {}: no column {col}", self.line))
    }
}

/// The rows of a tab-separated file whose first line names the columns (blank lines
/// left out).
pub fn tsv_rows(path: &Path) -> Vec<TsvRow> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    lines
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(n, l)| TsvRow {
            line: n + 2,
            cols: header
                .iter()
                .map(|h| h.to_string())
                .zip(l.split('\t').map(String::from))
                .collect(),
        })
        .collect()
}

/// The cells of a headerless tab-separated list (`#` lines and blank lines left
/// out); empty when the file is absent.
pub fn tsv_lines(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').map(String::from).collect())
        .collect()
}

/// A seeded xorshift source: the same numbers on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}
