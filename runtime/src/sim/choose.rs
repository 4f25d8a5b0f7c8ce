//! Where the choices of a schedule come from: drawn from a seed, or read from a script of
//! choices that records each choice and how many options it had, so that an exhaustive
//! search can enumerate every choice sequence depth first.

/// Where the choices of a schedule come from.
pub trait Chooser {
    /// A number below `n` (`n >= 1`).
    fn pick(&mut self, n: usize) -> usize;
}

/// Choices drawn from a seed (SplitMix64).
pub struct Seeded(pub u64);

impl Chooser for Seeded {
    fn pick(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z % n.max(1) as u64) as usize
    }
}

/// Choices read from a script; past its end, always the first option. Records every choice
/// made and how many options it had, so an exhaustive search can take the next script.
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub choices: Vec<usize>,
    pub made: Vec<(usize, usize)>,
}

impl Chooser for Script {
    fn pick(&mut self, n: usize) -> usize {
        let c = self.choices.get(self.made.len()).copied().unwrap_or(0).min(n.max(1) - 1);
        self.made.push((c, n));
        c
    }
}

impl Script {
    /// The next script in depth-first order after this run, or `None` when every choice
    /// sequence has been tried.
    pub fn successor(&self) -> Option<Vec<usize>> {
        let mut made = self.made.clone();
        while let Some((c, n)) = made.pop() {
            if c + 1 < n {
                let mut next: Vec<usize> = made.iter().map(|(c, _)| *c).collect();
                next.push(c + 1);
                return Some(next);
            }
        }
        None
    }
}

/// Splits `items` into (taken, left) by one choice per item; with `nonempty`, at least one.
pub(crate) fn split<T>(items: Vec<T>, choose: &mut dyn Chooser, nonempty: bool) -> (Vec<T>, Vec<T>) {
    let mut taken = Vec::new();
    let mut left = Vec::new();
    for it in items {
        if choose.pick(2) == 1 {
            taken.push(it);
        } else {
            left.push(it);
        }
    }
    if nonempty && taken.is_empty() && !left.is_empty() {
        let at = choose.pick(left.len());
        taken.push(left.remove(at));
    }
    (taken, left)
}
