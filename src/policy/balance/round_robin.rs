//! The round-robin family of pickers: plain [`RoundRobin`] and nginx's smooth weighted
//! round-robin. Runs on a shard thread: cursors and running scores are plain `Cell`s owned by that
//! shard.

use std::cell::Cell;

use super::Candidates;

/// nginx's smooth weighted round-robin: every usable endpoint gains its weight, the highest
/// score wins (the first on a tie) and pays back the total of usable weights.
pub(super) fn smooth_weighted<C: Candidates>(
    c: &C,
    weights: &[i64],
    current: &[Cell<i64>],
) -> Option<usize> {
    let mut total = 0i64;
    let mut best: Option<(usize, i64)> = None;
    for (i, (w, cur)) in weights.iter().zip(current).enumerate().take(c.len()) {
        if !c.usable(i) {
            continue;
        }
        let score = cur.get().saturating_add(*w);
        cur.set(score);
        total = total.saturating_add(*w);
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((i, score));
        }
    }
    let (i, score) = best?;
    current[i].set(score.saturating_sub(total));
    Some(i)
}

/// Plain round-robin over endpoint indices.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: Cell<usize>,
}

impl RoundRobin {
    /// The next endpoint of `n` that `usable` accepts, or `None` when none does.
    pub fn pick(&self, n: usize, usable: impl Fn(usize) -> bool) -> Option<usize> {
        if n == 0 {
            return None;
        }
        let start = self.next.get() % n;
        let i = (start..n).chain(0..start).find(|&i| usable(i))?;
        self.next.set(if i + 1 == n { 0 } else { i + 1 });
        Some(i)
    }
}
