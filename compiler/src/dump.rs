//! A stable, readable text form of the IR for `bloomc dump ir` and snapshot tests.

use crate::ir::{Body, Delivery, Endpoint, Expr, ExprKind, FeedSource, Program, Rule};
use bloomc_grammar::ast::UnaryOp;
use std::fmt::Write;

pub fn program(p: &Program) -> String {
    let mut out = String::new();
    if !p.params.is_empty() {
        out.push_str("params\n");
        for param in &p.params {
            let origin = if param.overridden { "  (--set)" } else { "" };
            let _ = writeln!(out, "  {}: {} = {}{origin}", param.name, param.ty, param.value);
        }
    }
    for m in &p.modules {
        let _ = writeln!(out, "module {}", m.name);
        for &c in &m.collections {
            let Some(c) = p.collection(c) else { continue };
            let cols: Vec<String> = c.columns.iter().map(|c| format!("{}: {}", c.name, c.ty)).collect();
            let _ = writeln!(out, "  {} {}({})  stratum {}", c.kind.keyword(), c.name, cols.join(", "), c.stratum);
        }
        for &r in &m.rules {
            if let Some(r) = p.rule(r) {
                rule(&mut out, p, r);
            }
        }
    }
    if let Some(s) = &p.system {
        let _ = writeln!(out, "system {}", s.name);
        for g in &s.groups {
            let module = p.module(g.module).map_or("?", |m| m.name.as_str());
            let rep = if g.replicated { " replicated" } else { "" };
            let _ = writeln!(out, "  node {}: {} x {}{rep}", g.name, module, g.count);
        }
        let ep = |e: &Endpoint| {
            let group = s.groups.get(e.group.index()).map_or("?", |g| g.name.as_str());
            format!("{group}.{}", p.collection_name(e.collection))
        };
        let col = |e: &Endpoint, i: usize| {
            p.collection(e.collection).and_then(|c| c.columns.get(i)).map_or("?".to_string(), |c| c.name.clone())
        };
        for w in &s.wires {
            let delivery = match &w.delivery {
                Delivery::Broadcast => "broadcast".to_string(),
                Delivery::Any => "any".to_string(),
                Delivery::Partition(cols) => {
                    let names: Vec<String> = cols.iter().map(|&i| col(&w.to, i)).collect();
                    format!("partition({})", names.join(", "))
                }
                Delivery::Reply(i) => format!("reply({})", col(&w.to, *i)),
            };
            let _ = writeln!(out, "  wire {} -> {} {delivery}", ep(&w.from), ep(&w.to));
        }
        for f in &s.feeds {
            match &f.source {
                FeedSource::File { path } => {
                    let _ = writeln!(out, "  feed {} from file {path:?}", ep(&f.to));
                }
                FeedSource::Generate { rows, seed, batch, rate, fields } => {
                    let body = Body {
                        atoms: Vec::new(),
                        equalities: Vec::new(),
                        filters: Vec::new(),
                        antijoins: Vec::new(),
                        group_by: None,
                        having: None,
                        head: Vec::new(),
                    };
                    let names: Vec<String> = fields
                        .iter()
                        .enumerate()
                        .map(|(i, e)| format!("{}: {}", col(&f.to, i), expr(p, &body, e)))
                        .collect();
                    let rate = rate.map(|r| format!(", rate: {r}")).unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "  feed {} from generate(rows: {rows}, seed: {seed}, batch: {batch}{rate}) {{ {} }}",
                        ep(&f.to),
                        names.join(", ")
                    );
                }
            }
        }
        for seal in &s.seals {
            let names: Vec<String> = seal.columns.iter().map(|&i| col(&seal.stream, i)).collect();
            let _ = writeln!(out, "  seal {} on ({})", ep(&seal.stream), names.join(", "));
        }
    }
    out
}

fn rule(out: &mut String, p: &Program, r: &Rule) {
    let b = &r.body;
    let atoms: Vec<String> = b
        .atoms
        .iter()
        .map(|a| {
            let name = p.collection_name(a.collection);
            if a.alias == name {
                name.to_string()
            } else {
                format!("{name} {}", a.alias)
            }
        })
        .collect();
    let _ = writeln!(
        out,
        "  rule r{}: {} {} from {}",
        r.id.0,
        p.collection_name(r.target),
        r.op.symbol(),
        atoms.join(", ")
    );
    let col = |c: &crate::ir::ColRef| col_name(p, b, *c);
    if !b.equalities.is_empty() {
        let eqs: Vec<String> = b.equalities.iter().map(|e| format!("{} == {}", col(&e.left), col(&e.right))).collect();
        let _ = writeln!(out, "    join {}", eqs.join(" and "));
    }
    for f in &b.filters {
        let _ = writeln!(out, "    filter {}", expr(p, b, f));
    }
    for a in &b.antijoins {
        let name = p.collection_name(a.collection);
        let pairs: Vec<String> = a
            .pairs
            .iter()
            .map(|(outer, inner)| {
                let inner =
                    p.collection(a.collection).and_then(|c| c.columns.get(*inner)).map_or("?", |c| c.name.as_str());
                format!("{} == {}.{inner}", col(outer), a.alias)
            })
            .collect();
        let _ = writeln!(out, "    notin {name} {} on {}", a.alias, pairs.join(" and "));
    }
    if let Some(keys) = &b.group_by {
        let keys: Vec<String> = keys.iter().map(|k| expr(p, b, k)).collect();
        let _ = writeln!(out, "    group by ({})", keys.join(", "));
    }
    if let Some(h) = &b.having {
        let _ = writeln!(out, "    having {}", expr(p, b, h));
    }
    let head: Vec<String> = b.head.iter().map(|e| expr(p, b, e)).collect();
    let _ = writeln!(out, "    select {}", head.join(", "));
}

fn col_name(p: &Program, b: &Body, c: crate::ir::ColRef) -> String {
    let Some(atom) = b.atoms.get(c.atom) else {
        return "?".into();
    };
    let column = p.collection(atom.collection).and_then(|x| x.columns.get(c.column)).map_or("?", |x| x.name.as_str());
    format!("{}.{column}", atom.alias)
}

/// Prints an expression fully parenthesised, so precedence is visible in snapshots.
pub fn expr(p: &Program, b: &Body, e: &Expr) -> String {
    match &e.kind {
        ExprKind::Lit(v) => v.to_string(),
        ExprKind::Col(c) => col_name(p, b, *c),
        ExprKind::Unary(UnaryOp::Neg, x) => format!("-{}", expr(p, b, x)),
        ExprKind::Unary(UnaryOp::Not, x) => format!("not {}", expr(p, b, x)),
        ExprKind::Binary(op, l, r) => {
            format!("({} {} {})", expr(p, b, l), op.symbol(), expr(p, b, r))
        }
        ExprKind::Call(f, args) => {
            let args: Vec<String> = args.iter().map(|a| expr(p, b, a)).collect();
            format!("{}({})", f.name(), args.join(", "))
        }
        ExprKind::Agg(f, None) => format!("{}(*)", f.name()),
        ExprKind::Agg(f, Some(a)) => format!("{}({})", f.name(), expr(p, b, a)),
    }
}
