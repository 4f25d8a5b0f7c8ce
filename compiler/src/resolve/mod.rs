//! Name resolution and type checking: the parsed files become one typed `ir::Program`.
//!
//! Resolution collects every error and keeps going; a broken rule or system item is left
//! out of the IR, so later checks see a consistent program and never report cascades.
//! `when` blocks are decided here, like `#[cfg]`: the items of a false branch are parsed but
//! not resolved, and are absent from the IR.

mod coordination;
pub mod expr;
mod query;
mod system;

use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::ir::{Collection, CollectionId, Column, Module, ModuleId, Param, Program, Rule, Type, Value};
use bloomc_grammar::ast::{self, CollectionKind};
use bloomc_grammar::span::Span;
use std::collections::{HashMap, HashSet};

/// A `--set name=value` override: the name and value with their spans in the virtual file
/// that holds the command-line text.
pub struct Override {
    pub name: String,
    pub name_span: Span,
    pub value: String,
    pub value_span: Span,
}

pub struct Resolver<'o> {
    diags: Vec<Diagnostic>,
    overrides: &'o [Override],
    params: Vec<Param>,
    param_index: HashMap<String, usize>,
    modules: Vec<Module>,
    module_index: HashMap<String, ModuleId>,
    collections: Vec<Collection>,
    collection_index: HashMap<(ModuleId, String), CollectionId>,
    rules: Vec<Rule>,
    /// Collections some rule reads / writes, for the unused-interface warnings.
    read: HashSet<CollectionId>,
    written: HashSet<CollectionId>,
    /// Collections with a column of unknown type: already reported, and left out of every
    /// rule and wire that names them so they cause no cascades.
    broken: HashSet<CollectionId>,
}

/// Resolves parsed files (the user's and the standard library's they `use`) into the IR.
pub fn resolve(files: &[&ast::SourceFile], overrides: &[Override]) -> (Program, Vec<Diagnostic>) {
    let mut r = Resolver {
        diags: Vec::new(),
        overrides,
        params: Vec::new(),
        param_index: HashMap::new(),
        modules: Vec::new(),
        module_index: HashMap::new(),
        collections: Vec::new(),
        collection_index: HashMap::new(),
        rules: Vec::new(),
        read: HashSet::new(),
        written: HashSet::new(),
        broken: HashSet::new(),
    };
    let items: Vec<&ast::Item> = files.iter().flat_map(|f| f.items.iter()).collect();
    for item in &items {
        if let ast::Item::Param(p) = item {
            r.declare_param(p);
        }
    }
    r.unknown_overrides();
    let mut module_asts = Vec::new();
    for item in &items {
        if let ast::Item::Module(m) = item {
            if let Some(id) = r.declare_module(m) {
                module_asts.push((id, m));
            }
        }
    }
    for (id, m) in &module_asts {
        r.declare_collections(*id, &m.items);
    }
    for (id, m) in &module_asts {
        r.module_rules(*id, &m.items);
    }
    r.unused_interfaces();
    let systems: Vec<&ast::SystemDecl> =
        items.iter().filter_map(|i| if let ast::Item::System(s) = i { Some(s) } else { None }).collect();
    if let (Some(first), Some(second)) = (systems.first(), systems.get(1)) {
        r.report(
            Diagnostic::new(Code::Duplicate, "a program has at most one system", second.name.span, "second system")
                .with_label(first.name.span, "first system declared here")
                .with_help("put every node group of the program into one system declaration"),
        );
    }
    let system = systems.first().and_then(|s| r.system(s));
    let program = Program { params: r.params, modules: r.modules, collections: r.collections, rules: r.rules, system };
    (program, r.diags)
}

