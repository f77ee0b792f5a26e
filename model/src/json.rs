//! The plan's canonical text, written fast.
//!
//! A plan file is `serde_json`'s pretty JSON with a two-space indent, one host per line. A
//! million hosts' plan is over 100 MB of it, and `serde_json`'s `PrettyFormatter` writes each
//! line break, and each level of indent, as a write of its own. [`Pretty`] writes the same
//! bytes with one write per line break and its indent.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::Formatter;

/// Depths whose indent is one slice of [`LINES`]; deeper ones (no plan has them) are written
/// a level at a time.
const MAX_DEPTH: usize = 32;

/// `,`, a line break, and the indent of [`MAX_DEPTH`] levels.
static LINES: [u8; 2 + 2 * MAX_DEPTH] = {
    let mut lines = [b' '; 2 + 2 * MAX_DEPTH];
    lines[0] = b',';
    lines[1] = b'\n';
    lines
};

/// `serde_json`'s `PrettyFormatter` with a two-space indent, byte for byte.
#[derive(Default)]
struct Pretty {
    depth: usize,
    has_value: bool,
}

impl Pretty {
    /// A comma when `comma`, a line break, and the indent of the current depth.
    fn line<W: ?Sized + Write>(&self, writer: &mut W, comma: bool) -> io::Result<()> {
        let start = usize::from(!comma);
        if self.depth <= MAX_DEPTH {
            return writer.write_all(&LINES[start..2 + 2 * self.depth]);
        }
        writer.write_all(&LINES[start..2])?;
        for _ in 0..self.depth {
            writer.write_all(b"  ")?;
        }
        Ok(())
    }
}

impl Pretty {
    /// `[` or `{`: one level deeper, nothing in it yet.
    fn open<W: ?Sized + Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        writer.write_all(bracket)
    }

    /// `]` or `}`, on a line of its own when something came before it.
    fn close<W: ?Sized + Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth -= 1;
        if self.has_value {
            self.line(writer, false)?;
        }
        writer.write_all(bracket)
    }
}

impl Formatter for Pretty {
    #[inline]
    fn begin_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, b"[")
    }

    #[inline]
    fn end_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer, b"]")
    }

    #[inline]
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.line(writer, !first)
    }

    #[inline]
    fn end_array_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    #[inline]
    fn begin_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, b"{")
    }

    #[inline]
    fn end_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer, b"}")
    }

    #[inline]
    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.line(writer, !first)
    }

    #[inline]
    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    #[inline]
    fn end_object_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// `value` as `serde_json::to_writer_pretty` writes it.
pub(crate) fn write_pretty<W: Write, T: Serialize + ?Sized>(
    writer: &mut W,
    value: &T,
) -> io::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(writer, Pretty::default());
    value.serialize(&mut serializer).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn pretty(value: &Value) -> String {
        let mut out = Vec::new();
        write_pretty(&mut out, value).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Every shape, empty ones and nesting past [`MAX_DEPTH`] included, as serde_json's own
    /// pretty printer writes it.
    #[test]
    fn the_bytes_are_serde_jsons() {
        let mut deep = json!(["bottom", {}, [], {"k": [1, "two", null]}]);
        for depth in 0..2 * MAX_DEPTH {
            deep = if depth % 2 == 0 {
                json!({ "a": [1, "x"], "b": deep, "c": {} })
            } else {
                json!([deep, [], {"q": "w\"\n"}])
            };
            if depth % 9 == 0 || depth >= MAX_DEPTH - 2 {
                assert_eq!(
                    pretty(&deep),
                    serde_json::to_string_pretty(&deep).unwrap(),
                    "depth {depth}"
                );
            }
        }
        for value in [
            json!(null),
            json!([]),
            json!({}),
            json!([[]]),
            json!({"a": {}}),
            json!("é\u{1}"),
        ] {
            assert_eq!(
                pretty(&value),
                serde_json::to_string_pretty(&value).unwrap()
            );
        }
    }
}
