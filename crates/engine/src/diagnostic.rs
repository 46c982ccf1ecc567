//! Load errors as diagnostics: `file:line:column`, the module and field, one sentence, and
//! a `help:` line with the fix.

use std::fmt;

use crate::scenario::yaml::Pos;

/// One problem found while loading a scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The scenario file as given.
    pub file: String,
    /// Where in it.
    pub pos: Pos,
    /// The module the problem is in, if any.
    pub module_id: Option<u32>,
    /// The field the problem is in (`map.text`, `filter.any.0.all.1.op`), if any.
    pub field: Option<String>,
    /// What is wrong: lowercase, values in backticks.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// The source line, for the excerpt.
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// One line: `file:line:col: message (module N, field `f`)`, then `help: ...` if any.
    pub fn short(&self) -> String {
        let mut s = format!(
            "{}:{}:{}: {}{}",
            self.file,
            self.pos.line,
            self.pos.column,
            self.message,
            self.context()
        );
        if let Some(help) = &self.help {
            s.push_str("\n  help: ");
            s.push_str(help);
        }
        s
    }

    fn context(&self) -> String {
        match (&self.module_id, &self.field) {
            (Some(id), Some(f)) => format!(" (module `{id}`, field `{f}`)"),
            (Some(id), None) => format!(" (module `{id}`)"),
            (None, Some(f)) => format!(" (field `{f}`)"),
            (None, None) => String::new(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        writeln!(
            f,
            "  --> {}:{}:{}{}",
            self.file,
            self.pos.line,
            self.pos.column,
            self.context()
        )?;
        if let Some(line) = &self.source_line {
            let num = self.pos.line.to_string();
            let pad = " ".repeat(num.len());
            let start = self.pos.column.saturating_sub(1);
            let rest: String = line.chars().skip(start).collect();
            let width = rest.trim_end().chars().count().clamp(1, 60);
            writeln!(f, "{pad} |")?;
            writeln!(f, "{num} | {line}")?;
            writeln!(f, "{pad} | {}{}", " ".repeat(start), "^".repeat(width))?;
        }
        if let Some(help) = &self.help {
            writeln!(f, "help: {help}")?;
        }
        Ok(())
    }
}

/// A scenario could not be loaded; holds every problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    /// The problems, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl LoadError {
    /// A load error with one diagnostic.
    pub fn one(d: Diagnostic) -> Self {
        LoadError {
            diagnostics: vec![d],
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Collects diagnostics for one file, filling in the file name and source lines.
pub struct Reporter<'a> {
    file: &'a str,
    source: &'a str,
    /// What was found so far.
    pub diagnostics: Vec<Diagnostic>,
}

impl<'a> Reporter<'a> {
    /// A reporter for one file.
    pub fn new(file: &'a str, source: &'a str) -> Self {
        Reporter {
            file,
            source,
            diagnostics: Vec::new(),
        }
    }

    /// Builds a diagnostic at `pos`.
    pub fn at(&self, pos: Pos, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: self.file.to_owned(),
            pos,
            module_id: None,
            field: None,
            message: message.into(),
            help: None,
            source_line: self
                .source
                .lines()
                .nth(pos.line.saturating_sub(1))
                .map(str::to_owned),
        }
    }

    /// Records a diagnostic.
    pub fn push(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    /// `Err` with everything recorded, or `Ok(value)` when nothing was.
    pub fn finish<T>(self, value: T) -> Result<T, LoadError> {
        if self.diagnostics.is_empty() {
            Ok(value)
        } else {
            Err(self.into_error())
        }
    }

    /// Everything recorded, in file order, as one error.
    pub fn into_error(self) -> LoadError {
        let mut diagnostics = self.diagnostics;
        diagnostics.sort_by_key(|d| (d.pos.line, d.pos.column));
        diagnostics.dedup();
        LoadError { diagnostics }
    }
}

impl Diagnostic {
    /// Sets the module id.
    pub fn module(mut self, id: u32) -> Self {
        self.module_id = Some(id);
        self
    }
    /// Sets the field.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    /// Sets the help line.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    /// Sets the help line if there is one.
    pub fn maybe_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }
}
