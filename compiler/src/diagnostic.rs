//! The neutral diagnostic type every stage produces, and the catalogue of codes.
//!
//! Stages build `Diagnostic` values from structured facts (spans, names, types); only
//! `render` turns them into text or JSON.

use bloomc_grammar::span::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
    /// Information from the analysis (`bloomc analyze` shows notes; `check` does not).
    Note,
}

/// Every diagnostic code bloomc can emit. `docs/diagnostics.md` explains each, and
/// `tests/diagnostics/` holds at least one failing program per code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    UnexpectedToken,
    UnexpectedEof,
    UnknownCharacter,
    UnterminatedString,
    BadEscape,
    IntegerOverflow,
    InvalidUtf8,
    TooDeep,
    UnknownModule,
    UnknownCollection,
    UnknownColumn,
    UnknownAlias,
    UnknownParam,
    Duplicate,
    ArityMismatch,
    TypeMismatch,
    UnknownType,
    IllegalMerge,
    WiringMismatch,
    UnknownLibrary,
    UnknownFunction,
    AggregateMisuse,
    NotConstant,
    BadParamValue,
    UnknownNode,
    WrongDirection,
    BadAntijoin,
    ColumnNameMismatch,
    MissingSelect,
    BadGenerator,
    BadNodeCount,
    UnknownAttribute,
    UnknownStream,
    BadKey,
    BadCoordination,
    GreyBoxSyntax,
    GreyBoxShape,
    GreyBoxLabel,
    GreyBoxSubscript,
    UnknownVariant,
    Unstratifiable,
    UnusedInterface,
    UnfedInput,
    Nondeterministic,
    TransientJoin,
    SealedPath,
    PartialRead,
    OrderedPath,
}

impl Code {
    pub const ALL: &'static [Code] = &[
        Code::UnexpectedToken,
        Code::UnexpectedEof,
        Code::UnknownCharacter,
        Code::UnterminatedString,
        Code::BadEscape,
        Code::IntegerOverflow,
        Code::InvalidUtf8,
        Code::TooDeep,
        Code::UnknownModule,
        Code::UnknownCollection,
        Code::UnknownColumn,
        Code::UnknownAlias,
        Code::UnknownParam,
        Code::Duplicate,
        Code::ArityMismatch,
        Code::TypeMismatch,
        Code::UnknownType,
        Code::IllegalMerge,
        Code::WiringMismatch,
        Code::UnknownLibrary,
        Code::UnknownFunction,
        Code::AggregateMisuse,
        Code::NotConstant,
        Code::BadParamValue,
        Code::UnknownNode,
        Code::WrongDirection,
        Code::BadAntijoin,
        Code::ColumnNameMismatch,
        Code::MissingSelect,
        Code::BadGenerator,
        Code::BadNodeCount,
        Code::UnknownAttribute,
        Code::UnknownStream,
        Code::BadKey,
        Code::BadCoordination,
        Code::GreyBoxSyntax,
        Code::GreyBoxShape,
        Code::GreyBoxLabel,
        Code::GreyBoxSubscript,
        Code::UnknownVariant,
        Code::Unstratifiable,
        Code::UnusedInterface,
        Code::UnfedInput,
        Code::Nondeterministic,
        Code::TransientJoin,
        Code::SealedPath,
        Code::PartialRead,
        Code::OrderedPath,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::UnexpectedToken => "E0001",
            Code::UnexpectedEof => "E0002",
            Code::UnknownCharacter => "E0003",
            Code::UnterminatedString => "E0004",
            Code::BadEscape => "E0005",
            Code::IntegerOverflow => "E0006",
            Code::InvalidUtf8 => "E0007",
            Code::TooDeep => "E0008",
            Code::UnknownModule => "E0100",
            Code::UnknownCollection => "E0101",
            Code::UnknownColumn => "E0102",
            Code::UnknownAlias => "E0103",
            Code::UnknownParam => "E0104",
            Code::Duplicate => "E0105",
            Code::ArityMismatch => "E0106",
            Code::TypeMismatch => "E0107",
            Code::UnknownType => "E0108",
            Code::IllegalMerge => "E0109",
            Code::WiringMismatch => "E0110",
            Code::UnknownLibrary => "E0111",
            Code::UnknownFunction => "E0112",
            Code::AggregateMisuse => "E0113",
            Code::NotConstant => "E0114",
            Code::BadParamValue => "E0115",
            Code::UnknownNode => "E0116",
            Code::WrongDirection => "E0117",
            Code::BadAntijoin => "E0118",
            Code::ColumnNameMismatch => "E0119",
            Code::MissingSelect => "E0120",
            Code::BadGenerator => "E0121",
            Code::BadNodeCount => "E0122",
            Code::UnknownAttribute => "E0123",
            Code::UnknownStream => "E0124",
            Code::BadKey => "E0125",
            Code::BadCoordination => "E0126",
            Code::GreyBoxSyntax => "E0300",
            Code::GreyBoxShape => "E0301",
            Code::GreyBoxLabel => "E0302",
            Code::GreyBoxSubscript => "E0303",
            Code::UnknownVariant => "E0304",
            Code::Unstratifiable => "E0200",
            Code::UnusedInterface => "W0001",
            Code::UnfedInput => "W0002",
            Code::Nondeterministic => "W0100",
            Code::TransientJoin => "W0101",
            Code::SealedPath => "N0100",
            Code::PartialRead => "N0101",
            Code::OrderedPath => "N0102",
        }
    }

    pub fn severity(self) -> Severity {
        match self.as_str().as_bytes().first() {
            Some(b'W') => Severity::Warning,
            Some(b'N') => Severity::Note,
            _ => Severity::Error,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub code: Code,
    pub message: String,
    pub primary: Label,
    pub secondary: Vec<Label>,
    pub help: Option<String>,
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn new(code: Code, message: impl Into<String>, span: Span, label: impl Into<String>) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            primary: Label { span, message: label.into() },
            secondary: Vec::new(),
            help: None,
            notes: Vec::new(),
        }
    }

    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Self {
        self.secondary.push(Label { span, message: message.into() });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    pub fn severity(&self) -> Severity {
        self.code.severity()
    }
}

/// Suggests the closest of `candidates` to `name` (edit distance at most a third of its
/// length, rounded up).
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let limit = (name.chars().count().div_ceil(3)).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}
