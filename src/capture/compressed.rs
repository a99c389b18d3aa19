//! Compressed captures (gzip, zstd, xz, bzip2, lz4), recognised by their magic
//! number as tshark recognises them, and decompressed as a stream: memory is the
//! decoder's window, whatever the size of the file or of what it holds.
//!
//! In: the first bytes of an input and the input. Out: a reader of the capture
//! inside (decompressed in a thread of its own, ahead of the reader), and what
//! became of the compressed stream (how many compressed bytes were read,
//! whether it ended early).

use std::io::{self, BufRead, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Bytes of an input needed to tell every format this module knows.
pub const SNIFF: usize = 6;

/// Compressed bytes buffered ahead of a decoder that reads in small pieces.
const COMPRESSED_BUFFER: usize = 1 << 16;

/// How an input is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Xz,
    Bzip2,
    Lz4,
}

impl Compression {
    /// The format's name, as its command-line tool is called.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
            Compression::Bzip2 => "bzip2",
            Compression::Lz4 => "lz4",
        }
    }

    /// Appended to a message about the capture inside: nothing for an
    /// uncompressed input, else ` (gzip-compressed)` and the like.
    pub fn suffix(self) -> String {
        match self {
            Compression::None => String::new(),
            c => format!(" ({}-compressed)", c.name()),
        }
    }

    /// The same, inside a parenthesis: `, gzip-compressed`.
    pub fn listed(self) -> String {
        match self {
            Compression::None => String::new(),
            c => format!(", {}-compressed", c.name()),
        }
    }

    /// What byte offsets into the capture count: `decompressed ` bytes when compressed.
    pub fn offsets(self) -> &'static str {
        match self {
            Compression::None => "",
            _ => "decompressed ",
        }
    }

    /// The format whose magic number `head` (the first bytes of an input) begins
    /// with; [`Compression::None`] for anything else.
    pub fn sniff(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            // A zstd skippable frame first (pzstd writes one before each frame).
            [0x50..=0x5f, 0x2a, 0x4d, 0x18, ..] => Compression::Zstd,
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Compression::Xz,
            [b'B', b'Z', b'h', b'1'..=b'9', ..] => Compression::Bzip2,
            // The frame format, and the legacy format of `lz4 -l`.
            [0x04, 0x22, 0x4d, 0x18, ..] | [0x02, 0x21, 0x4c, 0x18, ..] => Compression::Lz4,
            _ => Compression::None,
        }
    }
}

/// What the compressed stream under a decoder did, shared with the reader above.
#[derive(Debug, Default)]
pub struct Raw {
    /// Compressed bytes read.
    bytes: AtomicU64,
    /// The compressed input has ended.
    ended: AtomicBool,
}

impl Raw {
    /// Compressed bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Whether the compressed input has ended.
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }
}

/// The compressed input, counting what passes into [`Raw`].
struct Tail<R> {
    input: R,
    raw: Arc<Raw>,
}

impl<R: Read> Read for Tail<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.input.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.raw.ended.store(true, Ordering::Relaxed);
        }
        self.raw.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A decompressing reader. Its errors say which format failed and where; an
/// error after the compressed input ended has kind `UnexpectedEof` (the file
/// was cut short), any other is corrupt data.
pub struct Decompressed<'a> {
    kind: Compression,
    inner: Box<dyn Read + Send + 'a>,
    raw: Arc<Raw>,
}

impl Decompressed<'_> {
    pub fn kind(&self) -> Compression {
        self.kind
    }

    /// The counters of the compressed input.
    pub fn raw(&self) -> Arc<Raw> {
        Arc::clone(&self.raw)
    }
}

impl Read for Decompressed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let name = self.kind.name();
                let at = self.raw.bytes();
                Err(if self.raw.ended() {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{name} stream cut off after {at} compressed bytes ({e})"),
                    )
                } else {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("corrupt {name} data before compressed byte {at}: {e}"),
                    )
                })
            }
        }
    }
}

/// A decoder of `kind` reading `input` (which starts at the magic number).
pub fn decompress<'a, R: Read + Send + 'a>(kind: Compression, input: R) -> Decompressed<'a> {
    let raw = Arc::new(Raw::default());
    let tail = Tail {
        input,
        raw: Arc::clone(&raw),
    };
    let inner: Box<dyn Read + Send + 'a> = match kind {
        Compression::None => Box::new(tail),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(tail)),
        Compression::Zstd => Box::new(ZstdFrames::new(tail)),
        Compression::Xz => Box::new(lzma_rust2::XzReader::new(
            BufReader::with_capacity(COMPRESSED_BUFFER, tail),
            true,
        )),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(tail)),
        Compression::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(
            BufReader::with_capacity(COMPRESSED_BUFFER, tail),
        )),
    };
    Decompressed { kind, inner, raw }
}

