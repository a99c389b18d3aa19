//! Compact JSON writer for the output sinks: byte for byte what
//! `serde_json::to_writer` writes, but faster where records spend their time:
//! a string is checked for characters to escape eight bytes at a time and
//! written in one piece when it has none (serde_json looks at each byte), and
//! field names go out without the map-key machinery. Floats are handed to
//! serde_json (records hold none; it keeps their spelling exact).

use serde::ser::{self, Impossible, Serialize};
use std::fmt::{self, Display};
use std::io::{self, Write};

/// Writes `value` as compact JSON into `w`, in one write.
pub fn to_writer<W: Write, T: ?Sized + Serialize>(mut w: W, value: &T) -> io::Result<()> {
    BUFFER.with(|b| {
        let mut out = b.take();
        out.clear();
        let done = to_vec_into(&mut out, value).and_then(|()| w.write_all(&out));
        if out.capacity() <= KEEP_BUFFER {
            b.set(out);
        }
        done
    })
}

/// Appends `value` as compact JSON to `out`.
pub fn to_vec_into<T: ?Sized + Serialize>(out: &mut Vec<u8>, value: &T) -> io::Result<()> {
    let mut writer = Writer {
        w: std::mem::take(out),
    };
    let done = value.serialize(&mut writer);
    *out = writer.w;
    done.map_err(io::Error::from)
}

/// The largest buffer a thread keeps between writes (a record with many
/// certificates can be larger; its buffer is then dropped).
const KEEP_BUFFER: usize = 64 << 10;

thread_local! {
    static BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Why a value could not be written: the writer failed, or the value refused.
#[derive(Debug)]
pub enum Error {
    Io(io::Error),
    Custom(String),
}

impl Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => e.fmt(f),
            Error::Custom(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: Display>(msg: T) -> Self {
        Error::Custom(msg.to_string())
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(e) => e,
            Error::Custom(m) => io::Error::other(m),
        }
    }
}

type Result<T> = std::result::Result<T, Error>;

