//! One table of facts about each aggregate function: what it is called, what argument it
//! takes and what it returns (read by the resolver), how its value moves as its group gains
//! bindings (read by the analysis, which decides from it which `having` thresholds, once
//! passed, stay passed), whether it folds and with which accumulator (read by the runtime's
//! choice of execution path and by its folds). Adding an aggregate means adding a row here
//! and its value in the runtime's evaluator (`eval::aggregate`), nothing else.

use crate::ir::{AggFn, Type};

/// What an aggregate's argument may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Argument {
    /// `*` or an expression of any type.
    Anything,
    /// An `int` or `float` expression.
    Number,
    /// An expression of an ordered type: anything but `bool`.
    Ordered,
}

/// The type of an aggregate's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returns {
    Int,
    Float,
    /// The argument's type.
    ArgumentType,
}

/// How an aggregate's value moves as its group gains bindings (and loses none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moves {
    /// Never down: a test `agg > k` (or `>=`), once true, stays true.
    Up,
    /// Never up: a test `agg < k` (or `<=`), once true, stays true.
    Down,
    /// Never down when every binding adds a non-negative amount: the analysis knows that
    /// only of a non-negative constant argument.
    UpWhenArgumentNonNegative,
    /// Either way (an average).
    Either,
}

/// An aggregate's accumulator on the fold path: one value per group, updated by each new
/// binding, never retracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accumulator {
    Count,
    /// An exact integer sum (`i128`, checked to fit an `int` when read).
    Sum,
    Min,
    Max,
}

/// Everything the compiler and the runtime know about one aggregate function.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    pub function: AggFn,
    pub name: &'static str,
    /// Whether `f(*)` is allowed (only `count`).
    pub takes_star: bool,
    pub argument: Argument,
    pub returns: Returns,
    pub moves: Moves,
    /// Its accumulator on the fold path, or `None` when it does not fold (`avg`).
    pub accumulator: Option<Accumulator>,
    /// Whether it folds only over an `int` argument (a `float` sum depends on the order of
    /// addition, so it takes the `reduce` path).
    pub folds_only_ints: bool,
}

const COUNT: Facts = Facts {
    function: AggFn::Count,
    name: "count",
    takes_star: true,
    argument: Argument::Anything,
    returns: Returns::Int,
    moves: Moves::Up,
    accumulator: Some(Accumulator::Count),
    folds_only_ints: false,
};
const SUM: Facts = Facts {
    function: AggFn::Sum,
    name: "sum",
    takes_star: false,
    argument: Argument::Number,
    returns: Returns::ArgumentType,
    moves: Moves::UpWhenArgumentNonNegative,
    accumulator: Some(Accumulator::Sum),
    folds_only_ints: true,
};
const MIN: Facts = Facts {
    function: AggFn::Min,
    name: "min",
    takes_star: false,
    argument: Argument::Ordered,
    returns: Returns::ArgumentType,
    moves: Moves::Down,
    accumulator: Some(Accumulator::Min),
    folds_only_ints: false,
};
const MAX: Facts = Facts {
    function: AggFn::Max,
    name: "max",
    takes_star: false,
    argument: Argument::Ordered,
    returns: Returns::ArgumentType,
    moves: Moves::Up,
    accumulator: Some(Accumulator::Max),
    folds_only_ints: false,
};
const AVG: Facts = Facts {
    function: AggFn::Avg,
    name: "avg",
    takes_star: false,
    argument: Argument::Number,
    returns: Returns::Float,
    moves: Moves::Either,
    accumulator: None,
    folds_only_ints: false,
};

/// The aggregates, one row each.
pub const AGGREGATES: [Facts; 5] = [COUNT, SUM, MIN, MAX, AVG];

impl AggFn {
    /// This aggregate's row of [`AGGREGATES`].
    pub fn facts(self) -> &'static Facts {
        match self {
            AggFn::Count => &COUNT,
            AggFn::Sum => &SUM,
            AggFn::Min => &MIN,
            AggFn::Max => &MAX,
            AggFn::Avg => &AVG,
        }
    }

    pub fn from_name(name: &str) -> Option<AggFn> {
        AGGREGATES.iter().find(|f| f.name == name).map(|f| f.function)
    }

    pub fn name(self) -> &'static str {
        self.facts().name
    }
}

impl Facts {
    /// Whether an argument of type `ty` is allowed.
    pub fn accepts(&self, ty: Type) -> bool {
        match self.argument {
            Argument::Anything => true,
            Argument::Number => matches!(ty, Type::Int | Type::Float),
            Argument::Ordered => ty != Type::Bool,
        }
    }

    /// The type of the aggregate over an argument of type `arg` (`None` for `*`).
    pub fn result(&self, arg: Option<Type>) -> Type {
        match self.returns {
            Returns::Int => Type::Int,
            Returns::Float => Type::Float,
            Returns::ArgumentType => arg.unwrap_or(Type::Int),
        }
    }

    /// Its accumulator when it folds over an argument of type `arg` (`None` for `*`).
    pub fn fold(&self, arg: Option<Type>) -> Option<Accumulator> {
        let int_arg = arg.is_none_or(|t| t == Type::Int);
        self.accumulator.filter(|_| !self.folds_only_ints || int_arg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_belongs_to_its_function_and_its_name_finds_it() {
        for f in [AggFn::Count, AggFn::Sum, AggFn::Min, AggFn::Max, AggFn::Avg] {
            assert_eq!(f.facts().function, f);
            assert_eq!(AggFn::from_name(f.name()), Some(f));
        }
        assert_eq!(AggFn::from_name("median"), None);
    }

    #[test]
    fn a_float_sum_and_an_average_do_not_fold() {
        assert_eq!(AggFn::Sum.facts().fold(Some(Type::Int)), Some(Accumulator::Sum));
        assert_eq!(AggFn::Sum.facts().fold(Some(Type::Float)), None);
        assert_eq!(AggFn::Avg.facts().fold(Some(Type::Int)), None);
        assert_eq!(AggFn::Count.facts().fold(None), Some(Accumulator::Count));
        assert_eq!(AggFn::Max.facts().fold(Some(Type::String)), Some(Accumulator::Max));
    }
}
