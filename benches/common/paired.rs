//! Paired measurements shared by the wall-clock benches: two things timed in alternating
//! order, round after round, so that load that comes and goes on a shared machine hits
//! both sides of a ratio alike.

#![allow(dead_code)]

/// The median of `values` (sorted in place; the mean of the middle two for an even count).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The medians of a paired measurement: A's and B's times per unit, and of A ÷ B; and
/// each side's fastest round. Interference on a shared machine only ever adds time, so
/// `a_best / b_best` is the steadiest ratio when the rounds are many and short.
#[derive(Debug, Clone, Copy)]
pub struct Paired {
    pub a: f64,
    pub b: f64,
    pub ratio: f64,
    pub a_best: f64,
    pub b_best: f64,
}

/// `rounds` rounds of one batch of `a` and one of `b`, A first in even rounds and B first
/// in odd ones; each closure times one batch and returns its time per unit.
pub fn alternate(rounds: usize, mut a: impl FnMut() -> f64, mut b: impl FnMut() -> f64) -> Paired {
    let (mut pa, mut pb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (ta, tb) = if round % 2 == 0 {
            let ta = a();
            (ta, b())
        } else {
            let tb = b();
            (a(), tb)
        };
        pa.push(ta);
        pb.push(tb);
        ratios.push(ta / tb);
    }
    let best = |values: &[f64]| values.iter().copied().fold(f64::INFINITY, f64::min);
    Paired {
        a_best: best(&pa),
        b_best: best(&pb),
        a: median(&mut pa),
        b: median(&mut pb),
        ratio: median(&mut ratios),
    }
}
