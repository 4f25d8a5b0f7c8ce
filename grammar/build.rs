//! Generates the parser from `src/grammar.lalrpop` into OUT_DIR.
fn main() {
    lalrpop::Configuration::new()
        .use_cargo_dir_conventions()
        .emit_rerun_directives(true)
        .process()
        .unwrap_or_else(|e| panic!("lalrpop failed to process the grammar: {e}"));
}
