//! Reads whose answers depend on when facts arrive, though no schedule makes them wrong:
//! the cases where a label promises "may miss facts, never a wrong one" (docs/analysis.md,
//! section 8.6), reported where they happen.
//!
//! - **W0101, a join of transient collections fed by different inputs**: facts that arrive
//!   in different ticks never meet (Bud's guarded-asynchrony check).
//! - **N0101, a monotone read of monotone state fed by another input**: a fact that
//!   arrives before the state it reads is complete gets a partial answer (the paper's
//!   THRESH request path).
//!
//! Nonmonotone reads are W0100's business (a partial answer there can be a wrong one).

use super::gates::own_nonmonotone;
use super::lineage::Lineage;
use super::paths::{delayed, fresh};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{ModuleId, Program};

/// The timing diagnostics of one module.
pub fn diagnostics(p: &Program, module: ModuleId) -> Vec<Diagnostic> {
    let Some(m) = p.module(module) else { return Vec::new() };
    let facts = super::gates::facts(p, module);
    let lin: &Lineage = &facts.lineage;
    let fresh = fresh(p, m);
    let delayed = delayed(p, m);
    let mut out = Vec::new();
    for r in m.rules.iter().filter_map(|&r| p.rule(r)) {
        if own_nonmonotone(p, r) {
            continue;
        }
        let atoms: Vec<_> = r.body.atoms.iter().collect();
        let name = |c| p.collection_name(c);
        // Two fresh collections fed by different inputs.
        'pairs: for (i, a) in atoms.iter().enumerate() {
            for b in atoms.iter().skip(i + 1) {
                let (fa, fb) = (fresh.contains(&a.collection), fresh.contains(&b.collection));
                let (ia, ib) = (lin.inputs_of(a.collection), lin.inputs_of(b.collection));
                if fa && fb && ia.is_disjoint(&ib) {
                    out.push(
                        Diagnostic::new(
                            Code::TransientJoin,
                            format!(
                                "`{}` and `{}` are joined, but only facts that arrive in the same tick meet",
                                name(a.collection),
                                name(b.collection)
                            ),
                            r.span,
                            "a join of transient collections fed by different inputs",
                        )
                        .with_label(a.span, format!("`{}` holds only this tick's facts", name(a.collection)))
                        .with_label(b.span, format!("and so does `{}`", name(b.collection)))
                        .with_help(format!(
                            "keep one side in a table so that it waits for the other (`table t(..); t <= {};`), or send both in one message",
                            name(a.collection)
                        )),
                    );
                    break 'pairs;
                }
            }
        }
        // A fresh trigger reading state that another input fills.
        for a in atoms.iter().filter(|a| fresh.contains(&a.collection)) {
            let mine = lin.inputs_of(a.collection);
            // State maintained nonmonotonically can give wrong answers too: W0100's case.
            let state = atoms.iter().find(|s| {
                !fresh.contains(&s.collection)
                    && !delayed.contains(&s.collection)
                    && facts.gates_of(s.collection).is_none()
                    && lin.inputs_of(s.collection).iter().any(|i| !mine.contains(i))
            });
            if let Some(s) = state {
                out.push(
                    Diagnostic::new(
                        Code::PartialRead,
                        format!(
                            "`{}` reads `{}` as it stands when `{}`'s facts arrive",
                            name(a.collection),
                            name(s.collection),
                            name(a.collection)
                        ),
                        r.span,
                        "a read that may get a partial answer",
                    )
                    .with_label(s.span, format!("`{}` may not hold every fact yet", name(s.collection)))
                    .with_note(format!(
                        "a `{}` fact that arrives before the state it reads is complete gets a partial answer: facts may be missing, never wrong",
                        name(a.collection)
                    ))
                    .with_help(format!(
                        "persist `{}` in a table to answer it again as `{}` grows, or seal the inputs that fill `{}`",
                        name(a.collection),
                        name(s.collection),
                        name(s.collection)
                    )),
                );
                break;
            }
        }
    }
    out
}