/// Decompressed bytes handed from the decompressing thread at a time.
const AHEAD_CHUNK: usize = 1 << 18;
/// Chunks decompressed ahead of the reader at most.
const AHEAD_CHUNKS: usize = 4;

/// Runs `stream` in a thread of `scope`, a few chunks ahead of the reader it
/// returns, so decompressing and parsing the capture share the work between two
/// cores. The thread ends at the end of the stream, on an error (handed to the
/// reader), or when the reader is dropped; dropping the reader waits for it.
pub fn read_ahead<'scope, 'env: 'scope>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    mut stream: Decompressed<'env>,
) -> Ahead<'scope> {
    let (tx, rx) = std::sync::mpsc::sync_channel(AHEAD_CHUNKS);
    let thread = scope.spawn(move || {
        loop {
            let mut chunk = vec![0; AHEAD_CHUNK];
            let mut filled = 0;
            let mut failed = None;
            while filled < chunk.len() {
                match stream.read(chunk.get_mut(filled..).unwrap_or_default()) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            chunk.truncate(filled);
            if filled > 0 && tx.send(Ok(chunk)).is_err() {
                return;
            }
            if let Some(e) = failed {
                let _ = tx.send(Err(e));
                return;
            }
            if filled == 0 {
                return;
            }
        }
    });
    Ahead {
        rx,
        thread: Some(thread),
        chunk: Vec::new(),
        pos: 0,
    }
}

/// The reading end of [`read_ahead`].
pub struct Ahead<'scope> {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    thread: Option<std::thread::ScopedJoinHandle<'scope, ()>>,
    chunk: Vec<u8>,
    pos: usize,
}

/// Stops the decompressing thread and joins it. The scope would only wait for
/// its closure to return; joining also waits for the thread to exit, its
/// thread-local destructors run, so nothing of it outlives the reader.
impl Drop for Ahead<'_> {
    fn drop(&mut self) {
        // The thread's next send fails once its receiver is gone, and it returns.
        let (_, none) = std::sync::mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.rx, none));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Read for Ahead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The stream ended (or its thread did).
                Err(_) => return Ok(0),
            }
        }
        let left = self.chunk.get(self.pos..).unwrap_or_default();
        let n = left.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), left.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.pos += n;
        Ok(n)
    }
}

/// Every frame of a zstd stream in turn (ruzstd decodes one frame at a time),
/// skippable frames skipped, each frame's checksum checked when it has one.
struct ZstdFrames<R: Read> {
    source: BufReader<R>,
    decoder: ruzstd::decoding::FrameDecoder,
    /// A frame has begun and not yet been read to its end.
    in_frame: bool,
}

impl<R: Read> ZstdFrames<R> {
    fn new(input: R) -> Self {
        ZstdFrames {
            source: BufReader::with_capacity(COMPRESSED_BUFFER, input),
            decoder: ruzstd::decoding::FrameDecoder::new(),
            in_frame: false,
        }
    }

    /// Starts the next frame; false at the end of the stream.
    fn next_frame(&mut self) -> io::Result<bool> {
        use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
        loop {
            if self.source.fill_buf()?.is_empty() {
                return Ok(false);
            }
            match self.decoder.reset(&mut self.source) {
                Ok(()) => return Ok(true),
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let want = u64::from(length);
                    let skipped = io::copy(&mut (&mut self.source).take(want), &mut io::sink())?;
                    if skipped < want {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "skippable frame cut off",
                        ));
                    }
                }
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        }
    }

    /// The frame's checksum, when it carries one, against what was decoded.
    fn check_sum(&self) -> io::Result<()> {
        match (
            self.decoder.get_checksum_from_data(),
            self.decoder.get_calculated_checksum(),
        ) {
            (Some(want), Some(got)) if want != got => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame checksum {want:08x} does not match the data ({got:08x})"),
            )),
            _ => Ok(()),
        }
    }
}

