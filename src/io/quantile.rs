//! The 2nd / 98th percentile range that maps a raster to [0, 1], computed two ways with one
//! definition: in memory by selection ([`unit_range_of`]) and over a stream of row bands by
//! exact histogram selection ([`streamed_unit_range`]).
//!
//! Both go through [`unit_range_from`], so the ranks and the interpolation formula exist once and
//! the two results are bit-identical. Order statistics are taken in [`f32::total_cmp`] order.
//!
//! Streaming selection works on the order-preserving `u32` key of each sample ([`key`]): a first
//! pass counts the top 16 bits of the keys (65536 bins), which tells in which bin each wanted
//! order statistic lies and at which rank inside it; a second pass counts the low 16 bits of the
//! samples falling in those few bins, which pins the exact key. Samples that are all 16-bit
//! integers (most 16-bit images) are counted exactly in the first pass and need no second one.

/// The quantiles mapped to 0 and 1 (NumPy's "linear" method, as the training side computes them).
const UNIT_QUANTILES: [f64; 2] = [0.02, 0.98];

/// The range used when no sample is valid.
const NO_SAMPLE_RANGE: (f32, f32) = (0.0, 1.0);

/// Bins of a 16-bit histogram.
const BINS: usize = 1 << 16;

/// Where quantile `q` of `n` sorted samples lies: the rank just below and the fraction towards
/// the next rank.
fn quantile_rank(q: f64, n: usize) -> (usize, f64) {
    let h = q * (n - 1) as f64;
    let i = h.floor() as usize;
    (i, h - i as f64)
}

/// Linear interpolation between two neighbouring order statistics.
fn interpolate(below: f32, above: f32, frac: f64) -> f32 {
    let (below, above) = (below as f64, above as f64);
    (below + frac * (above - below)) as f32
}

/// The [0, 1] mapping range of `n` valid samples (the one formula). `neighbours(i)` returns the `i`-th smallest
/// sample (0-based) and the `i + 1`-th, or the `i`-th twice when `i` is the last rank.
/// `(0, 1)` when there is no sample.
fn unit_range_from(n: usize, mut neighbours: impl FnMut(usize) -> (f32, f32)) -> (f32, f32) {
    if n == 0 {
        return NO_SAMPLE_RANGE;
    }
    let [lo, hi] = UNIT_QUANTILES.map(|q| {
        let (i, frac) = quantile_rank(q, n);
        let (below, above) = neighbours(i);
        interpolate(below, above, frac)
    });
    (lo, hi)
}

/// The ranks [`unit_range_from`] asks for when there are `n` samples (each quantile's rank and
/// the next one, clamped to the last rank).
fn unit_ranks(n: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let mut ranks: Vec<usize> = UNIT_QUANTILES
        .iter()
        .flat_map(|&q| {
            let i = quantile_rank(q, n).0;
            [i, (i + 1).min(n - 1)]
        })
        .collect();
    ranks.sort_unstable();
    ranks.dedup();
    ranks
}

/// The [0, 1] mapping range of samples held in memory (reordered in place).
pub(crate) fn unit_range_of(samples: &mut [f32]) -> (f32, f32) {
    unit_range_from(samples.len(), |i| {
        let below = *samples.select_nth_unstable_by(i, f32::total_cmp).1;
        let above = samples[i + 1..].iter().copied().min_by(f32::total_cmp).unwrap_or(below);
        (below, above)
    })
}

/// The key of `v` whose unsigned order is [`f32::total_cmp`]'s order.
fn key(v: f32) -> u32 {
    let bits = v.to_bits();
    if bits & 0x8000_0000 != 0 { !bits } else { bits | 0x8000_0000 }
}

/// The sample whose [`key`] is `k`.
fn from_key(k: u32) -> f32 {
    f32::from_bits(if k & 0x8000_0000 != 0 { k & 0x7FFF_FFFF } else { !k })
}

/// The [0, 1] mapping range of the valid samples of a stream, exact, in at most two passes.
/// `pass(visit)` must call `visit` on every valid sample, in any order, the same samples each
/// time it is called. `integer_offset`: see [`KeyCounts::new`]. `Ok(None)` when the second pass
/// did not see the samples of the first.
pub(crate) fn streamed_unit_range<E>(
    integer_offset: Option<i64>,
    mut pass: impl FnMut(&mut dyn FnMut(f32)) -> Result<(), E>,
) -> Result<Option<(f32, f32)>, E> {
    let mut first = KeyCounts::new(integer_offset);
    pass(&mut |v| first.add(v))?;
    let n = first.count;
    let ranks = unit_ranks(n);
    let values = match first.integer_values(&ranks) {
        Some(values) => values,
        None => {
            let Some(wanted) = first.locate(&ranks) else { return Ok(None) };
            let mut second = LowCounts::new(&wanted);
            pass(&mut |v| second.add(v))?;
            let Some(values) = second.values(&wanted) else { return Ok(None) };
            values
        }
    };
    let value_of = |rank: usize| values[ranks.binary_search(&rank).expect("unit_ranks lists every rank asked for")];
    Ok(Some(unit_range_from(n, |i| (value_of(i), value_of((i + 1).min(n - 1))))))
}

