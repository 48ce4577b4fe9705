//! Compiler-style diagnostics for the definition files.
//!
//! A diagnostic always names a file relative to the definitions folder
//! (`workflows/sales.yaml`), a 1-based line and column, a message and, where the fix is
//! obvious, a `help:` line. The loader collects every diagnostic of a run instead of
//! stopping at the first one.

use std::fmt;

/// How bad a finding is: errors refuse the set, warnings are printed and accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in the definition files, printed like a compiler diagnostic:
/// `path:line:col: error: message` and an optional `  help: ...` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Path relative to the definitions folder, with `/` separators.
    pub file: String,
    /// 1-based line; 0 when the problem concerns the file as a whole.
    pub line: u32,
    /// 1-based column; 0 when the problem concerns the file as a whole.
    pub col: u32,
    pub message: String,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(file: &str, pos: Pos, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            file: file.to_owned(),
            line: pos.line,
            col: pos.col,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(file: &str, pos: Pos, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(file, pos, message)
        }
    }

    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a "did you mean" help line when one of `candidates` is close to `name`.
    #[must_use]
    pub fn with_suggestion<'a>(
        self,
        name: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        match did_you_mean(name, candidates) {
            Some(best) => self.with_help(format!("did you mean `{best}`?")),
            None => self,
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {kind}: {}",
            self.file, self.line, self.col, self.message
        )?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// One diagnostic as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct DiagnosticInfo {
    /// `error` or `warning`.
    pub severity: String,
    /// Relative to the definitions folder (`workflows/sales.yaml`).
    pub file: String,
    pub line: u32,
    pub col: u32,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// `file:line:col: error: message` as `akis check` prints it.
    pub text: String,
}

impl From<&Diagnostic> for DiagnosticInfo {
    fn from(d: &Diagnostic) -> Self {
        DiagnosticInfo {
            severity: match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            }
            .into(),
            file: d.file.clone(),
            line: d.line,
            col: d.col,
            message: d.message.clone(),
            help: d.help.clone(),
            text: d.to_string(),
        }
    }
}

/// A 1-based line/column position inside one file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub const FILE: Pos = Pos { line: 0, col: 0 };

    pub fn new(line: u32, col: u32) -> Self {
        Self { line, col }
    }
}

/// The candidate closest to `name`, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        let score = strsim::jaro_winkler(name, candidate)
            .max(strsim::normalized_damerau_levenshtein(name, candidate));
        if score >= 0.7 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, c)| c.to_owned())
}

/// Sorts diagnostics by file, position and severity so output is stable.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        (
            a.file.as_str(),
            a.line,
            a.col,
            a.severity,
            a.message.as_str(),
        )
            .cmp(&(
                b.file.as_str(),
                b.line,
                b.col,
                b.severity,
                b.message.as_str(),
            ))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_prints_like_a_compiler_with_a_help_line() {
        let d = Diagnostic::error(
            "workflows/sales.yaml",
            Pos::new(12, 7),
            "unknown stage `randvu`",
        )
        .with_suggestion("randvu", ["potansiyel", "randevu"]);
        assert_eq!(
            d.to_string(),
            "workflows/sales.yaml:12:7: error: unknown stage `randvu`\n  help: did you mean `randevu`?"
        );
    }

    #[test]
    fn a_warning_says_warning_and_has_no_help_when_nothing_is_close() {
        let d = Diagnostic::warning("rules/x.rhai", Pos::FILE, "unused")
            .with_suggestion("zzz", ["abc"]);
        assert_eq!(d.to_string(), "rules/x.rhai:0:0: warning: unused");
    }
}