/// The serializer: it appends to a byte vector (small appends to a vector cost
/// a few instructions; through `io::Write` each is a call).
pub struct Writer {
    w: Vec<u8>,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes in `x` is a control character, `"` or `\`
/// (exact: each test is the classic "has a byte less than n" / "has a zero byte").
fn word_needs_escape(x: u64) -> bool {
    let below_space = x.wrapping_sub(ONES * 0x20) & !x;
    let q = x ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let b = x ^ (ONES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(ONES) & !b;
    (below_space | quote | backslash) & HIGHS != 0
}

fn byte_needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The same test over four bytes.
fn quad_needs_escape(x: u32) -> bool {
    const ONES: u32 = 0x0101_0101;
    let below_space = x.wrapping_sub(ONES * 0x20) & !x;
    let q = x ^ (ONES * u32::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let b = x ^ (ONES * u32::from(b'\\'));
    let backslash = b.wrapping_sub(ONES) & !b;
    (below_space | quote | backslash) & 0x8080_8080 != 0
}

/// Whether the bytes after `at` (fewer than eight) hold one to escape: tested as
/// words that may overlap bytes already found clean.
fn tail_needs_escape(bytes: &[u8], at: usize) -> bool {
    let Some(tail) = bytes.get(at..) else {
        return false;
    };
    if tail.is_empty() {
        return false;
    }
    if let Some(last) = bytes.last_chunk::<8>() {
        return word_needs_escape(u64::from_le_bytes(*last));
    }
    match (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
        (Some(first), Some(last)) => {
            quad_needs_escape(u32::from_le_bytes(*first))
                || quad_needs_escape(u32::from_le_bytes(*last))
        }
        _ => bytes.iter().any(|&b| byte_needs_escape(b)),
    }
}

/// Where the first byte to escape lies in `bytes`, if any.
fn first_escape(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(&word) = bytes.get(at..).and_then(|b| b.first_chunk::<8>()) {
        if word_needs_escape(u64::from_le_bytes(word)) {
            break;
        }
        at += 8;
    }
    if bytes.len() - at < 8 && !tail_needs_escape(bytes, at) {
        return None;
    }
    bytes
        .get(at..)?
        .iter()
        .position(|&b| byte_needs_escape(b))
        .map(|p| at + p)
}

/// Writes the escaped contents of a string (without quotes), as serde_json escapes them.
fn escaped(w: &mut Vec<u8>, s: &str) {
    let mut rest = s.as_bytes();
    while let Some(at) = first_escape(rest) {
        let (run, tail) = rest.split_at(at);
        let Some((&byte, tail)) = tail.split_first() else {
            break;
        };
        w.extend_from_slice(run);
        let short = match byte {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            0x08 => Some(b'b'),
            0x0c => Some(b'f'),
            b'\n' => Some(b'n'),
            b'\r' => Some(b'r'),
            b'\t' => Some(b't'),
            _ => None,
        };
        match short {
            Some(c) => w.extend_from_slice(&[b'\\', c]),
            None => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let hi = HEX.get(usize::from(byte >> 4)).copied().unwrap_or(b'0');
                let lo = HEX.get(usize::from(byte & 0xf)).copied().unwrap_or(b'0');
                w.extend_from_slice(&[b'\\', b'u', b'0', b'0', hi, lo]);
            }
        }
        rest = tail;
    }
    w.extend_from_slice(rest);
}

/// Writes a quoted, escaped string.
fn string(w: &mut Vec<u8>, s: &str) {
    w.reserve(s.len() + 2);
    w.push(b'"');
    escaped(w, s);
    w.push(b'"');
}

/// A `fmt::Write` that escapes what is written into the bytes.
struct Escaping<'a> {
    w: &'a mut Vec<u8>,
}

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escaped(self.w, s);
        Ok(())
    }
}

/// Writes `value`'s `Display` as a quoted, escaped string.
fn display_string<T: ?Sized + Display>(w: &mut Vec<u8>, value: &T) -> Result<()> {
    w.extend_from_slice(b"\"");
    if fmt::write(&mut Escaping { w }, format_args!("{value}")).is_err() {
        return Err(Error::Custom("a value's Display failed".into()));
    }
    w.extend_from_slice(b"\"");
    Ok(())
}

fn integer<I: itoa::Integer>(w: &mut Vec<u8>, i: I) -> Result<()> {
    w.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
    Ok(())
}

/// A float as serde_json spells it (`null` when not finite).
fn float<F: Serialize>(w: &mut Vec<u8>, f: F) -> Result<()> {
    serde_json::to_writer(w, &f).map_err(|e| Error::Io(io::Error::from(e)))
}

/// A serializer's integer methods, each writing its value `v` with `write` (`this` is `self`).
macro_rules! integers {
    ($this:ident, $v:ident => $write:expr) => {
        integers!(@each $this, $v, $write; serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64, serialize_u128: u128);
    };
    (@each $this:ident, $v:ident, $write:expr; $($method:ident: $t:ty),*) => {$(
        fn $method(self, $v: $t) -> Result<()> {
            let $this = self;
            $write
        }
    )*};
}

/// An array, object or variant being written: whether a member was written yet,
/// and what closes it.
pub struct Compound<'a> {
    ser: &'a mut Writer,
    first: bool,
    close: &'static [u8],
}

impl<'a> Compound<'a> {
    fn open(ser: &'a mut Writer, open: &[u8], close: &'static [u8]) -> Result<Self> {
        ser.w.extend_from_slice(open);
        Ok(Compound {
            ser,
            first: true,
            close,
        })
    }

    fn comma(&mut self) -> Result<()> {
        if !self.first {
            self.ser.w.extend_from_slice(b",");
        }
        self.first = false;
        Ok(())
    }

    fn element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        self.comma()?;
        value.serialize(&mut *self.ser)
    }

    fn field<T: ?Sized + Serialize>(&mut self, key: &str, value: &T) -> Result<()> {
        self.comma()?;
        string(&mut self.ser.w, key);
        self.ser.w.extend_from_slice(b":");
        value.serialize(&mut *self.ser)
    }

    fn close(self) -> Result<()> {
        self.ser.w.extend_from_slice(self.close);
        Ok(())
    }
}

impl Writer {
    /// `{"variant":` before a variant's content (closed by the content's end and `}`).
    fn variant_head(&mut self, variant: &str) -> Result<()> {
        self.w.extend_from_slice(b"{");
        string(&mut self.w, variant);
        self.w.extend_from_slice(b":");
        Ok(())
    }
}

impl<'a> ser::Serializer for &'a mut Writer {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Result<()> {
        self.w.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    integers!(this, v => integer(&mut this.w, v));
    fn serialize_f32(self, v: f32) -> Result<()> {
        float(&mut self.w, v)
    }
    fn serialize_f64(self, v: f64) -> Result<()> {
        float(&mut self.w, v)
    }
    fn serialize_char(self, v: char) -> Result<()> {
        string(&mut self.w, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<()> {
        string(&mut self.w, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        let mut seq = Compound::open(self, b"[", b"]")?;
        for b in v {
            ser::SerializeSeq::serialize_element(&mut seq, b)?;
        }
        seq.close()
    }
    fn serialize_none(self) -> Result<()> {
        self.serialize_unit()
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<()> {
        self.w.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
    ) -> Result<()> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<()> {
        self.variant_head(variant)?;
        value.serialize(&mut *self)?;
        self.w.extend_from_slice(b"}");
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a>> {
        Compound::open(self, b"[", b"]")
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Compound<'a>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>> {
        self.variant_head(variant)?;
        Compound::open(self, b"[", b"]}")
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a>> {
        Compound::open(self, b"{", b"}")
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Compound<'a>> {
        Compound::open(self, b"{", b"}")
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>> {
        self.variant_head(variant)?;
        Compound::open(self, b"{", b"}}")
    }
    fn collect_str<T: ?Sized + Display>(self, value: &T) -> Result<()> {
        display_string(&mut self.w, value)
    }
}

/// The serde traits of arrays, tuples and objects, each adding a member through
/// [`Compound`]'s own methods.
macro_rules! compound {
    ($($name:ident :: $method:ident ($($key:ident: $kt:ty)?) => $call:ident;)*) => {$(
        impl ser::$name for Compound<'_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: ?Sized + Serialize>(&mut self, $($key: $kt,)? value: &T) -> Result<()> {
                self.$call($($key,)? value)
            }
            fn end(self) -> Result<()> {
                self.close()
            }
        }
    )*};
}

compound! {
    SerializeSeq::serialize_element() => element;
    SerializeTuple::serialize_element() => element;
    SerializeTupleStruct::serialize_field() => element;
    SerializeTupleVariant::serialize_field() => element;
    SerializeStruct::serialize_field(key: &'static str) => field;
    SerializeStructVariant::serialize_field(key: &'static str) => field;
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<()> {
        self.comma()?;
        key.serialize(MapKey { w: &mut self.ser.w })
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        self.ser.w.extend_from_slice(b":");
        value.serialize(&mut *self.ser)
    }
    fn end(self) -> Result<()> {
        self.close()
    }
}

/// A map key: strings as they are; numbers and booleans quoted, as serde_json
/// writes them; anything else refused.
struct MapKey<'a> {
    w: &'a mut Vec<u8>,
}

fn key_must_be_a_string() -> Error {
    Error::Custom("key must be a string".into())
}

impl MapKey<'_> {
    fn quoted(self, text: &[u8]) -> Result<()> {
        self.w.extend_from_slice(b"\"");
        self.w.extend_from_slice(text);
        self.w.extend_from_slice(b"\"");
        Ok(())
    }
    fn integer<I: itoa::Integer>(self, i: I) -> Result<()> {
        self.quoted(itoa::Buffer::new().format(i).as_bytes())
    }
    fn float<F: Serialize>(self, f: F) -> Result<()> {
        let text = serde_json::to_vec(&f).map_err(|e| Error::Io(io::Error::from(e)))?;
        if text == b"null" {
            return Err(Error::Custom(
                "float key must be finite (got NaN or +/-inf)".into(),
            ));
        }
        self.quoted(&text)
    }
}

impl ser::Serializer for MapKey<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_bool(self, v: bool) -> Result<()> {
        self.quoted(if v { b"true" } else { b"false" })
    }
    integers!(this, v => this.integer(v));
    fn serialize_f32(self, v: f32) -> Result<()> {
        self.float(v)
    }
    fn serialize_f64(self, v: f64) -> Result<()> {
        self.float(v)
    }
    fn serialize_char(self, v: char) -> Result<()> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<()> {
        string(self.w, v);
        Ok(())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<()> {
        Err(key_must_be_a_string())
    }
    fn serialize_none(self) -> Result<()> {
        Err(key_must_be_a_string())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _value: &T) -> Result<()> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit(self) -> Result<()> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
    ) -> Result<()> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _i: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<()> {
        Err(key_must_be_a_string())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _i: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(key_must_be_a_string())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self::SerializeStruct> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _i: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(key_must_be_a_string())
    }
    fn collect_str<T: ?Sized + Display>(self, value: &T) -> Result<()> {
        display_string(self.w, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use std::collections::BTreeMap;

    fn ours<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
        let mut out = Vec::new();
        to_writer(&mut out, v).unwrap();
        out
    }

    fn same<T: Serialize + ?Sized>(v: &T) {
        let want = serde_json::to_vec(v).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours(v)),
            String::from_utf8_lossy(&want)
        );
    }

    /// Every ASCII character, alone and at every offset around the eight-byte
    /// words, among plain text and multi-byte characters.
    #[test]
    fn strings_escape_as_serde_json_does() {
        for c in (0u8..0x80)
            .map(char::from)
            .chain(['é', '€', '𝄞', '\u{7f}', '\u{2028}'])
        {
            same(&c.to_string());
            same(&c);
            for len in 0..20 {
                for at in 0..=len {
                    let mut s: String = "abcdefghijklmnopqrstu".chars().take(len).collect();
                    s.insert(at, c);
                    same(&s);
                    s.push('ü');
                    same(&s);
                }
            }
        }
        same("");
        same("\"\\\u{0}\u{1f}\n\r\t\u{8}\u{c}\u{b}");
    }

    /// A word holding an escapable byte is found whatever its neighbours
    /// (high bytes and borrows across bytes must not hide or invent one).
    #[test]
    fn the_word_test_is_exact() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let bytes = seed.to_le_bytes();
            let want = bytes.iter().any(|&b| byte_needs_escape(b));
            assert_eq!(word_needs_escape(seed), want, "{bytes:?}");
        }
        for b in 0..=255u8 {
            for pos in 0..8 {
                let mut bytes = [b'a'; 8];
                bytes[pos] = b;
                let want = byte_needs_escape(b);
                assert_eq!(
                    word_needs_escape(u64::from_le_bytes(bytes)),
                    want,
                    "{b} at {pos}"
                );
                let mut high = [0xffu8; 8];
                high[pos] = b;
                assert_eq!(
                    word_needs_escape(u64::from_le_bytes(high)),
                    want,
                    "{b} at {pos} in 0xff"
                );
            }
        }
    }

    #[derive(Serialize)]
    enum Shape {
        Unit,
        Newtype(u8),
        Tuple(i32, &'static str),
        Struct { a: bool, b: Option<u64> },
    }

    #[derive(Serialize)]
    struct Unit;

    #[derive(Serialize)]
    struct Wrapper(String);

    #[derive(Serialize)]
    struct Pair(u8, i8);

    #[derive(Serialize)]
    struct Everything {
        shapes: Vec<Shape>,
        unit: (),
        unit_struct: Unit,
        wrapper: Wrapper,
        pair: Pair,
        empty: Vec<u8>,
        #[serde(with = "serde_bytes_like")]
        bytes: Vec<u8>,
        ints: (i8, i16, i32, i64, i128, u8, u16, u32, u64, u128),
        extremes: (i64, u64, i128, u128),
        floats: (f32, f64, f64, f64, f64),
        by_string: BTreeMap<String, Vec<Option<char>>>,
        by_int: BTreeMap<i32, bool>,
        by_u64: BTreeMap<u64, ()>,
        by_bool: BTreeMap<bool, &'static str>,
        by_char: BTreeMap<char, u8>,
        #[serde(flatten)]
        flat: BTreeMap<String, u8>,
        shown: Shown,
        none: Option<Unit>,
    }

    mod serde_bytes_like {
        pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v)
        }
    }

    struct Shown(&'static str);

    impl Serialize for Shown {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            s.collect_str(&format_args!("<{}>", self.0))
        }
    }

    #[test]
    fn every_shape_of_the_data_model_matches() {
        let v = Everything {
            shapes: vec![
                Shape::Unit,
                Shape::Newtype(7),
                Shape::Tuple(-3, "x\"y"),
                Shape::Struct { a: true, b: None },
                Shape::Struct {
                    a: false,
                    b: Some(u64::MAX),
                },
            ],
            unit: (),
            unit_struct: Unit,
            wrapper: Wrapper("w\n".into()),
            pair: Pair(1, -1),
            empty: vec![],
            bytes: vec![0, 1, 255],
            ints: (-8, -16, -32, -64, -128, 8, 16, 32, 64, 128),
            extremes: (i64::MIN, u64::MAX, i128::MIN, u128::MAX),
            floats: (1.5, 0.1, f64::NAN, -0.0, 1e300),
            by_string: [("k\u{1}".to_string(), vec![Some('"'), None])].into(),
            by_int: [(-5, true), (12, false)].into(),
            by_u64: [(u64::MAX, ())].into(),
            by_bool: [(true, "t"), (false, "f")].into(),
            by_char: [('\\', 1)].into(),
            flat: [("flat\t".to_string(), 2)].into(),
            shown: Shown("a\"b\u{7}"),
            none: None,
        };
        same(&v);
        same(&serde_json::json!({"a": [1, {"b": null}, "c\u{2}"], "d": {}, "e": []}));
    }

    /// Random JSON trees (seeded): strings of controls, quotes, backslashes,
    /// ASCII and multi-byte characters of every length, numbers of every kind.
    #[test]
    fn random_trees_match() {
        struct Rng(u64);
        impl Rng {
            fn next(&mut self) -> u64 {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                self.0
            }
            fn below(&mut self, n: u64) -> u64 {
                self.next() % n
            }
        }
        const CHARS: [char; 12] = [
            'a', 'Z', '0', ' ', '"', '\\', '\n', '\u{1}', '\u{1f}', '\u{7f}', 'é', '😀',
        ];
        fn text(r: &mut Rng) -> String {
            (0..r.below(40))
                .map(|_| CHARS[r.below(12) as usize])
                .collect()
        }
        fn tree(r: &mut Rng, depth: u32) -> serde_json::Value {
            use serde_json::Value;
            match r.below(if depth == 0 { 6 } else { 8 }) {
                0 => Value::Null,
                1 => Value::Bool(r.below(2) == 1),
                2 => Value::from(r.next() as i64),
                3 => Value::from(r.next()),
                4 => Value::from(
                    f64::from_bits(r.next() & 0x7fef_ffff_ffff_ffff)
                        * if r.below(2) == 0 { 1.0 } else { -1.0 },
                ),
                5 => Value::String(text(r)),
                6 => Value::Array((0..r.below(5)).map(|_| tree(r, depth - 1)).collect()),
                _ => Value::Object(
                    (0..r.below(5))
                        .map(|_| (text(r), tree(r, depth - 1)))
                        .collect(),
                ),
            }
        }
        let mut r = Rng(0x2545_f491_4f6c_dd1d);
        for _ in 0..3000 {
            same(&tree(&mut r, 4));
        }
    }

    #[test]
    fn non_string_keys_are_refused() {
        let v: BTreeMap<Vec<u8>, u8> = [(vec![1], 1)].into();
        assert!(serde_json::to_vec(&v).is_err());
        let mut out = Vec::new();
        let err = to_writer(&mut out, &v).unwrap_err();
        assert!(err.to_string().contains("key must be a string"), "{err}");
        let nan: BTreeMap<String, f64> = [("x".into(), f64::NAN)].into();
        same(&nan);
    }

    /// The writer's failure is the error returned, not swallowed.
    #[test]
    fn a_failing_writer_fails_the_write() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let err = to_writer(Full, &Shown("x")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        let err = to_writer(Full, &vec!["a"]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    }
}
