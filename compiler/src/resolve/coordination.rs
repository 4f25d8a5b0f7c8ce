//! Resolution of a system's coordination operators (`order`, `punctuate`, `hold`): each
//! names groups, interfaces and columns that exist, and together they fit the wiring: an
//! order is on a replicated group, a punctuation is on a wire into a held input with the
//! hold's columns, every wire into a held input punctuates, and a read hold waits for a held
//! input of its own group, or one of its fed inputs sealed by its feed (E0126 otherwise).

use super::system::{describe, Items};
use super::Resolver;
use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::ir::{Coordination, Endpoint, Hold, NodeGroup, Order, Punctuate, Seal, Wire};
use bloomc_grammar::ast::{self, CollectionKind};
use bloomc_grammar::span::Span;

impl Resolver<'_> {
    pub(super) fn coordination(
        &mut self,
        items: &Items<'_>,
        groups: &[NodeGroup],
        wires: &[Wire],
        fed_seals: &[Seal],
    ) -> Coordination {
        let mut out = Coordination::default();
        for o in &items.orders {
            let Some(g) = self.group(groups, &o.group) else { continue };
            if let Some(first) = out.orders.iter().find(|x| x.group == g.id) {
                let first = first.span;
                self.twice(
                    format!("`order {}` is written twice", g.name),
                    (o.span, "again here"),
                    (first, "first written here"),
                    "remove one of the two",
                );
                continue;
            }
            if !g.replicated {
                self.bad(
                    format!("`order {}`: group `{}` is not replicated", g.name, g.name),
                    o.span,
                    "not a replicated group",
                    "an order sequences the inputs of a replicated group, so that its replicas agree; declare the group `replicated`, or remove the order",
                );
                continue;
            }
            out.orders.push(Order { group: g.id, span: o.span });
        }

        for h in &items.holds {
            let Some((stream, coll)) = self.endpoint(groups, &h.stream, CollectionKind::Input) else { continue };
            let Some(columns) = self.stream_columns(&coll, &h.columns) else { continue };
            let until = match &h.until {
                None => None,
                Some(e) => match self.endpoint(groups, e, CollectionKind::Input) {
                    Some((end, _)) => Some(end),
                    None => continue,
                },
            };
            if let Some(first) = out.holds.iter().find(|x| x.stream == stream && x.until == until) {
                let first = first.span;
                self.twice(
                    format!("`{}` is held twice", describe(&h.stream)),
                    (h.span, "held again here"),
                    (first, "first held here"),
                    "a stream has one hold; list all its columns in one `hold`",
                );
                continue;
            }
            out.holds.push(Hold { stream, columns, until, span: h.span });
        }

        for pd in &items.punctuations {
            let from = self.endpoint(groups, &pd.from, CollectionKind::Output);
            let to = self.endpoint(groups, &pd.to, CollectionKind::Input);
            let (Some((from, _)), Some((to, coll))) = (from, to) else { continue };
            let Some(columns) = self.stream_columns(&coll, &pd.columns) else { continue };
            let wire = format!("{} -> {}", describe(&pd.from), describe(&pd.to));
            if !wires.iter().any(|w| w.from == from && w.to == to) {
                self.bad(
                    format!("`punctuate`: there is no wire `{wire}`"),
                    pd.span,
                    "no such wire",
                    "a producer punctuates a wire of the system; wire the output to the input first",
                );
                continue;
            }
            if let Some(first) = out.punctuations.iter().find(|x| x.from == from && x.to == to) {
                let first = first.span;
                self.twice(
                    format!("wire `{wire}` is punctuated twice"),
                    (pd.span, "again here"),
                    (first, "first punctuated here"),
                    "a wire has one punctuation; list all its columns in one `punctuate`",
                );
                continue;
            }
            out.punctuations.push(Punctuate { from, to, columns, span: pd.span });
        }
        self.fit(&mut out, groups, wires, fed_seals);
        out
    }

    /// Drops (and reports) the operators that do not fit together.
    fn fit(&mut self, c: &mut Coordination, groups: &[NodeGroup], wires: &[Wire], fed_seals: &[Seal]) {
        let name = |e: &Endpoint| -> String {
            let g = groups.iter().find(|g| g.id == e.group).map_or("?", |g| g.name.as_str());
            format!("{g}.{}", self.collections.get(e.collection.index()).map_or("?", |c| c.name.as_str()))
        };
        let cols = |e: &Endpoint, cols: &[usize]| -> String {
            let c = self.collections.get(e.collection.index());
            let names: Vec<&str> =
                cols.iter().filter_map(|&i| c.and_then(|c| c.columns.get(i)).map(|x| x.name.as_str())).collect();
            names.join(", ")
        };
        let mut problems: Vec<(String, Span, &str, String)> = Vec::new();
        let seal_holds: Vec<Hold> = c.holds.iter().filter(|h| h.until.is_none()).cloned().collect();
        c.punctuations.retain(|pu| {
            let hold = seal_holds.iter().find(|h| h.stream == pu.to);
            let fits = hold.is_some_and(|h| h.columns == pu.columns);
            if !fits {
                let why = match hold {
                    None => format!(
                        "nothing holds `{}`: add `hold {} until sealed on ({})`",
                        name(&pu.to),
                        name(&pu.to),
                        cols(&pu.to, &pu.columns)
                    ),
                    Some(h) => format!(
                        "`{}` is held on ({}): punctuate the same columns",
                        name(&pu.to),
                        cols(&h.stream, &h.columns)
                    ),
                };
                problems.push((
                    format!("`punctuate` on ({}) into `{}` matches no hold", cols(&pu.to, &pu.columns), name(&pu.to)),
                    pu.span,
                    "punctuation without a matching hold",
                    why,
                ));
            }
            fits
        });
        let punctuated: Vec<(Endpoint, Endpoint)> = c.punctuations.iter().map(|p| (p.from, p.to)).collect();
        c.holds.retain(|h| {
            let Some(sealed) = h.until else {
                let into: Vec<&Wire> = wires.iter().filter(|w| w.to == h.stream).collect();
                if into.is_empty() {
                    problems.push((format!("`hold {}`: no wire delivers to it", name(&h.stream)), h.span, "nothing to hold", "a hold waits for its producers' punctuations; an input fed from outside is sealed with `G.I sealed on (..)` instead".to_string()));
                    return false;
                }
                let missing: Vec<String> = into
                    .iter()
                    .filter(|w| !punctuated.contains(&(w.from, w.to)))
                    .map(|w| format!("punctuate {} on ({}) -> {};", name(&w.from), cols(&h.stream, &h.columns), name(&w.to)))
                    .collect();
                if !missing.is_empty() {
                    problems.push((format!("`hold {}`: a producer does not punctuate, so its facts would be held forever", name(&h.stream)), h.span, "a producer never seals", format!("add `{}`", missing.join("` and `"))));
                    return false;
                }
                return true;
            };
            // The seal columns of the input waited for: held, or fed and sealed by its feed.
            let held = seal_holds
                .iter()
                .find(|s| s.stream == sealed)
                .map(|s| &s.columns)
                .or_else(|| fed_seals.iter().find(|s| s.stream == sealed).map(|s| &s.columns));
            let why = match held {
                _ if sealed.group != h.stream.group => Some("a read waits for a held input of its own group".to_string()),
                None => Some(format!(
                    "`{}` is neither held nor a fed input sealed by its feed: add `hold {} until sealed on (..)`, or `{} sealed on (..)` for a fed input",
                    name(&sealed),
                    name(&sealed),
                    name(&sealed)
                )),
                Some(s) if !h.columns.is_empty() && s.len() != h.columns.len() => Some(format!(
                    "`{}` is sealed on ({}): give one column of `{}` per seal column, or none",
                    name(&sealed),
                    cols(&sealed, s),
                    name(&h.stream)
                )),
                Some(_) => None,
            };
            if let Some(why) = &why {
                problems.push((format!("`hold {} until {} sealed` does not fit", name(&h.stream), name(&sealed)), h.span, "no such sealed input to wait for", why.clone()));
            }
            why.is_none()
        });
        for (message, span, label, help) in problems {
            self.bad(message, span, label, &help);
        }
    }

    /// An operator written twice: `again` and `first` are each a span with its label.
    fn twice(&mut self, message: String, again: (Span, &str), first: (Span, &str), help: &str) {
        self.report(
            Diagnostic::new(Code::Duplicate, message, again.0, again.1).with_label(first.0, first.1).with_help(help),
        );
    }

    fn bad(&mut self, message: String, span: Span, label: &str, help: &str) {
        self.report(Diagnostic::new(Code::BadCoordination, message, span, label).with_help(help));
    }

    fn group<'g>(&mut self, groups: &'g [NodeGroup], name: &ast::Ident) -> Option<&'g NodeGroup> {
        let found = groups.iter().find(|g| g.name == name.name);
        if found.is_none() {
            let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
            let help = did_you_mean(&name.name, names.iter().copied())
                .unwrap_or_else(|| format!("declare it with `node {}: Module;`", name.name));
            self.report(
                Diagnostic::new(
                    Code::UnknownNode,
                    format!("unknown node group `{}`", name.name),
                    name.span,
                    "no such node group",
                )
                .with_help(help),
            );
        }
        found
    }
}