/// The bin holding the sample of rank `rank` in a histogram, and its rank inside that bin;
/// `None` when the histogram holds fewer samples.
fn locate_in(counts: &[u64], rank: usize) -> Option<(usize, u64)> {
    let mut remaining = rank as u64;
    for (bin, &count) in counts.iter().enumerate() {
        if remaining < count {
            return Some((bin, remaining));
        }
        remaining -= count;
    }
    None
}

/// A wanted order statistic after the first pass: the top 16 bits of its key and its rank among
/// the samples sharing them.
#[derive(Debug, Clone, Copy)]
struct Located {
    top: u32,
    rank_in_bin: u64,
}

/// First pass of the streaming selection: counts of the top 16 key bits, and while every sample
/// is a 16-bit integer, exact counts of the integers themselves.
struct KeyCounts {
    top: Vec<u64>,
    count: usize,
    /// `(offset, counts)`: counts[v + offset] for integer samples v; `None` once a sample is not
    /// an integer in `-offset .. 65536 - offset`.
    integers: Option<(i64, Vec<u64>)>,
}

impl KeyCounts {
    /// Counts for samples that may all be integers in `-offset .. 65536 - offset` (`Some(0)` for
    /// unsigned and `Some(32768)` for signed 16-bit data), or `None` for other data.
    fn new(integer_offset: Option<i64>) -> Self {
        KeyCounts { top: vec![0; BINS], count: 0, integers: integer_offset.map(|o| (o, vec![0; BINS])) }
    }

    /// Counts one valid sample.
    fn add(&mut self, v: f32) {
        self.top[(key(v) >> 16) as usize] += 1;
        self.count += 1;
        if let Some((offset, counts)) = &mut self.integers {
            match integer_bin(v, *offset) {
                Some(bin) => counts[bin] += 1,
                None => self.integers = None,
            }
        }
    }

    /// The samples of the given ranks, when all samples were 16-bit integers.
    fn integer_values(&self, ranks: &[usize]) -> Option<Vec<f32>> {
        let (offset, counts) = self.integers.as_ref()?;
        ranks.iter().map(|&r| locate_in(counts, r).map(|(bin, _)| (bin as i64 - offset) as f32)).collect()
    }

    /// Where the samples of the given ranks lie, for the second pass.
    fn locate(&self, ranks: &[usize]) -> Option<Vec<Located>> {
        ranks
            .iter()
            .map(|&r| locate_in(&self.top, r).map(|(top, rank_in_bin)| Located { top: top as u32, rank_in_bin }))
            .collect()
    }
}

/// The histogram bin of `v` when it is an integer (not -0) in `-offset .. 65536 - offset`.
fn integer_bin(v: f32, offset: i64) -> Option<usize> {
    let i = v as i64;
    let bin = i + offset;
    ((i as f32).to_bits() == v.to_bits() && (0..BINS as i64).contains(&bin)).then_some(bin as usize)
}

/// Second pass of the streaming selection: counts of the low 16 key bits of the samples whose
/// top bits are those of a wanted order statistic.
struct LowCounts {
    bins: Vec<(u32, Vec<u64>)>,
}

impl LowCounts {
    /// Empty counts for the bins of `wanted`.
    fn new(wanted: &[Located]) -> Self {
        let mut tops: Vec<u32> = wanted.iter().map(|l| l.top).collect();
        tops.sort_unstable();
        tops.dedup();
        LowCounts { bins: tops.into_iter().map(|t| (t, vec![0; BINS])).collect() }
    }

    /// Counts one valid sample (ignored unless it falls in a wanted bin).
    fn add(&mut self, v: f32) {
        let k = key(v);
        if let Some((_, counts)) = self.bins.iter_mut().find(|(top, _)| *top == k >> 16) {
            counts[(k & 0xFFFF) as usize] += 1;
        }
    }

    /// The samples at the `wanted` positions; `None` if the counts do not hold them.
    fn values(&self, wanted: &[Located]) -> Option<Vec<f32>> {
        wanted
            .iter()
            .map(|l| {
                let (_, counts) = self.bins.iter().find(|(top, _)| *top == l.top)?;
                let (low, _) = locate_in(counts, l.rank_in_bin as usize)?;
                Some(from_key((l.top << 16) | low as u32))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_total_order() {
        let mut values = [f32::NEG_INFINITY, -3.5, -1e-30, -0.0, 0.0, 1e-40, 2.0, f32::MAX, f32::INFINITY];
        values.reverse();
        let mut by_key = values;
        by_key.sort_by_key(|&v| key(v));
        let mut by_total = values;
        by_total.sort_by(f32::total_cmp);
        assert_eq!(by_key.map(f32::to_bits), by_total.map(f32::to_bits));
        for v in by_key {
            assert_eq!(from_key(key(v)).to_bits(), v.to_bits());
        }
    }
}
