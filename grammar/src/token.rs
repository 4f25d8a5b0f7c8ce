//! The logos lexer: source text to tokens with byte offsets.
//!
//! Lexical errors never stop the lexer. `Lexer` records each one and carries on, so the
//! parser sees a plausible token stream and one run reports every problem in the file.

use logos::Logos;

/// Why a piece of text is not a token.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum LexErrorKind {
    #[default]
    UnknownCharacter,
    UnterminatedString,
    BadEscape,
    IntegerOverflow,
    BadFloat,
}

#[derive(Logos, Debug, Clone, PartialEq)]
#[logos(skip r"[ \t\r\n\f]+")]
#[logos(skip(r"//[^\n]*", allow_greedy = true))]
#[logos(error = LexErrorKind)]
pub enum Tok<'input> {
    #[token("module")]
    Module,
    #[token("input")]
    Input,
    #[token("output")]
    Output,
    #[token("table")]
    Table,
    #[token("scratch")]
    Scratch,
    #[token("use")]
    Use,
    #[token("param")]
    Param,
    #[token("system")]
    System,
    #[token("node")]
    Node,
    #[token("replicated")]
    Replicated,
    #[token("from")]
    From,
    #[token("where")]
    Where,
    #[token("select")]
    Select,
    #[token("group")]
    Group,
    #[token("by")]
    By,
    #[token("having")]
    Having,
    #[token("notin")]
    Notin,
    #[token("on")]
    On,
    #[token("as")]
    As,
    #[token("and")]
    And,
    #[token("or")]
    Or,
    #[token("not")]
    Not,
    #[token("true")]
    True,
    #[token("false")]
    False,
    #[token("when")]
    When,
    #[token("broadcast")]
    Broadcast,
    #[token("partition")]
    Partition,
    #[token("any")]
    Any,
    #[token("reply")]
    Reply,
    #[token("sealed")]
    Sealed,
    #[token("feed")]
    Feed,
    #[token("order")]
    Order,
    #[token("punctuate")]
    Punctuate,
    #[token("hold")]
    Hold,
    #[token("until")]
    Until,
    #[token("file")]
    File,
    #[token("generate")]
    Generate,

    #[token("#")]
    Hash,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token(",")]
    Comma,
    #[token(";")]
    Semi,
    #[token(":")]
    Colon,
    #[token(".")]
    Dot,
    #[token("->")]
    Arrow,
    #[token("<=")]
    LtEq,
    #[token("<+")]
    LtPlus,
    #[token("<-")]
    LtMinus,
    #[token("<~")]
    LtTilde,
    #[token("==")]
    EqEq,
    #[token("!=")]
    NotEq,
    #[token("<")]
    Lt,
    #[token(">")]
    Gt,
    #[token(">=")]
    GtEq,
    #[token("=")]
    Eq,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("%")]
    Percent,

    #[regex(r"[A-Za-z_][A-Za-z0-9_]*", |lex| lex.slice())]
    Ident(&'input str),
    #[regex(r"[0-9]+", |lex| lex.slice().parse::<i64>().map_err(|_| LexErrorKind::IntegerOverflow))]
    Int(i64),
    #[regex(r"[0-9]+\.[0-9]+([eE][+-]?[0-9]+)?", |lex| lex.slice().parse::<f64>().ok().filter(|x| x.is_finite()).ok_or(LexErrorKind::BadFloat))]
    Float(f64),
    /// A complete string literal, quotes included; `unescape` turns it into its value.
    #[regex(r#""([^"\\\n]|\\.)*""#, |lex| lex.slice())]
    Str(&'input str),
    /// A string literal cut off by the end of the line or file.
    #[regex(r#""([^"\\\n]|\\.)*"#, |lex| lex.slice(), priority = 0)]
    UnterminatedStr(&'input str),
}

impl Tok<'_> {
    /// How the token is named in "expected one of ..." messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("identifier `{s}`"),
            Tok::Int(i) => format!("integer `{i}`"),
            Tok::Float(x) => format!("number `{x}`"),
            Tok::Str(s) | Tok::UnterminatedStr(s) => format!("string {s}"),
            other => format!("`{}`", other.text()),
        }
    }

    fn text(&self) -> &'static str {
        match self {
            Tok::Module => "module",
            Tok::Input => "input",
            Tok::Output => "output",
            Tok::Table => "table",
            Tok::Scratch => "scratch",
            Tok::Use => "use",
            Tok::Param => "param",
            Tok::System => "system",
            Tok::Node => "node",
            Tok::Replicated => "replicated",
            Tok::From => "from",
            Tok::Where => "where",
            Tok::Select => "select",
            Tok::Group => "group",
            Tok::By => "by",
            Tok::Having => "having",
            Tok::Notin => "notin",
            Tok::On => "on",
            Tok::As => "as",
            Tok::And => "and",
            Tok::Or => "or",
            Tok::Not => "not",
            Tok::True => "true",
            Tok::False => "false",
            Tok::When => "when",
            Tok::Broadcast => "broadcast",
            Tok::Partition => "partition",
            Tok::Any => "any",
            Tok::Reply => "reply",
            Tok::Sealed => "sealed",
            Tok::Order => "order",
            Tok::Punctuate => "punctuate",
            Tok::Hold => "hold",
            Tok::Until => "until",
            Tok::Feed => "feed",
            Tok::File => "file",
            Tok::Generate => "generate",
            Tok::Hash => "#",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::Comma => ",",
            Tok::Semi => ";",
            Tok::Colon => ":",
            Tok::Dot => ".",
            Tok::Arrow => "->",
            Tok::LtEq => "<=",
            Tok::LtPlus => "<+",
            Tok::LtMinus => "<-",
            Tok::LtTilde => "<~",
            Tok::EqEq => "==",
            Tok::NotEq => "!=",
            Tok::Lt => "<",
            Tok::Gt => ">",
            Tok::GtEq => ">=",
            Tok::Eq => "=",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::Ident(_) | Tok::Int(_) | Tok::Float(_) | Tok::Str(_) | Tok::UnterminatedStr(_) => "literal",
        }
    }
}

