//! A Python file's text as Python reads it (PEP 263): UTF-8 unless a coding cookie on its first
//! or second line names another encoding.

use std::borrow::Cow;

/// What `bytes` decode to, or where and why they do not.
pub(super) fn decode(bytes: &[u8]) -> Result<Cow<'_, str>, (usize, usize, String)> {
    let (bom, body) = match bytes.strip_prefix(b"\xef\xbb\xbf") {
        Some(rest) => (true, rest),
        None => (false, bytes),
    };
    let declared = cookie(body);
    let encoding = match &declared {
        None => Encoding::Utf8,
        Some(cookie) => Encoding::named(&cookie.name).ok_or_else(|| {
            let message = format!(
                "the coding cookie names `{}`, which deploy does not read (utf-8, \
                 latin-1/iso-8859-1, ascii); save the file as UTF-8",
                cookie.name
            );
            (cookie.line, cookie.column, message)
        })?,
    };
    if let (true, Some(cookie)) = (bom, &declared)
        && encoding != Encoding::Utf8
    {
        let message = format!(
            "a UTF-8 byte order mark with a `{}` coding cookie",
            cookie.name
        );
        return Err((cookie.line, cookie.column, message));
    }
    match encoding {
        Encoding::Utf8 => utf8(body, declared.is_some()),
        Encoding::Ascii => match body.iter().position(|b| !b.is_ascii()) {
            Some(at) => Err(at_byte(
                body,
                at,
                "not ASCII, as its coding cookie says".into(),
            )),
            None => utf8(body, true),
        },
        Encoding::Latin1 => Ok(Cow::Owned(body.iter().map(|&b| char::from(b)).collect())),
    }
}

/// The encodings read, by their Python names and aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Latin1,
    Ascii,
}

impl Encoding {
    /// The encoding `name` means to Python (its tokenizer's shortcuts, then `codecs`' aliases).
    fn named(name: &str) -> Option<Encoding> {
        let name: String = name
            .to_ascii_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let family = |base: &str| name == base || name.starts_with(&format!("{base}_"));
        if family("utf_8") {
            return Some(Encoding::Utf8);
        }
        if family("latin_1") || family("iso_8859_1") || family("iso_latin_1") {
            return Some(Encoding::Latin1);
        }
        match name.as_str() {
            "utf8" | "u8" | "utf" | "cp65001" => Some(Encoding::Utf8),
            "latin1" | "latin" | "l1" | "iso8859_1" | "8859" | "cp819" | "iso_ir_100"
            | "csisolatin1" => Some(Encoding::Latin1),
            "ascii" | "us_ascii" | "us" | "646" | "cp367" | "csascii" | "ibm367" | "iso646_us"
            | "iso_ir_6" | "ansi_x3.4_1968" | "ansi_x3_4_1968" => Some(Encoding::Ascii),
            _ => None,
        }
    }
}

/// A coding cookie: the name it gives and where that name is written.
#[derive(Debug, PartialEq, Eq)]
struct Cookie {
    name: String,
    line: usize,
    column: usize,
}

/// The cookie of the first line, or of the second when the first is blank or a comment
/// (`^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)`, as Python's tokenizer).
fn cookie(bytes: &[u8]) -> Option<Cookie> {
    let mut lines = bytes.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    if let Some((column, name)) = cookie_in(first) {
        return Some(Cookie {
            name,
            line: 1,
            column,
        });
    }
    let rest = first.trim_ascii_start();
    let blank_or_comment = rest.is_empty() || rest.starts_with(b"#") || rest == b"\r";
    let (column, name) = lines
        .next()
        .filter(|_| blank_or_comment)
        .and_then(cookie_in)?;
    Some(Cookie {
        name,
        line: 2,
        column,
    })
}

/// In one line: the 1-based column of the encoding name and the name.
fn cookie_in(line: &[u8]) -> Option<(usize, String)> {
    let indent = line
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\x0c'))
        .count();
    if line.get(indent) != Some(&b'#') {
        return None;
    }
    let after = line
        .windows(7)
        .enumerate()
        .skip(indent)
        .find_map(|(at, w)| {
            (w.starts_with(b"coding") && matches!(w[6], b':' | b'=')).then_some(at + 7)
        })?;
    let start = after
        + line[after..]
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
    let name: String = line[start..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        .map(|&b| char::from(b))
        .collect();
    (!name.is_empty()).then_some((start + 1, name))
}

fn utf8(bytes: &[u8], declared: bool) -> Result<Cow<'_, str>, (usize, usize, String)> {
    std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|e| {
        let message = if declared {
            "not UTF-8, as its coding cookie says"
        } else {
            "not UTF-8 (Python's default); declare the file's encoding on its first line \
             (`# -*- coding: latin-1 -*-`) or save it as UTF-8"
        };
        at_byte(bytes, e.valid_up_to(), message.into())
    })
}

fn at_byte(bytes: &[u8], offset: usize, message: String) -> (usize, usize, String) {
    let (line, column) = super::position(&String::from_utf8_lossy(&bytes[..offset]), offset);
    (line, column, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_latin1_cookie_decodes_latin1_on_the_first_or_second_line() {
        let text = b"# -*- coding: latin-1 -*-\nname = '\xe9t\xe9'\n";
        assert_eq!(
            decode(text).expect("latin-1"),
            "# -*- coding: latin-1 -*-\nname = 'été'\n"
        );
        let second = b"#!/usr/bin/env python\n# vim: set fileencoding=iso-8859-1 :\nx = '\xff'\n";
        assert!(decode(second).expect("second line").ends_with("'ÿ'\n"));
        let too_late = b"x = 1\n# coding: latin-1\ny = '\xe9'\n";
        let (line, _, message) = decode(too_late).expect_err("only lines 1 and 2 count");
        assert_eq!(line, 3);
        assert!(message.starts_with("not UTF-8"), "{message}");
    }

    #[test]
    fn utf8_is_the_default_and_an_unknown_cookie_is_named() {
        assert_eq!(decode("x = 'é'\n".as_bytes()).expect("utf-8"), "x = 'é'\n");
        let (line, column, message) = decode(b"# coding: klingon\nx = 1\n").expect_err("unknown");
        assert_eq!((line, column), (1, 11));
        assert!(message.contains("`klingon`"), "{message}");
        let (_, _, message) = decode(b"# coding: utf-8\nx = '\xe9'\n").expect_err("not utf-8");
        assert!(message.contains("coding cookie says"), "{message}");
        assert!(decode(b"\xef\xbb\xbf# coding: latin-1\n").is_err());
        assert!(decode(b"# coding=ascii\nx = '\xe9'\n").is_err());
        assert_eq!(Encoding::named("ISO_8859_1"), Some(Encoding::Latin1));
        assert_eq!(Encoding::named("utf8"), Some(Encoding::Utf8));
    }
}