impl Resolver<'_> {
    pub(crate) fn report(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn duplicate(&mut self, what: &str, name: &ast::Ident, first: Span) {
        self.report(
            Diagnostic::new(
                Code::Duplicate,
                format!("{what} `{}` is declared twice", name.name),
                name.span,
                "declared again here",
            )
            .with_label(first, "first declared here")
            .with_help(format!("rename one of the two {what}s")),
        );
    }

    fn ty(&mut self, ident: &ast::Ident) -> Option<Type> {
        let ty = Type::from_name(&ident.name);
        if ty.is_none() {
            let help = did_you_mean(&ident.name, ["int", "float", "string", "bool"])
                .unwrap_or_else(|| "the types are int, float, string and bool".to_string());
            self.report(
                Diagnostic::new(Code::UnknownType, format!("unknown type `{}`", ident.name), ident.span, "not a type")
                    .with_help(help),
            );
        }
        ty
    }

    fn declare_param(&mut self, p: &ast::ParamDecl) {
        if let Some(&i) = self.param_index.get(&p.name.name) {
            let first = self.params.get(i).map_or(p.name.span, |q| q.span);
            self.duplicate("parameter", &p.name, first);
            return;
        }
        let ty = self.ty(&p.ty);
        let value = self.constant(&p.default, "a parameter's default");
        let (Some(ty), Some(value)) = (ty, value) else {
            return;
        };
        if value.ty() != ty {
            self.report(
                Diagnostic::new(
                    Code::TypeMismatch,
                    format!("parameter `{}` is declared {ty} but its default is {}", p.name.name, value.ty()),
                    p.default.span,
                    format!("this is {}", value.ty()),
                )
                .with_label(p.ty.span, format!("declared {ty} here")),
            );
            return;
        }
        self.param_index.insert(p.name.name.clone(), self.params.len());
        self.params.push(Param { name: p.name.name.clone(), ty, value, overridden: false, span: p.name.span });
        // Applied now, so the defaults of later parameters see the overridden value.
        let overrides = self.overrides;
        if let Some(o) = overrides.iter().rev().find(|o| o.name == p.name.name) {
            self.apply_override(o);
        }
    }

    /// Reports the `--set` names that match no parameter (the others were applied when their
    /// parameter was declared).
    fn unknown_overrides(&mut self) {
        for o in self.overrides {
            if self.param_index.contains_key(&o.name) {
                continue;
            }
            let names: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
            let help = did_you_mean(&o.name, names.iter().copied()).unwrap_or_else(|| {
                if names.is_empty() {
                    "this program declares no parameters".to_string()
                } else {
                    format!("the parameters are: {}", names.join(", "))
                }
            });
            self.diags.push(
                Diagnostic::new(
                    Code::UnknownParam,
                    format!("`--set {}`: no such parameter", o.name),
                    o.name_span,
                    "unknown parameter",
                )
                .with_help(help),
            );
        }
    }

    fn apply_override(&mut self, o: &Override) {
        let Some(param) = self.param_index.get(&o.name).and_then(|&i| self.params.get_mut(i)) else {
            return;
        };
        let text = o.value.trim();
        let parsed = match param.ty {
            Type::String => Some(Value::Str(o.value.clone())),
            Type::Int => text.parse().ok().map(Value::Int),
            Type::Float => text.parse().ok().map(|x| Value::Float(crate::ops::canonical(x))),
            Type::Bool => text.parse().ok().map(Value::Bool),
        };
        match parsed {
            Some(v) => {
                param.value = v;
                param.overridden = true;
            }
            None => {
                let d = Diagnostic::new(
                    Code::BadParamValue,
                    format!("`{}` is not a valid {} for parameter `{}`", o.value, param.ty, param.name),
                    o.value_span,
                    format!("expected {}", param.ty),
                )
                .with_label(param.span, format!("`{}` is declared {} here", param.name, param.ty))
                .with_help(match param.ty {
                    Type::Bool => "write true or false",
                    Type::Int => "write a whole number such as 10",
                    _ => "write a number such as 0.5",
                });
                self.diags.push(d);
            }
        }
    }

    fn param_value(&mut self, name: &ast::Ident) -> Option<Value> {
        if let Some(p) = self.param_index.get(&name.name).and_then(|&i| self.params.get(i)) {
            return Some(p.value.clone());
        }
        let names: Vec<String> = self.params.iter().map(|p| p.name.clone()).collect();
        let mut d = Diagnostic::new(
            Code::UnknownParam,
            format!("unknown parameter `{}`", name.name),
            name.span,
            "not declared",
        );
        d = d.with_help(match did_you_mean(&name.name, names.iter().map(String::as_str)) {
            Some(s) => s,
            None => format!("declare it with `param {}: int = ..;` (columns are written `alias.column`)", name.name),
        });
        self.report(d);
        None
    }

    /// Decides a `when` condition: true, false, or `None` when it is not a constant bool.
    fn condition(&mut self, cond: &ast::Expr) -> Option<bool> {
        match self.constant(cond, "a `when` condition")? {
            Value::Bool(b) => Some(b),
            v => {
                self.report(Diagnostic::new(
                    Code::TypeMismatch,
                    format!("a `when` condition must be bool, found {}", v.ty()),
                    cond.span,
                    "expected bool",
                ));
                None
            }
        }
    }

    fn declare_module(&mut self, m: &ast::ModuleDecl) -> Option<ModuleId> {
        if let Some(&first) = self.module_index.get(&m.name.name) {
            let span = self.modules.get(first.index()).map_or(m.name.span, |x| x.span);
            self.duplicate("module", &m.name, span);
            return None;
        }
        let id = ModuleId::from_index(self.modules.len());
        self.module_index.insert(m.name.name.clone(), id);
        let allow_nondeterminism = self.attributes(&m.attrs);
        self.modules.push(Module {
            id,
            name: m.name.name.clone(),
            allow_nondeterminism,
            collections: Vec::new(),
            rules: Vec::new(),
            span: m.name.span,
        });
        Some(id)
    }

    fn declare_collections(&mut self, module: ModuleId, items: &[ast::ModuleItem]) {
        for item in items {
            match item {
                ast::ModuleItem::Collection(c) => self.declare_collection(module, c),
                ast::ModuleItem::When(w) => {
                    if self.condition(&w.cond) == Some(true) {
                        self.declare_collections(module, &w.items);
                    }
                }
                ast::ModuleItem::Rule(_) | ast::ModuleItem::Error(_) => {}
            }
        }
    }

    fn declare_collection(&mut self, module: ModuleId, c: &ast::CollectionDecl) {
        if let Some(&first) = self.collection_index.get(&(module, c.name.name.clone())) {
            let span = self.collections.get(first.index()).map_or(c.span, |x| x.span);
            self.duplicate("collection", &c.name, span);
            return;
        }
        let mut columns: Vec<Column> = Vec::new();
        let mut broken = false;
        for col in &c.columns {
            if let Some(first) = columns.iter().find(|x| x.name == col.name.name) {
                let span = first.span;
                self.duplicate("column", &col.name, span);
                continue;
            }
            match self.ty(&col.ty) {
                Some(ty) => columns.push(Column { name: col.name.name.clone(), ty, span: col.name.span }),
                None => broken = true,
            }
        }
        let key = c.key.as_ref().and_then(|k| self.key(c, k, &columns));
        let id = CollectionId::from_index(self.collections.len());
        if broken {
            self.broken.insert(id);
        }
        self.collection_index.insert((module, c.name.name.clone()), id);
        if let Some(m) = self.modules.get_mut(module.index()) {
            m.collections.push(id);
        }
        self.collections.push(Collection {
            id,
            module,
            name: c.name.name.clone(),
            kind: c.kind,
            columns,
            key,
            stratum: 0,
            span: c.name.span,
        });
    }

    /// Checks `key (..)` on collection `c`: the word is `key`, the collection an input
    /// interface, and the columns its own, each once. Returns their positions.
    fn key(&mut self, c: &ast::CollectionDecl, k: &ast::KeyDecl, columns: &[Column]) -> Option<Vec<usize>> {
        if k.word.name != "key" {
            self.report(
                Diagnostic::new(
                    Code::UnexpectedToken,
                    format!("unexpected `{}` after the columns of `{}`", k.word.name, c.name.name),
                    k.word.span,
                    "expected `;` or `key (..)`",
                )
                .with_help("end the declaration with `;`, or declare a key: `key (column, ..);`"),
            );
            return None;
        }
        if c.kind != CollectionKind::Input {
            self.report(
                Diagnostic::new(
                    Code::BadKey,
                    format!("`{}` is not an input interface, so it cannot declare a key", c.name.name),
                    k.span,
                    "a key on a non-input collection",
                )
                .with_help(
                    "a key says which columns no two facts an input receives share; declare it on the input that brings the facts",
                ),
            );
            return None;
        }
        if k.columns.is_empty() {
            self.report(
                Diagnostic::new(
                    Code::BadKey,
                    format!("the key of `{}` names no column", c.name.name),
                    k.span,
                    "empty key",
                )
                .with_help("name the columns that identify a fact, e.g. `key (id);`, or remove the key"),
            );
            return None;
        }
        let mut key: Vec<usize> = Vec::new();
        let mut ok = true;
        for col in &k.columns {
            let Some(i) = columns.iter().position(|x| x.name == col.name) else {
                let names: Vec<&str> = columns.iter().map(|x| x.name.as_str()).collect();
                self.report(
                    Diagnostic::new(
                        Code::UnknownColumn,
                        format!("`{}` has no column `{}`", c.name.name, col.name),
                        col.span,
                        "unknown column",
                    )
                    .with_help(match did_you_mean(&col.name, names.iter().copied()) {
                        Some(s) => s,
                        None => format!("its columns are: {}", names.join(", ")),
                    }),
                );
                ok = false;
                continue;
            };
            if key.contains(&i) {
                let first = k.columns.iter().find(|x| x.name == col.name).map_or(col.span, |x| x.span);
                self.report(
                    Diagnostic::new(
                        Code::Duplicate,
                        format!("the key of `{}` names `{}` twice", c.name.name, col.name),
                        col.span,
                        "named again here",
                    )
                    .with_label(first, "first named here")
                    .with_help("name each column of the key once"),
                );
                ok = false;
                continue;
            }
            key.push(i);
        }
        ok.then_some(key)
    }

    fn lookup_collection(&mut self, module: ModuleId, name: &ast::Ident) -> Option<CollectionId> {
        if let Some(&id) = self.collection_index.get(&(module, name.name.clone())) {
            if self.broken.contains(&id) {
                self.read.insert(id);
                self.written.insert(id);
                return None;
            }
            return Some(id);
        }
        let module_name = self.modules.get(module.index()).map_or("?", |m| m.name.as_str()).to_string();
        let candidates: Vec<String> =
            self.collections.iter().filter(|c| c.module == module).map(|c| c.name.clone()).collect();
        let help = did_you_mean(&name.name, candidates.iter().map(String::as_str))
            .unwrap_or_else(|| format!("declare it in module `{module_name}`, e.g. `scratch {}(..);`", name.name));
        self.report(
            Diagnostic::new(
                Code::UnknownCollection,
                format!("module `{module_name}` has no collection `{}`", name.name),
                name.span,
                "unknown collection",
            )
            .with_help(help),
        );
        None
    }

    fn module_rules(&mut self, module: ModuleId, items: &[ast::ModuleItem]) {
        for item in items {
            match item {
                ast::ModuleItem::Rule(rule) => {
                    if let Some(rule) = self.rule(module, rule) {
                        if let Some(m) = self.modules.get_mut(module.index()) {
                            m.rules.push(rule.id);
                        }
                        self.rules.push(rule);
                    }
                }
                ast::ModuleItem::When(w) => {
                    // The condition was reported (if bad) while declaring collections.
                    let decided = {
                        let saved = self.diags.len();
                        let d = self.condition(&w.cond);
                        self.diags.truncate(saved);
                        d
                    };
                    if decided == Some(true) {
                        self.module_rules(module, &w.items);
                    } else {
                        self.mark_used(module, &w.items);
                    }
                }
                ast::ModuleItem::Collection(_) | ast::ModuleItem::Error(_) => {}
            }
        }
    }

    /// Checks attributes; returns whether `#[allow(nondeterminism)]` is among them.
    pub(super) fn attributes(&mut self, attrs: &[ast::Attribute]) -> bool {
        let mut allow = false;
        for a in attrs {
            let args: Vec<&str> = a.args.iter().map(|x| x.name.as_str()).collect();
            if a.name.name == "allow" && args == ["nondeterminism"] {
                allow = true;
            } else {
                let what = if a.name.name == "allow" {
                    format!("`#[allow({})]`: only `nondeterminism` can be allowed", args.join(", "))
                } else {
                    format!("unknown attribute `{}`", a.name.name)
                };
                self.report(
                    Diagnostic::new(Code::UnknownAttribute, what, a.span, "not understood")
                        .with_help("the only attribute is `#[allow(nondeterminism)]`, on a module or a system"),
                );
            }
        }
        allow
    }

    /// Counts the collections that the rules of a skipped `when` branch name as used, so an
    /// interface used only in another configuration is not reported as unused.
    fn mark_used(&mut self, module: ModuleId, items: &[ast::ModuleItem]) {
        for item in items {
            match item {
                ast::ModuleItem::Rule(rule) => {
                    if let Some(&id) = self.collection_index.get(&(module, rule.target.name.clone())) {
                        self.written.insert(id);
                    }
                    let names: Vec<&ast::Ident> = match &rule.query {
                        ast::Query::Scan(name) => vec![name],
                        ast::Query::Select(q) => q
                            .from
                            .iter()
                            .map(|b| &b.collection)
                            .chain(q.notins.iter().map(|n| &n.binding.collection))
                            .collect(),
                    };
                    for name in names {
                        if let Some(&id) = self.collection_index.get(&(module, name.name.clone())) {
                            self.read.insert(id);
                        }
                    }
                }
                ast::ModuleItem::When(w) => self.mark_used(module, &w.items),
                ast::ModuleItem::Collection(_) | ast::ModuleItem::Error(_) => {}
            }
        }
    }

    fn unused_interfaces(&mut self) {
        let mut warnings = Vec::new();
        for c in &self.collections {
            let (unused, what, help) = match c.kind {
                CollectionKind::Input => {
                    (!self.read.contains(&c.id), "is never read", "read it in a rule, or remove it")
                }
                CollectionKind::Output => {
                    (!self.written.contains(&c.id), "is never written", "derive it with a rule, or remove it")
                }
                CollectionKind::Table | CollectionKind::Scratch => (false, "", ""),
            };
            if unused {
                let module = self.modules.get(c.module.index()).map_or("?", |m| m.name.as_str());
                warnings.push(
                    Diagnostic::new(
                        Code::UnusedInterface,
                        format!("{} interface `{module}.{}` {what}", c.kind.keyword(), c.name),
                        c.span,
                        format!("unused {}", c.kind.keyword()),
                    )
                    .with_help(help),
                );
            }
        }
        self.diags.extend(warnings);
    }
}
