//! A generator of random programs for the verdict tests: one-module systems and small
//! networks, every collection `(k: int, v: int)` so any rule shape fits any collection, with
//! joins, `notin`, group-by aggregates (thresholds and global ones too), deferred inserts,
//! deletions, recursion, seals and replicated groups. Inputs come from seeded generators, so
//! a program is its source text alone and a counterexample can be kept as a file.

/// SplitMix64, so a program is a function of its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs.get(self.below(xs.len())).copied().unwrap_or("k")
    }
}

/// The body of one rule reading `s` (and `t` for two-source shapes) into `target`.
fn rule(rng: &mut Rng, target: &str, s: &str, t: &str, op: &str) -> String {
    let col = |rng: &mut Rng| rng.pick(&["k", "v"]);
    match rng.below(11) {
        0 => format!("{target} {op} {s};"),
        1 => format!("{target} {op} from {s} x select x.v as k, x.k as v;"),
        2 => {
            let (a, b) = (col(rng), col(rng));
            format!("{target} {op} from {s} x, {t} y where x.{a} == y.{b} select x.k, y.v;")
        }
        3 => {
            let (a, b) = (col(rng), col(rng));
            format!("{target} {op} from {s} x notin {t} y on x.{a} == y.{b} select x.k, x.v;")
        }
        4 => {
            let g = col(rng);
            let agg = rng.pick(&["count(*)", "sum(x.v)", "max(x.v)", "min(x.k)"]);
            format!("{target} {op} from {s} x group by x.{g} select x.{g} as k, {agg} as v;")
        }
        5 => {
            let g = col(rng);
            format!("{target} {op} from {s} x group by x.{g} having count(*) > 1 select x.{g} as k, 0 as v;")
        }
        6 => format!("{target} {op} from {s} x group by x.k, x.v select x.k, count(*) as v;"),
        7 => {
            let (a, b) = (col(rng), col(rng));
            format!("{target} {op} from {s} x, {t} y where x.{a} == y.{b} group by y.k select y.k, count(*) as v;")
        }
        8 => format!("{target} {op} from {s} x select 0 as k, count(*) as v;"),
        9 => {
            let g = col(rng);
            format!(
                "{target} {op} from {s} x notin {t} y on x.k == y.k group by x.{g} select x.{g} as k, count(*) as v;"
            )
        }
        _ => format!("{target} {op} from {s} x where x.v > 0 select x.k, x.v - 1 as v;"),
    }
}

/// A module `name` with inputs `a`, `b`, some tables and scratches, and outputs `o`, `p`.
pub fn module(rng: &mut Rng, name: &str) -> String {
    let mut decls = vec!["input a(k: int, v: int);".to_string(), "input b(k: int, v: int);".to_string()];
    decls.push("output o(k: int, v: int);".to_string());
    decls.push("output p(k: int, v: int);".to_string());
    let mut sources: Vec<String> = vec!["a".into(), "b".into()];
    let mut rules = Vec::new();
    let n = 1 + rng.below(3);
    for i in 0..n {
        let table = rng.chance(55);
        let c = format!("c{i}");
        decls.push(format!("{} {c}(k: int, v: int);", if table { "table" } else { "scratch" }));
        for _ in 0..1 + rng.below(2) {
            let s = sources.get(rng.below(sources.len())).cloned().unwrap_or_default();
            let t = sources.get(rng.below(sources.len())).cloned().unwrap_or_default();
            let op = if rng.chance(20) { "<+" } else { "<=" };
            rules.push(rule(rng, &c, &s, &t, op));
        }
        if table && rng.chance(15) {
            let s = sources.get(rng.below(sources.len())).cloned().unwrap_or_default();
            rules.push(format!("{c} <- from {c} x, {s} y where x.k == y.k select x.*;"));
        }
        if table && rng.chance(10) {
            let s = sources.get(rng.below(sources.len())).cloned().unwrap_or_default();
            rules.push(format!("{c} <= from {c} x, {s} y where x.v == y.k select x.k, y.v;"));
        }
        sources.push(c);
    }
    for out in ["o", "p"] {
        if out == "p" && rng.chance(50) {
            continue;
        }
        let s = sources.get(rng.below(sources.len())).cloned().unwrap_or_default();
        let t = sources.get(rng.below(sources.len())).cloned().unwrap_or_default();
        rules.push(rule(rng, out, &s, &t, "<="));
    }
    format!("module {name} {{\n  {}\n  {}\n}}\n", decls.join("\n  "), rules.join("\n  "))
}

/// A feed of 1 to 4 rows with small values. The fields do not read `instance()` (which
/// `uniform` mixes in), so every replica of a replicated group is fed the same facts.
fn feed(rng: &mut Rng, to: &str) -> String {
    let rows = 1 + rng.below(4);
    let (a, b, c, d) = (1 + rng.below(5), rng.below(5), 1 + rng.below(5), rng.below(5));
    format!("feed {to} from generate(rows: {rows}, seed: 1, batch: 1) {{ k: (row() * {a} + {b}) % 2, v: (row() * {c} + {d}) % 3 }};")
}

fn seal(rng: &mut Rng, stream: &str) -> Option<String> {
    rng.chance(40).then(|| format!("{stream} sealed on ({});", rng.pick(&["k", "v"])))
}

/// A one-module program: the module `M` on one node, both inputs fed, perhaps sealed.
pub fn single(rng: &mut Rng) -> String {
    let m = module(rng, "M");
    let mut items = vec!["node m: M;".to_string(), feed(rng, "m.a"), feed(rng, "m.b")];
    items.extend(seal(rng, "m.a"));
    items.extend(seal(rng, "m.b"));
    format!("{m}\n#[allow(nondeterminism)]\nsystem S {{\n  {}\n}}\n", items.join("\n  "))
}

/// A small network: producers copy a feed to the consumer group `c` (perhaps several
/// instances, perhaps replicated), whose other input is fed or wired from a second
/// producer; a sink collects `c.o`.
pub fn network(rng: &mut Rng) -> String {
    let m = module(rng, "M");
    let prod = "module P {\n  input g(k: int, v: int);\n  output f(k: int, v: int);\n  f <= g;\n}\n";
    let sink = "module K {\n  input i(k: int, v: int);\n  output r(k: int, v: int);\n  table all(k: int, v: int);\n  all <= i;\n  r <= all;\n}\n";
    let producers = 1 + rng.below(2);
    let consumers = 1 + rng.below(2);
    let replicated = consumers > 1 && rng.chance(60);
    let mut items = vec![
        format!("node p: P * {producers};"),
        format!("node c: M * {consumers}{};", if replicated { " replicated" } else { "" }),
        "node k: K;".to_string(),
        feed(rng, "p.g"),
        format!("p.f -> c.a {};", rng.pick(&["broadcast", "broadcast", "partition(k)", "any"])),
        "c.o -> k.i broadcast;".to_string(),
    ];
    if rng.chance(50) {
        items.push("node q: P;".to_string());
        items.push(feed(rng, "q.g"));
        items.push("q.f -> c.b broadcast;".to_string());
    } else {
        items.push(feed(rng, "c.b"));
    }
    items.extend(seal(rng, "c.a"));
    format!("{prod}{sink}{m}\n#[allow(nondeterminism)]\nsystem S {{\n  {}\n}}\n", items.join("\n  "))
}
