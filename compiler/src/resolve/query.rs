//! Resolution of one rule: its target, merge operator and query become an `ir::Rule`.

use super::expr::Ctx;
use super::system::article;
use super::Resolver;
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{AntiJoin, Atom, Body, ColRef, Collection, Equality, Expr, ExprKind, ModuleId, Rule, RuleId};
use bloomc_grammar::ast::{self, BinaryOp, CollectionKind, MergeOp};
use bloomc_grammar::span::Span;

/// Which merge operators each kind of collection accepts.
pub fn legal(kind: CollectionKind, op: MergeOp) -> bool {
    use CollectionKind::*;
    use MergeOp::*;
    matches!(
        (kind, op),
        (Table, Instant | Deferred | Delete) | (Scratch, Instant | Deferred) | (Output, Instant | Async)
    )
}

fn legal_list(kind: CollectionKind) -> &'static str {
    match kind {
        CollectionKind::Table => "`<=`, `<+` and `<-`",
        CollectionKind::Scratch => "`<=` and `<+`",
        CollectionKind::Output => "`<=` and `<~`",
        CollectionKind::Input => "nothing: inputs are filled by wiring and feeds",
    }
}

impl Resolver<'_> {
    pub(super) fn rule(&mut self, module: ModuleId, rule: &ast::RuleDecl) -> Option<Rule> {
        let target_id = self.lookup_collection(module, &rule.target);
        let target = target_id.and_then(|id| self.collections.get(id.index()).cloned());
        if let Some(t) = &target {
            if !legal(t.kind, rule.op) {
                self.report(
                    Diagnostic::new(
                        Code::IllegalMerge,
                        format!("`{}` cannot merge into {} `{}`", rule.op.symbol(), t.kind.keyword(), t.name),
                        rule.op_span,
                        format!("not allowed for {} {}", article(t.kind), t.kind.keyword()),
                    )
                    .with_label(t.span, format!("`{}` is declared {} here", t.name, t.kind.keyword()))
                    .with_help(format!(
                        "{} {} accepts {}",
                        article(t.kind),
                        t.kind.keyword(),
                        legal_list(t.kind)
                    )),
                );
            }
        }
        if let Some(t) = &target {
            // Counted before the body is checked, so a broken rule does not also make its
            // target look unused.
            self.written.insert(t.id);
        }
        let body = self.body(module, &rule.query);
        let (target, body) = (target?, body?);
        self.check_head(&target, &rule.query, &body)?;
        if !legal(target.kind, rule.op) {
            return None;
        }
        Some(Rule {
            id: RuleId::from_index(self.rules.len()),
            module,
            target: target.id,
            op: rule.op,
            body,
            span: rule.span,
            op_span: rule.op_span,
        })
    }

    fn binding(&mut self, module: ModuleId, b: &ast::Binding) -> Option<Collection> {
        self.scan(module, &b.collection)
    }

    fn scan(&mut self, module: ModuleId, name: &ast::Ident) -> Option<Collection> {
        let id = self.lookup_collection(module, name)?;
        self.read.insert(id);
        self.collections.get(id.index()).cloned()
    }

    fn body(&mut self, module: ModuleId, query: &ast::Query) -> Option<Body> {
        let q = match query {
            ast::Query::Scan(name) => return self.scan_body(module, name),
            ast::Query::Select(q) => q,
        };
        // Without every binding, the clauses below would only report cascades.
        let scope = self.scope(module, q)?;
        let atoms: Vec<Atom> =
            scope.iter().map(|(alias, c, span)| Atom { collection: c.id, alias: alias.clone(), span: *span }).collect();
        let names: Vec<(String, &Collection)> = scope.iter().map(|(a, c, _)| (a.clone(), c)).collect();
        let plain = Ctx { scope: &names, aggregates: false, generator: false, runtime: true, what: "a `where` clause" };
        // Every clause is checked, so that each reports its problems, before giving up.
        let mut ok = true;
        let (mut equalities, mut filters) = (Vec::new(), Vec::new());
        if let Some(w) = &q.where_ {
            match self.bool_condition(w, &plain, "where") {
                Some(e) => split_where(e, &mut equalities, &mut filters),
                None => ok = false,
            }
        }
        let mut antijoins = Vec::new();
        for n in &q.notins {
            match self.antijoin(module, n, &names) {
                Some(a) => antijoins.push(a),
                None => ok = false,
            }
        }
        let agg_ctx =
            Ctx { scope: &names, aggregates: true, generator: false, runtime: true, what: "a `select` clause" };
        let group_ctx = Ctx { what: "a `group by` clause", ..plain };
        let mut group_by = None;
        if let Some(keys) = &q.group_by {
            let typed: Vec<Option<Expr>> = keys.iter().map(|k| self.expr(k, &group_ctx)).collect();
            match typed.into_iter().collect::<Option<Vec<_>>>() {
                Some(keys) => group_by = Some(keys),
                None => ok = false,
            }
        }
        let head = self.head(q, &names, &agg_ctx);
        let having_ctx = Ctx { what: "a `having` clause", ..agg_ctx };
        let mut having = None;
        if let Some(h) = &q.having {
            match self.bool_condition(h, &having_ctx, "having") {
                Some(e) => having = Some(e),
                None => ok = false,
            }
        }
        let (Some(head), true) = (head, ok) else { return None };
        let group_by = self.grouping(q, &head, having.as_ref(), group_by)?;
        Some(Body { atoms, equalities, filters, antijoins, group_by, having, head })
    }

    /// `log <+ put;`: every column of one collection.
    fn scan_body(&mut self, module: ModuleId, name: &ast::Ident) -> Option<Body> {
        let coll = self.scan(module, name)?;
        let head = (0..coll.columns.len())
            .filter_map(|i| {
                let c = coll.columns.get(i)?;
                Some(Expr { kind: ExprKind::Col(ColRef { atom: 0, column: i }), ty: c.ty, span: name.span })
            })
            .collect();
        let atom = Atom { collection: coll.id, alias: coll.name.clone(), span: name.span };
        Some(Body {
            atoms: vec![atom],
            equalities: Vec::new(),
            filters: Vec::new(),
            antijoins: Vec::new(),
            group_by: None,
            having: None,
            head,
        })
    }

    /// The `from` bindings: (alias, collection, span) each, or `None` when one is bad or
    /// named twice (every one is checked first).
    fn scope(&mut self, module: ModuleId, q: &ast::SelectQuery) -> Option<Vec<(String, Collection, Span)>> {
        let mut ok = true;
        let mut scope: Vec<(String, Collection, Span)> = Vec::new();
        for b in &q.from {
            let alias = b.alias();
            if let Some((_, _, first)) = scope.iter().find(|(a, _, _)| *a == alias.name) {
                let first = *first;
                self.duplicate("binding", alias, first);
                ok = false;
                continue;
            }
            match self.binding(module, b) {
                Some(c) => scope.push((alias.name.clone(), c, alias.span)),
                None => ok = false,
            }
        }
        ok.then_some(scope)
    }

    /// A `where` or `having` condition (`clause` names it), which must be a bool.
    fn bool_condition(&mut self, e: &ast::Expr, ctx: &Ctx<'_>, clause: &str) -> Option<Expr> {
        let e = self.expr(e, ctx)?;
        if e.ty != crate::ir::Type::Bool {
            self.report(Diagnostic::new(
                Code::TypeMismatch,
                format!("`{clause}` needs a bool condition, found {}", e.ty),
                e.span,
                "expected bool",
            ));
            return None;
        }
        Some(e)
    }

    /// The `select` list (`a.*` expanded); without one, every column of a single binding
    /// of a query without `group by`. `None` after a problem, reported.
    fn head(&mut self, q: &ast::SelectQuery, names: &[(String, &Collection)], ctx: &Ctx<'_>) -> Option<Vec<Expr>> {
        let mut head = Vec::new();
        let mut ok = true;
        match &q.select {
            Some(items) => {
                for item in items {
                    match item {
                        ast::SelectItem::Expr { expr, .. } => match self.expr(expr, ctx) {
                            Some(e) => head.push(e),
                            None => ok = false,
                        },
                        ast::SelectItem::Wildcard { alias, span } => {
                            match names.iter().position(|(a, _)| *a == alias.name) {
                                Some(atom) => {
                                    let cols = names.get(atom).map_or(&[][..], |(_, c)| c.columns.as_slice());
                                    head.extend(cols.iter().enumerate().map(|(column, c)| Expr {
                                        kind: ExprKind::Col(ColRef { atom, column }),
                                        ty: c.ty,
                                        span: *span,
                                    }));
                                }
                                None => {
                                    self.report(Diagnostic::new(
                                        Code::UnknownAlias,
                                        format!("no binding named `{}` in this rule", alias.name),
                                        alias.span,
                                        "unknown alias",
                                    ));
                                    ok = false;
                                }
                            }
                        }
                    }
                }
            }
            None if q.from.len() == 1 && q.group_by.is_none() => {
                if let Some((_, c)) = names.first() {
                    head.extend(c.columns.iter().enumerate().map(|(column, col)| Expr {
                        kind: ExprKind::Col(ColRef { atom: 0, column }),
                        ty: col.ty,
                        span: q.span,
                    }));
                }
            }
            None => {
                self.report(
                    Diagnostic::new(Code::MissingSelect, "this query needs a `select` clause", q.span, "no `select`")
                        .with_help("only a query over a single `from` binding without `group by` may leave out `select`; say which columns to produce"),
                );
                ok = false;
            }
        }
        ok.then_some(head)
    }

    /// The grouping of an aggregating query: its `group by` keys (none: one group), every
    /// column of `head` and `having` grouped or aggregated; `None` (reported) when one is
    /// neither, or when a query that does not aggregate has a `having`. `Some(None)` for a
    /// query that does not aggregate.
    fn grouping(
        &mut self,
        q: &ast::SelectQuery,
        head: &[Expr],
        having: Option<&Expr>,
        group_by: Option<Vec<Expr>>,
    ) -> Option<Option<Vec<Expr>>> {
        let aggregating =
            group_by.is_some() || head.iter().any(Expr::has_aggregate) || having.is_some_and(Expr::has_aggregate);
        if !aggregating {
            if let Some(h) = &q.having {
                self.report(
                    Diagnostic::new(
                        Code::AggregateMisuse,
                        "`having` without grouping or aggregates",
                        h.span,
                        "nothing to filter groups of",
                    )
                    .with_help("use `where` to filter rows, or add `group by`"),
                );
                return None;
            }
            return Some(None);
        }
        let keys = group_by.unwrap_or_default();
        let mut ok = true;
        for e in head.iter().chain(having) {
            if let Some(bad) = ungrouped(e, &keys) {
                self.report(
                    Diagnostic::new(
                        Code::AggregateMisuse,
                        "this column is neither grouped nor aggregated",
                        bad,
                        "not in `group by`",
                    )
                    .with_help("add it to `group by`, or wrap it in an aggregate such as min(..)"),
                );
                ok = false;
            }
        }
        ok.then_some(Some(keys))
    }

    fn antijoin(&mut self, module: ModuleId, n: &ast::NotIn, outer: &[(String, &Collection)]) -> Option<AntiJoin> {
        let inner = self.binding(module, &n.binding)?;
        let alias = n.binding.alias().name.clone();
        if n.on.is_some() && outer.iter().any(|(a, _)| *a == alias) {
            self.report(
                Diagnostic::new(
                    Code::Duplicate,
                    format!("binding `{alias}` is declared twice"),
                    n.binding.alias().span,
                    "already bound in `from`",
                )
                .with_help(format!("give the negated collection its own alias: `notin {} x on ..`", inner.name)),
            );
            return None;
        }
        let Some(on) = &n.on else {
            // Whole-row comparison: exactly one positive atom, with the same schema.
            let [(_, only)] = outer else {
                self.report(
                    Diagnostic::new(
                        Code::BadAntijoin,
                        "`notin` without `on` needs exactly one `from` binding",
                        n.span,
                        "ambiguous row",
                    )
                    .with_help("say which columns must match: `notin x on a.k == x.k`"),
                );
                return None;
            };
            if only.columns.len() != inner.columns.len()
                || only.columns.iter().zip(&inner.columns).any(|(a, b)| a.ty != b.ty)
            {
                self.report(
                    Diagnostic::new(
                        Code::ArityMismatch,
                        format!(
                            "`notin {}` compares whole rows, but `{}` and `{}` have different schemas",
                            inner.name, only.name, inner.name
                        ),
                        n.span,
                        format!("{} vs {}", only.schema(), inner.schema()),
                    )
                    .with_help("add `on` with the column pairs to compare"),
                );
                return None;
            }
            let pairs = (0..inner.columns.len()).map(|i| (ColRef { atom: 0, column: i }, i)).collect();
            return Some(AntiJoin { collection: inner.id, alias, pairs, span: n.span });
        };
        // Inside `on`, the notin binding is one more alias after the positive ones.
        let mut scope: Vec<(String, &Collection)> = outer.to_vec();
        scope.push((alias.clone(), &inner));
        let inner_atom = outer.len();
        let ctx =
            Ctx { scope: &scope, aggregates: false, generator: false, runtime: true, what: "a `notin .. on` clause" };
        let cond = self.expr(on, &ctx)?;
        let mut conjuncts = Vec::new();
        flatten_and(cond, &mut conjuncts);
        let mut pairs = Vec::new();
        for c in conjuncts {
            let pair = match &c.kind {
                ExprKind::Binary(BinaryOp::Eq, a, b) => match (&a.kind, &b.kind) {
                    (ExprKind::Col(x), ExprKind::Col(y)) if x.atom != inner_atom && y.atom == inner_atom => {
                        Some((*x, y.column))
                    }
                    (ExprKind::Col(x), ExprKind::Col(y)) if y.atom != inner_atom && x.atom == inner_atom => {
                        Some((*y, x.column))
                    }
                    _ => None,
                },
                _ => None,
            };
            match pair {
                Some(p) => pairs.push(p),
                None => {
                    self.report(
                        Diagnostic::new(Code::BadAntijoin, "a `notin` condition must be column pairs joined by `and`", c.span, "not `outer.col == inner.col`")
                            .with_help(format!("compare a column of the `from` bindings with a column of `{alias}`; filter other conditions in `where`")),
                    );
                    return None;
                }
            }
        }
        Some(AntiJoin { collection: inner.id, alias, pairs, span: n.span })
    }

    /// The head must match the target's arity, types and (where `as` names them) columns.
    fn check_head(&mut self, target: &Collection, query: &ast::Query, body: &Body) -> Option<()> {
        let head_span = match query {
            ast::Query::Scan(i) => i.span,
            ast::Query::Select(q) => q.span,
        };
        if body.head.len() != target.columns.len() {
            self.report(
                Diagnostic::new(
                    Code::ArityMismatch,
                    format!(
                        "`{}` has {} but this query produces {}",
                        target.name,
                        count_columns(target.columns.len()),
                        body.head.len()
                    ),
                    head_span,
                    format!("{} column{}", body.head.len(), if body.head.len() == 1 { "" } else { "s" }),
                )
                .with_label(target.span, format!("`{}{}` declared here", target.name, target.schema())),
            );
            return None;
        }
        // The `as` name of each head column, with `alias.*` expanded to unnamed columns.
        let names: Vec<Option<&ast::Ident>> = match query {
            ast::Query::Select(ast::SelectQuery { select: Some(items), .. }) => items
                .iter()
                .flat_map(|i| match i {
                    ast::SelectItem::Expr { name, .. } => vec![name.as_ref()],
                    ast::SelectItem::Wildcard { alias, .. } => {
                        let arity = body
                            .atoms
                            .iter()
                            .find(|a| a.alias == alias.name)
                            .and_then(|a| self.collections.get(a.collection.index()))
                            .map_or(0, |c| c.columns.len());
                        vec![None; arity]
                    }
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut ok = true;
        for (i, (e, col)) in body.head.iter().zip(&target.columns).enumerate() {
            if e.ty != col.ty {
                self.report(
                    Diagnostic::new(
                        Code::TypeMismatch,
                        format!(
                            "column {} of `{}` is `{}: {}`, but this is {}",
                            i + 1,
                            target.name,
                            col.name,
                            col.ty,
                            e.ty
                        ),
                        e.span,
                        format!("this is {}", e.ty),
                    )
                    .with_label(col.span, format!("`{}` declared {} here", col.name, col.ty)),
                );
                ok = false;
            }
        }
        if names.len() == body.head.len() {
            for (name, col) in names.iter().zip(&target.columns) {
                if let Some(name) = name {
                    if name.name != col.name {
                        self.report(
                            Diagnostic::new(
                                Code::ColumnNameMismatch,
                                format!(
                                    "`as {}` names a column that `{}` has at another position, or not at all",
                                    name.name, target.name
                                ),
                                name.span,
                                format!("this position is `{}`", col.name),
                            )
                            .with_label(col.span, "the target column at this position")
                            .with_help(format!(
                                "columns are matched by position; write `as {}` or reorder the select list",
                                col.name
                            )),
                        );
                        ok = false;
                    }
                }
            }
        }
        ok.then_some(())
    }
}

fn flatten_and(e: Expr, out: &mut Vec<Expr>) {
    match e.kind {
        ExprKind::Binary(BinaryOp::And, a, b) => {
            flatten_and(*a, out);
            flatten_and(*b, out);
        }
        kind => out.push(Expr { kind, ..e }),
    }
}

/// Splits a `where` condition into join equalities between atoms and remaining filters.
fn split_where(e: Expr, equalities: &mut Vec<Equality>, filters: &mut Vec<Expr>) {
    let mut conjuncts = Vec::new();
    flatten_and(e, &mut conjuncts);
    for c in conjuncts {
        if let ExprKind::Binary(BinaryOp::Eq, a, b) = &c.kind {
            if let (ExprKind::Col(x), ExprKind::Col(y)) = (&a.kind, &b.kind) {
                if x.atom != y.atom {
                    equalities.push(Equality { left: *x, right: *y, span: c.span });
                    continue;
                }
            }
        }
        filters.push(c);
    }
}

/// The span of a column used outside an aggregate and not covered by a grouping key.
fn ungrouped(e: &Expr, keys: &[Expr]) -> Option<Span> {
    if keys.iter().any(|k| k.same(e)) {
        return None;
    }
    match &e.kind {
        ExprKind::Agg(..) | ExprKind::Lit(_) => None,
        ExprKind::Col(_) => Some(e.span),
        ExprKind::Unary(_, x) => ungrouped(x, keys),
        ExprKind::Binary(_, a, b) => ungrouped(a, keys).or_else(|| ungrouped(b, keys)),
        ExprKind::Call(_, args) => args.iter().find_map(|a| ungrouped(a, keys)),
    }
}

fn count_columns(n: usize) -> String {
    if n == 1 {
        "1 column".to_string()
    } else {
        format!("{n} columns")
    }
}
