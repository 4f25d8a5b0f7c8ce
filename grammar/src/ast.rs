//! The untyped, span-carrying syntax tree produced by the parser.
//!
//! The tree mirrors the surface syntax one to one; it knows nothing about names, types or
//! semantics. Nodes that failed to parse are kept as `Error` variants so later stages can
//! skip them without reporting cascades.

use crate::span::Span;

#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceFile {
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `use kvs;` imports the modules of a standard-library file.
    Use(Ident),
    Param(ParamDecl),
    Module(ModuleDecl),
    System(SystemDecl),
    Error(Span),
}

/// `param adservers: int = 5;`
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDecl {
    pub name: Ident,
    pub ty: Ident,
    pub default: Expr,
    pub span: Span,
}

/// `#[allow(nondeterminism)]` before a module or system.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: Ident,
    pub args: Vec<Ident>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModuleDecl {
    pub attrs: Vec<Attribute>,
    pub name: Ident,
    pub items: Vec<ModuleItem>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
// Built once per item of a program and matched where it is built: boxing the large
// variant would add an allocation per rule and save nothing that matters.
#[allow(clippy::large_enum_variant)]
pub enum ModuleItem {
    Collection(CollectionDecl),
    Rule(RuleDecl),
    /// `when query == "POOR" { ... }`: items compiled only when the constant condition holds.
    When(WhenBlock),
    Error(Span),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CollectionKind {
    Input,
    Output,
    Table,
    Scratch,
}

impl CollectionKind {
    pub fn keyword(self) -> &'static str {
        match self {
            CollectionKind::Input => "input",
            CollectionKind::Output => "output",
            CollectionKind::Table => "table",
            CollectionKind::Scratch => "scratch",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CollectionDecl {
    pub kind: CollectionKind,
    pub name: Ident,
    pub columns: Vec<ColumnDecl>,
    /// `key (c, ..)` after the columns (`word` is checked to be `key` by the resolver: `key`
    /// is not a keyword, so it stays usable as a column name).
    pub key: Option<KeyDecl>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeyDecl {
    pub word: Ident,
    pub columns: Vec<Ident>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDecl {
    pub name: Ident,
    pub ty: Ident,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MergeOp {
    /// `<=` instantaneous merge.
    Instant,
    /// `<+` deferred insert.
    Deferred,
    /// `<-` deferred delete.
    Delete,
    /// `<~` asynchronous send.
    Async,
}

impl MergeOp {
    pub fn symbol(self) -> &'static str {
        match self {
            MergeOp::Instant => "<=",
            MergeOp::Deferred => "<+",
            MergeOp::Delete => "<-",
            MergeOp::Async => "<~",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuleDecl {
    pub target: Ident,
    pub op: MergeOp,
    pub op_span: Span,
    pub query: Query,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WhenBlock {
    pub cond: Expr,
    pub items: Vec<ModuleItem>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
// Built once per item of a program and matched where it is built: boxing the large
// variant would add an allocation per rule and save nothing that matters.
#[allow(clippy::large_enum_variant)]
pub enum Query {
    /// `log <+ put;` copies every row of one collection.
    Scan(Ident),
    Select(SelectQuery),
}

/// `from B, .. [notin N [on E]].. [where E] [group by E, ..] [having E] [select S, ..]`
#[derive(Debug, Clone, PartialEq)]
pub struct SelectQuery {
    pub from: Vec<Binding>,
    pub notins: Vec<NotIn>,
    pub where_: Option<Expr>,
    pub group_by: Option<Vec<Expr>>,
    pub having: Option<Expr>,
    /// `None` when the `select` clause is omitted (allowed with one `from` binding).
    pub select: Option<Vec<SelectItem>>,
    pub span: Span,
}

/// `log l`: a collection bound to an alias (the alias defaults to the collection's name).
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub collection: Ident,
    pub alias: Option<Ident>,
}

impl Binding {
    pub fn alias(&self) -> &Ident {
        self.alias.as_ref().unwrap_or(&self.collection)
    }
}

/// `notin seen s on c.id == s.id`: an antijoin. Without `on`, whole rows are compared.
#[derive(Debug, Clone, PartialEq)]
pub struct NotIn {
    pub binding: Binding,
    pub on: Option<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// `expr [as name]`
    Expr { expr: Expr, name: Option<Ident> },
    /// `alias.*`: every column of a binding, in order.
    Wildcard { alias: Ident, span: Span },
}

#[derive(Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

/// On one line even inside `{:#?}` (what `bloomc dump ast` prints): an operator chain of n
/// terms is a tree n deep, and pretty-printing indents every level, so its dump would grow
/// with n². `write!` with `{:?}` formats the kind without the alternate flag.
impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({:?} @ {}..{})", self.kind, self.span.start, self.span.end)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    /// `alias.column`
    Column {
        alias: Ident,
        column: Ident,
    },
    /// A bare name: a parameter.
    Name(Ident),
    /// `count(*)`, `uniform(0, 10)`, ...
    Call {
        func: Ident,
        args: Vec<Expr>,
    },
    /// `*` as the argument of `count(*)`.
    Star,
    Unary {
        op: UnaryOp,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// An expression left out because it nests deeper than `nesting::MAX_DEPTH` (a syntax
    /// error, E0008, was reported).
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    Not,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SystemDecl {
    pub attrs: Vec<Attribute>,
    pub name: Ident,
    pub items: Vec<SystemItem>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SystemItem {
    Node(NodeDecl),
    Wire(WireDecl),
    Feed(FeedDecl),
    Seal(SealDecl),
    /// `order report;`
    Order(OrderDecl),
    /// `punctuate adserver.click on (campaign) -> report.click;`
    Punctuate(PunctuateDecl),
    /// `hold report.click until sealed on (campaign);` or
    /// `hold report.request [on (id)] until report.click sealed;`
    Hold(HoldDecl),
    /// `when seal { ... }`: system items that exist only when the constant condition holds.
    When(SystemWhen),
    Error(Span),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SystemWhen {
    pub cond: Expr,
    pub items: Vec<SystemItem>,
    pub span: Span,
}

/// `node report: Report * 3 replicated;`
#[derive(Debug, Clone, PartialEq)]
pub struct NodeDecl {
    pub name: Ident,
    pub module: Ident,
    pub count: Option<Expr>,
    pub replicated: bool,
    pub span: Span,
}

/// `group.interface`
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub group: Ident,
    pub interface: Ident,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Broadcast,
    Partition(Vec<Ident>),
    Any,
    Reply(Ident),
}

/// `adserver.click -> report.click broadcast;`
#[derive(Debug, Clone, PartialEq)]
pub struct WireDecl {
    pub from: Endpoint,
    pub to: Endpoint,
    pub delivery: Delivery,
    pub delivery_span: Span,
    pub span: Span,
}

/// `report.click sealed on (campaign);`: the stream into an input interface carries
/// punctuations per value of these columns.
#[derive(Debug, Clone, PartialEq)]
pub struct SealDecl {
    pub stream: Endpoint,
    pub columns: Vec<Ident>,
    pub span: Span,
}

/// `order report;`: a sequencing stage on every input of a replicated group.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderDecl {
    pub group: Ident,
    pub span: Span,
}

/// `punctuate adserver.click on (campaign) -> report.click;`: the producer end of a wire
/// announces its seal keys and seals each after its last fact.
#[derive(Debug, Clone, PartialEq)]
pub struct PunctuateDecl {
    pub from: Endpoint,
    pub to: Endpoint,
    pub columns: Vec<Ident>,
    pub span: Span,
}

/// `hold report.click until sealed on (campaign);` (`until` is `None`: the input's facts
/// wait per key until their producers sealed it) or `hold report.request on (id) until
/// report.click sealed;` (a read waits for a sealed input's partition; no columns: for all
/// of them).
#[derive(Debug, Clone, PartialEq)]
pub struct HoldDecl {
    pub stream: Endpoint,
    pub columns: Vec<Ident>,
    pub until: Option<Endpoint>,
    pub span: Span,
}

/// `feed adserver.serve from file "clicks.csv";` or `... from generate(rows: 10) { .. };`
#[derive(Debug, Clone, PartialEq)]
pub struct FeedDecl {
    pub to: Endpoint,
    pub source: FeedSource,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FeedSource {
    File { path: String, span: Span },
    Generate { options: Vec<(Ident, Expr)>, fields: Vec<(Ident, Expr)>, span: Span },
}
