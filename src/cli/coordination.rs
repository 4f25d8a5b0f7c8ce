//! The coordination a run applies, from `--coordination`: the rewritten program, and the
//! coordination in words for the summary line.

use super::args::CoordinationArg;
use bloomc_compiler::analysis::report::Analysis;
use bloomc_compiler::ir::{Coordination, GroupId, Program};
use bloomc_compiler::rewrite::Strategy;

/// The program a run executes: `p` rewritten for `--coordination` (the operators it
/// inserted, and the rewritten program).
pub(crate) fn rewritten(
    p: &Program,
    analysis: Option<&Analysis>,
    arg: CoordinationArg,
) -> Result<(Coordination, Program), String> {
    let inserted = bloomc_compiler::rewrite::operators(p, analysis, strategy(arg))?;
    let declared = bloomc_compiler::rewrite::with_seals(p, analysis);
    Ok((inserted.clone(), bloomc_compiler::rewrite::apply(&declared, inserted)))
}

pub(crate) fn strategy(arg: CoordinationArg) -> Strategy {
    match arg {
        CoordinationArg::Auto => Strategy::Auto,
        CoordinationArg::None => Strategy::None,
        CoordinationArg::Order => Strategy::Order,
        CoordinationArg::Seal => Strategy::Seal,
    }
}

/// The coordination in words, for the summary line: what `arg` inserted into `p` (the
/// program as written), and what `p` had already.
pub(crate) fn describe(p: &Program, arg: CoordinationArg, inserted: &Coordination) -> String {
    let own = p.system.as_ref().map(|s| s.coordination.clone()).unwrap_or_default();
    match arg {
        CoordinationArg::None if own.is_empty() => "none".to_string(),
        CoordinationArg::None => format!("none inserted (the program's own: {})", parts(p, &own)),
        CoordinationArg::Order => "order (replicated groups sequenced)".to_string(),
        CoordinationArg::Seal => "seal (declared seals enforced)".to_string(),
        CoordinationArg::Auto if inserted.orders.is_empty() && inserted.holds.is_empty() => {
            "auto (none chosen)".to_string()
        }
        CoordinationArg::Auto => format!("auto ({})", parts(p, inserted)),
    }
}

/// The operators in words: seals, read holds, orders.
fn parts(p: &Program, ops: &Coordination) -> String {
    let name = |g: &GroupId| {
        p.system.iter().flat_map(|s| s.groups.iter()).find(|x| x.id == *g).map_or("?".to_string(), |x| x.name.clone())
    };
    let cols = |end: &bloomc_compiler::ir::Endpoint, cols: &[usize]| -> String {
        let input = p.collection(end.collection);
        let names: Vec<&str> =
            cols.iter().filter_map(|&c| input.and_then(|i| i.columns.get(c)).map(|x| x.name.as_str())).collect();
        format!("{}.{} on ({})", name(&end.group), p.collection_name(end.collection), names.join(", "))
    };
    let seals = ops.holds.iter().filter(|h| h.until.is_none()).map(|h| format!("seal {}", cols(&h.stream, &h.columns)));
    let mut parts: Vec<String> = seals.collect();
    parts.extend(ops.holds.iter().filter_map(|h| {
        let sealed = h.until?;
        Some(match h.columns.as_slice() {
            [] => format!(
                "hold {}.{} until {} is sealed",
                name(&h.stream.group),
                p.collection_name(h.stream.collection),
                p.collection_name(sealed.collection)
            ),
            c => format!("hold {}", cols(&h.stream, c)),
        })
    }));
    parts.extend(ops.orders.iter().map(|o| format!("order at {}", name(&o.group))));
    parts.join(", ")
}