/// Decodes the escapes of a string literal (quotes included in `raw`).
/// Returns the value and, if an escape is unknown, the byte offset of that escape in `raw`.
pub fn unescape(raw: &str) -> (String, Option<usize>) {
    let inner = raw.strip_prefix('"').unwrap_or(raw);
    let inner = inner.strip_suffix('"').unwrap_or(inner);
    let mut out = String::with_capacity(inner.len());
    let mut bad = None;
    let mut chars = inner.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some((_, 'n')) => out.push('\n'),
            Some((_, 't')) => out.push('\t'),
            Some((_, '\\')) => out.push('\\'),
            Some((_, '"')) => out.push('"'),
            Some((_, other)) => {
                bad.get_or_insert(i + 1);
                out.push(other);
            }
            None => {
                bad.get_or_insert(i + 1);
            }
        }
    }
    (out, bad)
}

/// A lexical error at a byte range.
#[derive(Debug, Clone, PartialEq)]
pub struct LexError {
    pub kind: LexErrorKind,
    pub start: usize,
    pub end: usize,
}

/// The token stream the lalrpop parser consumes. Bad tokens are recorded in `errors`
/// and left out of the stream (an unterminated string still yields a `Str` token so the
/// parser does not cascade).
pub struct Lexer<'input> {
    inner: logos::SpannedIter<'input, Tok<'input>>,
    pub errors: Vec<LexError>,
}

impl<'input> Lexer<'input> {
    pub fn new(src: &'input str) -> Self {
        Lexer { inner: Tok::lexer(src).spanned(), errors: Vec::new() }
    }
}

pub type Spanned<'input> = (usize, Tok<'input>, usize);

impl<'input> Iterator for Lexer<'input> {
    type Item = Result<Spanned<'input>, std::convert::Infallible>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (tok, range) = self.inner.next()?;
            match tok {
                Ok(Tok::UnterminatedStr(s)) => {
                    self.errors.push(LexError {
                        kind: LexErrorKind::UnterminatedString,
                        start: range.start,
                        end: range.end,
                    });
                    return Some(Ok((range.start, Tok::Str(s), range.end)));
                }
                Ok(Tok::Str(s)) => {
                    if let (_, Some(at)) = unescape(s) {
                        self.errors.push(LexError {
                            kind: LexErrorKind::BadEscape,
                            start: range.start + at - 1,
                            end: (range.start + at + 1).min(range.end),
                        });
                    }
                    return Some(Ok((range.start, Tok::Str(s), range.end)));
                }
                Ok(t) => return Some(Ok((range.start, t, range.end))),
                Err(kind) => {
                    // A number that does not fit still stands for a number: hand the parser a
                    // placeholder so it reports no cascade. Other bad text is skipped.
                    let placeholder = match kind {
                        LexErrorKind::IntegerOverflow => Some(Tok::Int(0)),
                        LexErrorKind::BadFloat => Some(Tok::Float(0.0)),
                        _ => None,
                    };
                    self.errors.push(LexError { kind, start: range.start, end: range.end });
                    if let Some(tok) = placeholder {
                        return Some(Ok((range.start, tok, range.end)));
                    }
                }
            }
        }
    }
}
