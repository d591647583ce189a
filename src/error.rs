//! The library's error type, and the readers that turn a bad file into one line naming the file
//! and the field.

use serde::de::DeserializeOwned;

/// Everything gpucost refuses. Each variant is a user's mistake (a bad file, flag or name), so the
/// CLI exits with code 2 on any of them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value that parsed but makes no sense, or a field that is missing.
    #[error("{file}: {field}: {message}")]
    Field {
        file: String,
        field: String,
        message: String,
    },
    /// A file that is not valid JSON or TOML, or cannot be read.
    #[error("{file}: {message}")]
    File { file: String, message: String },
    /// A name (GPU, model, dtype) that is not known.
    #[error("{0}")]
    Unknown(String),
    /// A request the model cannot answer (e.g. an fp8 matmul on a GPU with no fp8 rate).
    #[error("{0}")]
    Unsupported(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn field(file: &str, field: &str, message: impl Into<String>) -> Self {
        Error::Field {
            file: file.to_string(),
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// `text` without a leading UTF-8 byte-order mark (editors on Windows write one; JSON and TOML
/// parsers reject it as a stray character).
pub fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Reads a UTF-8 file to a string (without a byte-order mark), naming it in the error.
pub fn read_to_string(path: &std::path::Path) -> Result<String> {
    let file = || path.display().to_string();
    if path.is_dir() {
        return Err(Error::File {
            file: file(),
            message: "is a folder, not a file".into(),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| Error::File {
        file: file(),
        message: format!("cannot read: {e}"),
    })?;
    let text = String::from_utf8(bytes).map_err(|e| Error::File {
        file: file(),
        message: format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ),
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses TOML into `T`, reporting the dotted path of the offending field.
pub fn parse_toml<T: DeserializeOwned>(file: &str, text: &str) -> Result<T> {
    let text = strip_bom(text);
    let de = toml::Deserializer::parse(text).map_err(|e| Error::File {
        file: file.to_string(),
        message: format!(
            "invalid TOML at line {}: {}",
            e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
            e.message().trim()
        ),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let line = inner
            .span()
            .map(|s| format!(" (line {})", line_of(text, s.start)))
            .unwrap_or_default();
        let field = if path == "." {
            "(top level)".into()
        } else {
            path
        };
        Error::field(file, &field, format!("{}{line}", inner.message().trim()))
    })
}

/// Parses JSON into `T`, reporting the dotted path of the offending field.
pub fn parse_json<T: DeserializeOwned>(file: &str, text: &str) -> Result<T> {
    let text = strip_bom(text);
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            Error::File {
                file: file.to_string(),
                message: format!("invalid JSON: {inner}"),
            }
        } else {
            let field = if path == "." {
                "(top level)".into()
            } else {
                path
            };
            Error::field(file, &field, inner.to_string())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        size: u32,
    }

    #[test]
    fn toml_errors_name_the_field_on_one_line() {
        let e = parse_toml::<Outer>("f.toml", "[inner]\nsize = \"big\"\n").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("f.toml: inner.size: "), "{s}");
        assert!(!s.contains('\n'), "{s}");
        let e = parse_toml::<Outer>("f.toml", "[inner]\nsize = 1\ncolour = 2\n").unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let e = parse_toml::<Outer>("f.toml", "[inner\n").unwrap_err();
        assert!(
            e.to_string().starts_with("f.toml: invalid TOML at line 1"),
            "{e}"
        );
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = parse_json::<Outer>("f.json", r#"{"inner": {"size": -1}}"#).unwrap_err();
        assert!(e.to_string().starts_with("f.json: inner.size: "), "{e}");
        let e = parse_json::<Outer>("f.json", r#"{"inner": "#).unwrap_err();
        assert!(e.to_string().starts_with("f.json: invalid JSON"), "{e}");
    }
}
