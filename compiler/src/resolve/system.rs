//! Resolution of the system declaration: node groups, wiring, feeds and seals.

use super::expr::Ctx;
use super::Resolver;
use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::ir::{
    Collection, Delivery, Endpoint, Expr, Feed, FeedSource, GroupId, NodeGroup, Seal, System, Type, Value, Wire,
};
use bloomc_grammar::ast::{self, CollectionKind};
use std::collections::HashSet;

#[derive(Default)]
pub(super) struct Items<'a> {
    nodes: Vec<&'a ast::NodeDecl>,
    wires: Vec<&'a ast::WireDecl>,
    feeds: Vec<&'a ast::FeedDecl>,
    seals: Vec<&'a ast::SealDecl>,
    pub(super) orders: Vec<&'a ast::OrderDecl>,
    pub(super) punctuations: Vec<&'a ast::PunctuateDecl>,
    pub(super) holds: Vec<&'a ast::HoldDecl>,
}

impl Resolver<'_> {
    fn flatten<'a>(&mut self, items: &'a [ast::SystemItem], out: &mut Items<'a>) {
        for item in items {
            match item {
                ast::SystemItem::Node(n) => out.nodes.push(n),
                ast::SystemItem::Wire(w) => out.wires.push(w),
                ast::SystemItem::Feed(f) => out.feeds.push(f),
                ast::SystemItem::Seal(s) => out.seals.push(s),
                ast::SystemItem::Order(o) => out.orders.push(o),
                ast::SystemItem::Punctuate(p) => out.punctuations.push(p),
                ast::SystemItem::Hold(h) => out.holds.push(h),
                ast::SystemItem::When(w) => {
                    if self.condition(&w.cond) == Some(true) {
                        self.flatten(&w.items, out);
                    }
                }
                ast::SystemItem::Error(_) => {}
            }
        }
    }

    pub(super) fn system(&mut self, s: &ast::SystemDecl) -> Option<System> {
        let mut items = Items::default();
        self.flatten(&s.items, &mut items);
        let groups = self.groups(&items);
        let wires = self.wires(&items, &groups);
        let feeds = self.feeds(&items, &groups);
        let seals = self.seals(&items, &groups);
        self.unfed(&items, &groups, &s.name.name);
        // Fed inputs that no wire reaches, sealed by their feed: a read may wait for them.
        let fed_seals: Vec<Seal> = seals
            .iter()
            .filter(|x| feeds.iter().any(|f| f.to == x.stream) && !wires.iter().any(|w| w.to == x.stream))
            .cloned()
            .collect();
        let coordination = self.coordination(&items, &groups, &wires, &fed_seals);
        let allow_nondeterminism = self.attributes(&s.attrs);
        Some(System {
            name: s.name.name.clone(),
            allow_nondeterminism,
            groups,
            wires,
            feeds,
            seals,
            coordination,
            span: s.name.span,
        })
    }

    /// The node groups, each of a declared module with a count of 1 to 10,000.
    fn groups(&mut self, items: &Items<'_>) -> Vec<NodeGroup> {
        let mut groups: Vec<NodeGroup> = Vec::new();
        for n in &items.nodes {
            if let Some(first) = groups.iter().find(|g| g.name == n.name.name) {
                let span = first.span;
                self.duplicate("node group", &n.name, span);
                continue;
            }
            let Some(&module) = self.module_index.get(&n.module.name) else {
                let names: Vec<String> = self.modules.iter().map(|m| m.name.clone()).collect();
                let help = did_you_mean(&n.module.name, names.iter().map(String::as_str))
                    .unwrap_or_else(|| "declare the module, or `use` the library that defines it".to_string());
                self.report(
                    Diagnostic::new(
                        Code::UnknownModule,
                        format!("unknown module `{}`", n.module.name),
                        n.module.span,
                        "no such module",
                    )
                    .with_help(help),
                );
                continue;
            };
            let count = match &n.count {
                None => 1,
                Some(e) => match self.constant(e, "a node count") {
                    Some(Value::Int(c)) if (1..=10_000).contains(&c) => u32::try_from(c).unwrap_or(1),
                    Some(Value::Int(c)) => {
                        self.report(
                            Diagnostic::new(
                                Code::BadNodeCount,
                                format!("a node group needs 1 to 10000 instances, not {c}"),
                                e.span,
                                "out of range",
                            )
                            .with_help("give a positive count, e.g. `--set` a larger parameter"),
                        );
                        continue;
                    }
                    Some(v) => {
                        self.report(Diagnostic::new(
                            Code::TypeMismatch,
                            format!("a node count must be int, found {}", v.ty()),
                            e.span,
                            "expected int",
                        ));
                        continue;
                    }
                    None => continue,
                },
            };
            groups.push(NodeGroup {
                id: GroupId::from_index(groups.len()),
                name: n.name.name.clone(),
                module,
                count,
                replicated: n.replicated,
                span: n.name.span,
            });
        }
        groups
    }

    /// The wires, each from an output to an input of the same schema.
    fn wires(&mut self, items: &Items<'_>, groups: &[NodeGroup]) -> Vec<Wire> {
        let mut wires = Vec::new();
        for w in &items.wires {
            let from = self.endpoint(groups, &w.from, CollectionKind::Output);
            let to = self.endpoint(groups, &w.to, CollectionKind::Input);
            let (Some((from, out)), Some((to, inp))) = (from, to) else {
                continue;
            };
            if !compatible(&out, &inp) {
                self.report(
                    Diagnostic::new(
                        Code::WiringMismatch,
                        format!("cannot wire `{}` to `{}`: their schemas differ", describe(&w.from), describe(&w.to)),
                        w.span,
                        "incompatible schemas",
                    )
                    .with_label(out.span, format!("`{}` is {}", out.name, out.schema()))
                    .with_label(inp.span, format!("`{}` is {}", inp.name, inp.schema()))
                    .with_help("a wire needs the same column names and types, in the same order, on both ends"),
                );
                continue;
            }
            let delivery = match &w.delivery {
                ast::Delivery::Broadcast => Delivery::Broadcast,
                ast::Delivery::Any => Delivery::Any,
                ast::Delivery::Partition(cols) => match self.stream_columns(&inp, cols) {
                    Some(c) => Delivery::Partition(c),
                    None => continue,
                },
                ast::Delivery::Reply(col) => match self.stream_columns(&inp, std::slice::from_ref(col)) {
                    Some(c) => {
                        let index = c.first().copied().unwrap_or(0);
                        if inp.columns.get(index).map(|c| c.ty) != Some(Type::Int) {
                            self.report(
                                Diagnostic::new(
                                    Code::TypeMismatch,
                                    format!("`reply({})` needs an int column holding an instance index", col.name),
                                    col.span,
                                    "not int",
                                )
                                .with_help("fill it with `instance()` in the module that sends the request"),
                            );
                            continue;
                        }
                        Delivery::Reply(index)
                    }
                    None => continue,
                },
            };
            wires.push(Wire { from, to, delivery, span: w.span });
        }
        wires
    }

    /// The feeds: files and generators.
    fn feeds(&mut self, items: &Items<'_>, groups: &[NodeGroup]) -> Vec<Feed> {
        let mut feeds = Vec::new();
        for f in &items.feeds {
            let Some((to, inp)) = self.endpoint(groups, &f.to, CollectionKind::Input) else {
                continue;
            };
            let source = match &f.source {
                ast::FeedSource::File { path, .. } => FeedSource::File { path: path.clone() },
                ast::FeedSource::Generate { options, fields, span } => {
                    match self.generator(&inp, options, fields, *span) {
                        Some(g) => g,
                        None => continue,
                    }
                }
            };
            feeds.push(Feed { to, source, span: f.span });
        }
        feeds
    }

    /// The seals, one per stream.
    fn seals(&mut self, items: &Items<'_>, groups: &[NodeGroup]) -> Vec<Seal> {
        let mut seals = Vec::new();
        for s in &items.seals {
            let Some((stream, inp)) = self.endpoint(groups, &s.stream, CollectionKind::Input) else {
                continue;
            };
            if let Some(first) = seals.iter().find(|x: &&Seal| x.stream == stream) {
                let first = first.span;
                self.report(
                    Diagnostic::new(
                        Code::Duplicate,
                        format!("stream `{}.{}` is sealed twice", s.stream.group.name, s.stream.interface.name),
                        s.span,
                        "sealed again here",
                    )
                    .with_label(first, "first sealed here")
                    .with_help("a stream has one seal key; list all its columns in one `sealed on (..)`"),
                );
                continue;
            }
            if let Some(columns) = self.stream_columns(&inp, &s.columns) {
                seals.push(Seal { stream, columns, span: s.span });
            }
        }
        seals
    }

    /// Warns of the inputs of deployed groups that nothing feeds (W0002).
    fn unfed(&mut self, items: &Items<'_>, groups: &[NodeGroup], system: &str) {
        // Inputs of deployed groups that nothing feeds: their rules can never fire. Counted
        // by name, so a wire rejected above does not also raise this warning.
        let fed: HashSet<(&str, &str)> = items
            .wires
            .iter()
            .map(|w| &w.to)
            .chain(items.feeds.iter().map(|f| &f.to))
            .map(|e| (e.group.name.as_str(), e.interface.name.as_str()))
            .collect();
        for g in groups {
            let inputs: Vec<Collection> = self
                .collections
                .iter()
                .filter(|c| c.module == g.module && c.kind == CollectionKind::Input)
                .cloned()
                .collect();
            for c in inputs {
                if !fed.contains(&(g.name.as_str(), c.name.as_str())) {
                    self.report(
                        Diagnostic::new(
                            Code::UnfedInput,
                            format!("input `{}.{}` receives nothing in system `{}`", g.name, c.name, system),
                            g.span,
                            format!("`{}` is never fed", c.name),
                        )
                        .with_label(c.span, "the input interface")
                        .with_help(format!("wire an output to `{}.{}` or give it a `feed`", g.name, c.name)),
                    );
                }
            }
        }
    }

    pub(super) fn endpoint(
        &mut self,
        groups: &[NodeGroup],
        e: &ast::Endpoint,
        want: CollectionKind,
    ) -> Option<(Endpoint, Collection)> {
        let Some(group) = groups.iter().find(|g| g.name == e.group.name) else {
            let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
            let help = did_you_mean(&e.group.name, names.iter().copied())
                .unwrap_or_else(|| format!("declare it with `node {}: Module;`", e.group.name));
            self.report(
                Diagnostic::new(
                    Code::UnknownNode,
                    format!("unknown node group `{}`", e.group.name),
                    e.group.span,
                    "no such node group",
                )
                .with_help(help),
            );
            return None;
        };
        let id = self.lookup_collection(group.module, &e.interface)?;
        let c = self.collections.get(id.index())?.clone();
        if c.kind != want {
            let role = if want == CollectionKind::Output { "send from" } else { "deliver to" };
            self.report(
                Diagnostic::new(
                    Code::WrongDirection,
                    format!(
                        "cannot {role} {} `{}`: it must be an {} interface",
                        c.kind.keyword(),
                        describe(e),
                        want.keyword()
                    ),
                    e.span,
                    format!("this is {} {}", article(c.kind), c.kind.keyword()),
                )
                .with_label(c.span, "declared here")
                .with_help(
                    "wires go from an output interface to an input interface; feeds and seals name input interfaces",
                ),
            );
            return None;
        }
        Some((Endpoint { group: group.id, collection: id }, c))
    }

    pub(super) fn stream_columns(&mut self, c: &Collection, cols: &[ast::Ident]) -> Option<Vec<usize>> {
        let mut out = Vec::new();
        for col in cols {
            match c.column_index(&col.name) {
                Some(i) => out.push(i),
                None => {
                    let names: Vec<&str> = c.columns.iter().map(|c| c.name.as_str()).collect();
                    let help = did_you_mean(&col.name, names.iter().copied())
                        .unwrap_or_else(|| format!("its columns are: {}", names.join(", ")));
                    self.report(
                        Diagnostic::new(
                            Code::UnknownColumn,
                            format!("stream `{}` has no column `{}`", c.name, col.name),
                            col.span,
                            "unknown column",
                        )
                        .with_help(help),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    fn generator(
        &mut self,
        inp: &Collection,
        options: &[(ast::Ident, ast::Expr)],
        fields: &[(ast::Ident, ast::Expr)],
        span: bloomc_grammar::span::Span,
    ) -> Option<FeedSource> {
        let (mut ok, o) = self.generator_options(options);
        let Some(rows) = o.rows else {
            if o.rows_given {
                // `rows` was given but invalid, and that is already reported.
                return None;
            }
            self.report(
                Diagnostic::new(Code::BadGenerator, "a generator needs `rows`", span, "how many rows?")
                    .with_help("write `generate(rows: 1000, seed: 1, batch: 100) { .. }`"),
            );
            return None;
        };
        let typed = self.generator_fields(inp, fields, &mut ok);
        let missing: Vec<&str> =
            inp.columns.iter().zip(&typed).filter(|(_, t)| t.is_none()).map(|(c, _)| c.name.as_str()).collect();
        if ok && !missing.is_empty() {
            self.report(
                Diagnostic::new(
                    Code::BadGenerator,
                    format!("the generator does not fill {}", missing.join(", ")),
                    span,
                    "missing fields",
                )
                .with_help(format!("give every column of `{}{}` a field", inp.name, inp.schema())),
            );
            return None;
        }
        let fields: Vec<Expr> = typed.into_iter().collect::<Option<_>>()?;
        ok.then_some(FeedSource::Generate {
            rows,
            seed: o.seed,
            batch: o.batch.unwrap_or(rows.min(crate::ir::MAX_GENERATOR_BATCH)),
            rate: o.rate,
            fields,
        })
    }

    /// A generator's options (`rows`, `seed`, `batch`, `rate`), each checked; `false` when
    /// one was reported.
    fn generator_options(&mut self, options: &[(ast::Ident, ast::Expr)]) -> (bool, GeneratorOptions) {
        let mut ok = true;
        let mut o = GeneratorOptions::default();
        let mut seen: Vec<&ast::Ident> = Vec::new();
        for (name, e) in options {
            if let Some(first) = seen.iter().find(|s| s.name == name.name) {
                let first = first.span;
                self.duplicate("generator option", name, first);
                ok = false;
                continue;
            }
            seen.push(name);
            let slot = match name.name.as_str() {
                "rows" | "seed" | "batch" | "rate" => name.name.as_str(),
                other => {
                    let help = did_you_mean(other, ["rows", "seed", "batch", "rate"])
                        .unwrap_or_else(|| "the options are rows, seed, batch and rate".to_string());
                    self.report(
                        Diagnostic::new(
                            Code::BadGenerator,
                            format!("unknown generator option `{other}`"),
                            name.span,
                            "unknown option",
                        )
                        .with_help(help),
                    );
                    ok = false;
                    continue;
                }
            };
            match self.constant(e, "a generator option") {
                Some(Value::Int(v))
                    if slot == "batch" && u64::try_from(v).is_ok_and(|v| v > crate::ir::MAX_GENERATOR_BATCH) =>
                {
                    self.report(
                        Diagnostic::new(
                            Code::BadGenerator,
                            format!("`batch` is at most {} rows per tick, found {v}", crate::ir::MAX_GENERATOR_BATCH),
                            e.span,
                            "out of range",
                        )
                        .with_help("a tick's batch is built whole in memory: give a smaller batch (more ticks)"),
                    );
                    ok = false;
                }
                Some(Value::Int(v)) if v >= 0 && (slot == "seed" || v > 0) => {
                    let v = u64::try_from(v).unwrap_or(0);
                    match slot {
                        "rows" => o.rows = Some(v),
                        "seed" => o.seed = v,
                        "rate" => o.rate = Some(v),
                        _ => o.batch = Some(v),
                    }
                }
                Some(v) => {
                    self.report(Diagnostic::new(
                        Code::BadGenerator,
                        if slot == "seed" {
                            format!("`seed` must be an int of 0 or more, found {v}")
                        } else {
                            format!("`{slot}` must be a positive int, found {v}")
                        },
                        e.span,
                        "out of range",
                    ));
                    ok = false;
                }
                None => ok = false,
            }
        }
        o.rows_given = seen.iter().any(|s| s.name == "rows");
        (ok, o)
    }

    /// A generator's fields, each an expression of its column's type, in column order
    /// (`None` where a column has no valid field); `ok` is cleared when one was reported.
    fn generator_fields(
        &mut self,
        inp: &Collection,
        fields: &[(ast::Ident, ast::Expr)],
        ok: &mut bool,
    ) -> Vec<Option<Expr>> {
        let scope: Vec<(String, &Collection)> = Vec::new();
        let ctx = Ctx { scope: &scope, aggregates: false, generator: true, runtime: true, what: "a generator field" };
        let mut typed: Vec<Option<Expr>> = vec![None; inp.columns.len()];
        for (name, e) in fields {
            let Some(i) = inp.column_index(&name.name) else {
                self.report(
                    Diagnostic::new(
                        Code::BadGenerator,
                        format!("`{}` has no column `{}`", inp.name, name.name),
                        name.span,
                        "unknown column",
                    )
                    .with_help(format!("the generator fills {}", inp.schema())),
                );
                *ok = false;
                continue;
            };
            if typed.get(i).is_some_and(Option::is_some) {
                self.report(Diagnostic::new(
                    Code::Duplicate,
                    format!("field `{}` is given twice", name.name),
                    name.span,
                    "given again",
                ));
                *ok = false;
                continue;
            }
            let Some(expr) = self.expr(e, &ctx) else {
                *ok = false;
                continue;
            };
            let want = inp.columns.get(i).map_or(Type::Int, |c| c.ty);
            if expr.ty != want {
                self.report(Diagnostic::new(
                    Code::TypeMismatch,
                    format!("field `{}` must be {want}, found {}", name.name, expr.ty),
                    expr.span,
                    format!("this is {}", expr.ty),
                ));
                *ok = false;
                continue;
            }
            if let Some(slot) = typed.get_mut(i) {
                *slot = Some(expr);
            }
        }
        typed
    }
}

/// A generator's options, as given.
#[derive(Default)]
struct GeneratorOptions {
    rows: Option<u64>,
    /// Whether `rows` was given (valid or not).
    rows_given: bool,
    seed: u64,
    batch: Option<u64>,
    rate: Option<u64>,
}

pub(super) fn article(kind: CollectionKind) -> &'static str {
    match kind {
        CollectionKind::Input | CollectionKind::Output => "an",
        CollectionKind::Table | CollectionKind::Scratch => "a",
    }
}

pub(super) fn describe(e: &ast::Endpoint) -> String {
    format!("{}.{}", e.group.name, e.interface.name)
}

fn compatible(a: &Collection, b: &Collection) -> bool {
    a.columns.len() == b.columns.len()
        && a.columns.iter().zip(&b.columns).all(|(x, y)| x.name == y.name && x.ty == y.ty)
}
