//! The resolved, typed intermediate representation that analysis and the runtime consume.
//!
//! Every name is resolved to a typed ID, every expression carries its type, parameters are
//! folded to literals and `when` blocks are already decided: the IR holds exactly the rules
//! and system items of this configuration. Facts are kept in flat tables indexed by ID.

use bloomc_grammar::ast::{BinaryOp, CollectionKind, MergeOp, UnaryOp};
use bloomc_grammar::span::Span;
use std::fmt;

macro_rules! id_type {
    ($name:ident) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub struct $name(pub u32);
        impl $name {
            pub fn index(self) -> usize {
                self.0 as usize
            }
            pub fn from_index(i: usize) -> Self {
                $name(u32::try_from(i).unwrap_or(u32::MAX))
            }
        }
    };
}

id_type!(ModuleId);
id_type!(CollectionId);
id_type!(RuleId);
id_type!(GroupId);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Type {
    Int,
    Float,
    String,
    Bool,
}

impl Type {
    pub fn from_name(name: &str) -> Option<Type> {
        match name {
            "int" => Some(Type::Int),
            "float" => Some(Type::Float),
            "string" => Some(Type::String),
            "bool" => Some(Type::Bool),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Type::Int => "int",
            Type::Float => "float",
            Type::String => "string",
            Type::Bool => "bool",
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A constant value: a literal, a folded parameter, or a parameter's value. Its equality is
/// the language's (`crate::ops`): floats by their total order, so `0.0 != -0.0`.
#[derive(Debug, Clone)]
pub enum Value {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
}

impl Value {
    pub fn ty(&self) -> Type {
        match self {
            Value::Int(_) => Type::Int,
            Value::Float(_) => Type::Float,
            Value::Str(_) => Type::String,
            Value::Bool(_) => Type::Bool,
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => crate::ops::float_eq(*a, *b),
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => crate::ops::fmt_float(*x, f),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Program {
    pub params: Vec<Param>,
    pub modules: Vec<Module>,
    pub collections: Vec<Collection>,
    pub rules: Vec<Rule>,
    pub system: Option<System>,
}

impl Program {
    pub fn module(&self, id: ModuleId) -> Option<&Module> {
        self.modules.get(id.index())
    }
    pub fn collection(&self, id: CollectionId) -> Option<&Collection> {
        self.collections.get(id.index())
    }
    pub fn rule(&self, id: RuleId) -> Option<&Rule> {
        self.rules.get(id.index())
    }
    /// The collection's name, or `?` for a dangling ID (which resolution never produces).
    pub fn collection_name(&self, id: CollectionId) -> &str {
        self.collection(id).map_or("?", |c| c.name.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub ty: Type,
    pub value: Value,
    /// Set when `--set` replaced the declared default.
    pub overridden: bool,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Module {
    pub id: ModuleId,
    pub name: String,
    /// `#[allow(nondeterminism)]`: no nondeterminism warnings for this module's paths.
    pub allow_nondeterminism: bool,
    pub collections: Vec<CollectionId>,
    pub rules: Vec<RuleId>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Collection {
    pub id: CollectionId,
    pub module: ModuleId,
    pub name: String,
    pub kind: CollectionKind,
    pub columns: Vec<Column>,
    /// `key (..)` of an input interface: the columns (in declaration order of the key) that
    /// no two facts of the run share.
    pub key: Option<Vec<usize>>,
    /// Evaluation stratum within a tick: every nonmonotone read comes from a lower stratum.
    pub stratum: u32,
    pub span: Span,
}

impl Collection {
    /// `(name: type, ..)`, as shown in diagnostics.
    pub fn schema(&self) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| format!("{}: {}", c.name, c.ty)).collect();
        format!("({})", cols.join(", "))
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: Type,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: RuleId,
    pub module: ModuleId,
    pub target: CollectionId,
    pub op: MergeOp,
    pub body: Body,
    pub span: Span,
    pub op_span: Span,
}

/// A rule's query as a relational plan: join the positive atoms on `equalities`, keep the
/// bindings that pass `filters` and match no antijoin, then group (if `group_by` is set) and
/// project `head`, keeping groups that pass `having`.
#[derive(Debug, Clone)]
pub struct Body {
    pub atoms: Vec<Atom>,
    /// Conjuncts `a.x == b.y` between two different atoms: the join keys.
    pub equalities: Vec<Equality>,
    /// The other conjuncts of `where`, over the atoms.
    pub filters: Vec<Expr>,
    pub antijoins: Vec<AntiJoin>,
    /// `Some` when the rule aggregates; an empty list means one global group.
    pub group_by: Option<Vec<Expr>>,
    pub having: Option<Expr>,
    pub head: Vec<Expr>,
}

impl Body {
    pub fn aggregates(&self) -> bool {
        self.group_by.is_some()
    }
}

/// One positive occurrence of a collection in a rule body.
#[derive(Debug, Clone)]
pub struct Atom {
    pub collection: CollectionId,
    pub alias: String,
    pub span: Span,
}

/// A column of one of the body's positive atoms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ColRef {
    pub atom: usize,
    pub column: usize,
}

#[derive(Debug, Clone)]
pub struct Equality {
    pub left: ColRef,
    pub right: ColRef,
    pub span: Span,
}

/// `notin c on x.a == c.b and ...`: drop bindings for which a row of `collection` agrees on
/// every pair. `pairs` hold (outer column, column of `collection`); with no `on` clause the
/// pairs compare whole rows of the single positive atom.
#[derive(Debug, Clone)]
pub struct AntiJoin {
    pub collection: CollectionId,
    pub alias: String,
    pub pairs: Vec<(ColRef, usize)>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Expr {
    pub kind: ExprKind,
    pub ty: Type,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum ExprKind {
    Lit(Value),
    Col(ColRef),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    Call(Builtin, Vec<Expr>),
    /// An aggregate over the group's bindings; `None` argument is `count(*)`.
    Agg(AggFn, Option<Box<Expr>>),
}

impl Expr {
    /// Whether an aggregate occurs anywhere in the expression.
    pub fn has_aggregate(&self) -> bool {
        match &self.kind {
            ExprKind::Agg(..) => true,
            ExprKind::Lit(_) | ExprKind::Col(_) => false,
            ExprKind::Unary(_, x) => x.has_aggregate(),
            ExprKind::Binary(_, a, b) => a.has_aggregate() || b.has_aggregate(),
            ExprKind::Call(_, args) => args.iter().any(Expr::has_aggregate),
        }
    }

    /// Structural equality, ignoring spans.
    pub fn same(&self, other: &Expr) -> bool {
        match (&self.kind, &other.kind) {
            (ExprKind::Lit(x), ExprKind::Lit(y)) => x == y,
            (ExprKind::Col(x), ExprKind::Col(y)) => x == y,
            (ExprKind::Unary(o, x), ExprKind::Unary(p, y)) => o == p && x.same(y),
            (ExprKind::Binary(o, x1, x2), ExprKind::Binary(p, y1, y2)) => o == p && x1.same(y1) && x2.same(y2),
            (ExprKind::Call(f, xs), ExprKind::Call(g, ys)) => {
                f == g && xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| x.same(y))
            }
            (ExprKind::Agg(f, x), ExprKind::Agg(g, y)) => {
                f == g
                    && match (x, y) {
                        (Some(x), Some(y)) => x.same(y),
                        (None, None) => true,
                        _ => false,
                    }
            }
            _ => false,
        }
    }

    /// Visits every column reference in the expression.
    pub fn columns(&self, out: &mut Vec<ColRef>) {
        match &self.kind {
            ExprKind::Lit(_) => {}
            ExprKind::Col(c) => out.push(*c),
            ExprKind::Unary(_, e) => e.columns(out),
            ExprKind::Binary(_, a, b) => {
                a.columns(out);
                b.columns(out);
            }
            ExprKind::Call(_, args) => args.iter().for_each(|a| a.columns(out)),
            ExprKind::Agg(_, arg) => {
                if let Some(a) = arg {
                    a.columns(out);
                }
            }
        }
    }
}

/// An aggregate function; what each takes, returns and folds with is in
/// [`crate::aggregates`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggFn {
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

/// Scalar functions. `Row`, `Uniform` and `Pick` exist only in generators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// The index of the node instance evaluating the expression within its group.
    Instance,
    /// Conversion of any value to its text.
    Str,
    /// The generator's row number, from 0.
    Row,
    /// A seeded uniform integer in `[lo, hi)`.
    Uniform,
    /// A seeded uniform choice among the arguments.
    Pick,
}

impl Builtin {
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Instance => "instance",
            Builtin::Str => "str",
            Builtin::Row => "row",
            Builtin::Uniform => "uniform",
            Builtin::Pick => "pick",
        }
    }
}

#[derive(Debug, Clone)]
pub struct System {
    pub name: String,
    /// `#[allow(nondeterminism)]`: no nondeterminism warnings for the whole system.
    pub allow_nondeterminism: bool,
    pub groups: Vec<NodeGroup>,
    pub wires: Vec<Wire>,
    pub feeds: Vec<Feed>,
    pub seals: Vec<Seal>,
    /// The coordination operators (`order`, `punctuate`, `hold`), written in the program or
    /// inserted by the rewriter (`crate::rewrite`): the only coordination a run applies.
    pub coordination: Coordination,
    pub span: Span,
}

/// The explicit coordination operators of a system.
#[derive(Debug, Clone, Default)]
pub struct Coordination {
    pub orders: Vec<Order>,
    pub punctuations: Vec<Punctuate>,
    pub holds: Vec<Hold>,
}

impl Coordination {
    pub fn is_empty(&self) -> bool {
        self.orders.is_empty() && self.punctuations.is_empty() && self.holds.is_empty()
    }
}

/// `order G;`: every instance of replicated group `G` takes the same batches of input in the
/// same order (a sequencing stage on each of its inputs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub group: GroupId,
    pub span: Span,
}

/// `punctuate P.O on (cols) -> G.I;`: every instance of `P` announces the seal keys it will
/// send on the wire `P.O -> G.I` before sending anything, and seals each key after the tick
/// of its last fact. `columns` are columns of the stream (`G.I`'s schema).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Punctuate {
    pub from: Endpoint,
    pub to: Endpoint,
    pub columns: Vec<usize>,
    pub span: Span,
}

/// `hold G.I until sealed on (cols);` (`until` is `None`): each instance of `G` holds the
/// facts of `I` per key until every producer that announced the key sealed it (one producer:
/// the independent seal; several: their vote), then releases the key's facts in one tick.
/// `hold G.R on (cols) until G.S sealed;`: each fact of read `R` waits until its key's
/// partition of held input `S` is complete (`columns` are `R`'s, in the order of `S`'s hold
/// columns); with no columns it waits until every partition of `S` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub stream: Endpoint,
    pub columns: Vec<usize>,
    pub until: Option<Endpoint>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct NodeGroup {
    pub id: GroupId,
    pub name: String,
    pub module: ModuleId,
    pub count: u32,
    pub replicated: bool,
    pub span: Span,
}

/// An interface of a node group: `group.interface`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    pub group: GroupId,
    pub collection: CollectionId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Broadcast,
    /// Hash-partition on these columns of the stream.
    Partition(Vec<usize>),
    Any,
    /// Send to the instance whose index is in this column.
    Reply(usize),
}

#[derive(Debug, Clone)]
pub struct Wire {
    pub from: Endpoint,
    pub to: Endpoint,
    pub delivery: Delivery,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Feed {
    pub to: Endpoint,
    pub source: FeedSource,
    pub span: Span,
}

/// The most rows a generator delivers in one tick. A tick's batch is built whole in memory,
/// so a generator of 2^63 rows with the default batch (`rows`) would build one endless tick;
/// the default is `rows` up to this, and a larger `batch` is refused (E0121).
pub const MAX_GENERATOR_BATCH: u64 = 1_000_000;

#[derive(Debug, Clone)]
pub enum FeedSource {
    File {
        path: String,
    },
    /// `rows` rows in batches of `batch` per tick (at most [`MAX_GENERATOR_BATCH`]); field `i`
    /// fills column `i` of the input.
    /// With a `rate`, at most that many rows per second: batch `t` is due `t * batch / rate`
    /// seconds after the node starts.
    Generate {
        rows: u64,
        seed: u64,
        batch: u64,
        rate: Option<u64>,
        fields: Vec<Expr>,
    },
}

#[derive(Debug, Clone)]
pub struct Seal {
    pub stream: Endpoint,
    pub columns: Vec<usize>,
    pub span: Span,
}
