//! Placeholders in a process node's arguments and environment: `{host}`, `{ecr_pty}`,
//! `{printer_port}`, `{workdir}`, `{poslab}`, and `{serial}` in a device exchange's
//! arguments; `{{` and `}}` are literal braces.

use std::fmt;

/// What a placeholder asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Placeholder {
    /// `{NODE}`: the loopback address (`127.0.0.1:PORT`) where poslab serves the link to NODE.
    Addr(String),
    /// `{NODE_port}`: that port alone.
    Port(String),
    /// `{NODE_pty}`: the path of a pty whose other end poslab holds for the link to NODE.
    Pty(String),
    /// `{NODE_listen}`: a free loopback address (`127.0.0.1:PORT`) where the *process*
    /// listens and the emulated NODE connects (a card connects to its reader).
    Listen(String),
    /// `{workdir}`: a directory that outlives restarts (the program keeps its journal there).
    Workdir,
    /// `{poslab}`: the path of the running poslab binary (to start `poslab terminal`).
    Poslab,
    /// `{serial}`: the serial number of a replacement device (only in `exchange.args`).
    Serial,
}

impl Placeholder {
    /// Reads the name between the braces.
    pub fn parse(name: &str) -> Placeholder {
        if name == "workdir" {
            return Placeholder::Workdir;
        }
        if name == "poslab" {
            return Placeholder::Poslab;
        }
        if name == "serial" {
            return Placeholder::Serial;
        }
        if let Some(node) = name.strip_suffix("_pty") {
            return Placeholder::Pty(node.to_owned());
        }
        if let Some(node) = name.strip_suffix("_listen") {
            return Placeholder::Listen(node.to_owned());
        }
        if let Some(node) = name.strip_suffix("_port") {
            return Placeholder::Port(node.to_owned());
        }
        Placeholder::Addr(name.to_owned())
    }

    /// The node the placeholder belongs to (`None` for `{workdir}`).
    pub fn node(&self) -> Option<&str> {
        match self {
            Placeholder::Addr(n)
            | Placeholder::Port(n)
            | Placeholder::Pty(n)
            | Placeholder::Listen(n) => Some(n),
            Placeholder::Workdir | Placeholder::Poslab | Placeholder::Serial => None,
        }
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placeholder::Addr(n) => write!(f, "{{{n}}}"),
            Placeholder::Port(n) => write!(f, "{{{n}_port}}"),
            Placeholder::Pty(n) => write!(f, "{{{n}_pty}}"),
            Placeholder::Listen(n) => write!(f, "{{{n}_listen}}"),
            Placeholder::Workdir => f.write_str("{workdir}"),
            Placeholder::Poslab => f.write_str("{poslab}"),
            Placeholder::Serial => f.write_str("{serial}"),
        }
    }
}

/// A template piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Hole(Placeholder),
}

/// Why a template does not parse; `at` is the character offset in the template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed `{{` at character {at} (write `{{{{` for a literal brace)")]
    Unclosed { at: usize },
    #[error("lone `}}` at character {at} (write `}}}}` for a literal brace)")]
    LoneClose { at: usize },
    #[error("bad placeholder name `{name}` at character {at} (letters, digits, `_` and `-`)")]
    BadName { name: String, at: usize },
}

/// Splits a template into text and placeholders.
pub fn parse(template: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = template.chars().enumerate().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                chars.next();
                text.push('}');
            }
            '}' => return Err(TemplateError::LoneClose { at }),
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for (_, c) in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed {
                    return Err(TemplateError::Unclosed { at });
                }
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(TemplateError::BadName { name, at });
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Hole(Placeholder::parse(&name)));
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// The placeholders a template uses.
pub fn holes(template: &str) -> Result<Vec<Placeholder>, TemplateError> {
    Ok(parse(template)?
        .into_iter()
        .filter_map(|p| match p {
            Piece::Hole(h) => Some(h),
            Piece::Text(_) => None,
        })
        .collect())
}

/// Fills a template; `value` answers each placeholder (`None`: not provided).
pub fn render(
    template: &str,
    mut value: impl FnMut(&Placeholder) -> Option<String>,
) -> Result<String, RenderError> {
    let mut out = String::new();
    for piece in parse(template)? {
        match piece {
            Piece::Text(t) => out.push_str(&t),
            Piece::Hole(h) => match value(&h) {
                Some(v) => out.push_str(&v),
                None => return Err(RenderError::Missing(h.to_string())),
            },
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("no value for placeholder {0}")]
    Missing(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_read_by_suffix() {
        assert_eq!(
            holes("--ecr={ecr_pty} {host} {printer_port} {workdir}/j").unwrap(),
            vec![
                Placeholder::Pty("ecr".into()),
                Placeholder::Addr("host".into()),
                Placeholder::Port("printer".into()),
                Placeholder::Workdir,
            ]
        );
    }

    #[test]
    fn braces_escape_and_errors_say_where() {
        assert_eq!(
            render("{{x}} {host}", |_| Some("127.0.0.1:9".into())).unwrap(),
            "{x} 127.0.0.1:9"
        );
        assert_eq!(
            parse("ab{cd").unwrap_err(),
            TemplateError::Unclosed { at: 2 }
        );
        assert_eq!(
            parse("a}b").unwrap_err(),
            TemplateError::LoneClose { at: 1 }
        );
        assert!(matches!(
            parse("{a b}").unwrap_err(),
            TemplateError::BadName { at: 0, .. }
        ));
        assert_eq!(
            render("{tms}", |_| None).unwrap_err(),
            RenderError::Missing("{tms}".into())
        );
    }
}