impl<R: Read> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use ruzstd::decoding::BlockDecodingStrategy;
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if !self.next_frame()? {
                    return Ok(0);
                }
                self.in_frame = true;
            }
            while self.decoder.can_collect() == 0 && !self.decoder.is_finished() {
                self.decoder
                    .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBlocks(1))
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
            let n = self.decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            self.check_sum()?;
            self.in_frame = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sample() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    fn through(kind: Compression, bytes: &[u8]) -> io::Result<Vec<u8>> {
        assert_eq!(Compression::sniff(bytes), kind);
        let mut out = Vec::new();
        decompress(kind, bytes).read_to_end(&mut out)?;
        Ok(out)
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    }

    /// Dropping the reader of a stream decompressed ahead, mid-stream, returns
    /// once the decompressing thread has exited: its thread-local destructors
    /// have run by then (a thread the scope merely counts as finished may still
    /// be running them, and a leak checker then sees their memory as leaked).
    #[test]
    fn dropping_the_reader_ahead_waits_for_its_thread_to_exit() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static EXITED: AtomicUsize = AtomicUsize::new(0);
        struct OnExit;
        impl Drop for OnExit {
            fn drop(&mut self) {
                // Let the scope see the closure finish well before this runs.
                std::thread::sleep(std::time::Duration::from_millis(50));
                EXITED.fetch_add(1, Ordering::SeqCst);
            }
        }
        thread_local! {
            static MARK: std::cell::RefCell<Option<OnExit>> = const { std::cell::RefCell::new(None) };
        }
        /// Compressed input that marks the thread reading it, 64 bytes a read
        /// (so that the decompressing thread reads most of it, not only the
        /// thread that starts the decoder).
        struct Marking<R>(R);
        impl<R: Read> Read for Marking<R> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                MARK.with(|m| {
                    m.borrow_mut().get_or_insert_with(|| OnExit);
                });
                let n = buf.len().min(64);
                self.0.read(buf.get_mut(..n).unwrap_or_default())
            }
        }
        let data = gzip(&sample());
        for whole in [false, true] {
            let before = EXITED.load(Ordering::SeqCst);
            std::thread::scope(|scope| {
                let mut ahead =
                    read_ahead(scope, decompress(Compression::Gzip, Marking(&data[..])));
                let mut first = [0u8; 100];
                ahead.read_exact(&mut first).unwrap();
                if whole {
                    let mut rest = Vec::new();
                    ahead.read_to_end(&mut rest).unwrap();
                    assert_eq!(first.len() + rest.len(), sample().len());
                }
                drop(ahead);
                assert_eq!(
                    EXITED.load(Ordering::SeqCst),
                    before + 1,
                    "read to the end: {whole}"
                );
            });
        }
    }

    #[test]
    fn magic_numbers() {
        assert_eq!(
            Compression::sniff(&[0xd4, 0xc3, 0xb2, 0xa1]),
            Compression::None
        );
        assert_eq!(Compression::sniff(b"BZh9"), Compression::Bzip2);
        assert_eq!(Compression::sniff(b"BZh0"), Compression::None);
        assert_eq!(Compression::sniff(&[0x1f]), Compression::None);
        assert_eq!(
            Compression::sniff(&[0x5e, 0x2a, 0x4d, 0x18]),
            Compression::Zstd
        );
    }

    #[test]
    fn concatenated_members_and_frames_are_all_read() {
        let data = sample();
        let (a, b) = data.split_at(123_457);
        let mut two = gzip(a);
        two.extend(gzip(b));
        assert_eq!(through(Compression::Gzip, &two).unwrap(), data);
        // A skippable frame, then two frames.
        let mut frames = vec![0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9];
        frames.extend(zstd(a));
        frames.extend(zstd(b));
        assert_eq!(through(Compression::Zstd, &frames).unwrap(), data);
    }

    #[test]
    fn cut_off_and_corrupt_streams_are_told_apart() {
        let data = sample();
        for packed in [gzip(&data), zstd(&data)] {
            let kind = Compression::sniff(&packed);
            let cut = &packed[..packed.len() / 2];
            let e = through(kind, cut).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{kind:?}: {e}");
            assert!(e.to_string().contains("cut off"), "{e}");
            let mut bad = packed.clone();
            let mid = bad.len() / 3;
            bad[mid..mid + 64].fill(0x55);
            let e = through(kind, &bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{kind:?}: {e}");
            assert!(e.to_string().starts_with("corrupt"), "{e}");
        }
    }

    #[test]
    fn zstd_checksum_mismatch_is_corrupt() {
        let data = sample();
        // ruzstd writes a checksum: flip its last byte.
        let mut packed = zstd(&data);
        let last = packed.len() - 1;
        packed[last] ^= 0xff;
        let err = through(Compression::Zstd, &packed).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }
}
