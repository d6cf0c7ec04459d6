//! arch2vec's environment step: the nearest cell (L2 in the latent space) that a run has not
//! queried yet, for many runs at once.
//!
//! Exact, by a scan of all features, made fast three ways: the features are stored in groups of
//! 8 cells with each coordinate's 8 values together, so the distance of 8 cells is computed in
//! SIMD lanes (in the same summation order as a plain loop, so results are bit-identical to one);
//! the scan goes block by block (2,048 cells, 128 KiB at 16 dimensions), and every query of a
//! batch of runs is checked against a block while it is in cache, so memory is read once per
//! batch, not once per run; nothing is allocated per cell. A tree does not help here: the
//! policy's actions lie far from the cloud of features (unit-variance noise in 16 dimensions),
//! where k-d trees prune almost nothing (kiddo measured slower than this scan).
use super::table::Searchable;

const LANES: usize = 8;
const BLOCK_GROUPS: usize = 256;

/// The features of a table, in groups of 8 cells (coordinate-major within a group).
pub struct Features {
    dim: usize,
    n: usize,
    data: Vec<f32>,
}

impl Features {
    pub fn new(table: &Searchable) -> Features {
        Features::from_rows(&table.features, table.dim)
    }
    pub fn from_rows(rows: &[f32], dim: usize) -> Features {
        let dim = dim.max(1);
        let n = rows.len() / dim;
        let groups = n.div_ceil(LANES);
        let mut data = vec![0f32; groups * dim * LANES];
        for (i, row) in rows.chunks_exact(dim).enumerate() {
            let (g, c) = (i / LANES, i % LANES);
            for (k, v) in row.iter().enumerate() {
                data[(g * dim + k) * LANES + c] = *v;
            }
        }
        Features { dim, n, data }
    }
    pub fn len(&self) -> usize {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

/// The cells a run has queried.
#[derive(Clone, Debug)]
pub struct Visited {
    seen: Vec<bool>,
    left: usize,
}

impl Visited {
    pub fn new(n: usize) -> Visited {
        Visited {
            seen: vec![false; n],
            left: n,
        }
    }
    pub fn visit(&mut self, i: usize) {
        if !std::mem::replace(&mut self.seen[i], true) {
            self.left -= 1;
        }
    }
    pub fn contains(&self, i: usize) -> bool {
        self.seen[i]
    }
    pub fn left(&self) -> usize {
        self.left
    }
}

/// For each query (an action and its run's visited cells): the nearest unvisited cell (ties: the
/// lowest index); `None` when the run has visited every cell. An action with NaN coordinates
/// gets the first unvisited cell. Does not mark anything visited.
pub fn nearest_batch(f: &Features, queries: &[(&[f32], &Visited)]) -> Vec<Option<usize>> {
    let mut best = vec![(f32::INFINITY, usize::MAX); queries.len()];
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { scan_avx2(f, queries, &mut best) };
            return finish(queries, best);
        }
    }
    scan(f, queries, &mut best);
    finish(queries, best)
}

/// The same scan compiled for AVX2 (8 lanes in one register). Without FMA: the same roundings
/// as the portable build, so both give bit-identical answers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scan_avx2(f: &Features, queries: &[(&[f32], &Visited)], best: &mut [(f32, usize)]) {
    scan(f, queries, best)
}

#[inline(always)]
fn scan(f: &Features, queries: &[(&[f32], &Visited)], best: &mut [(f32, usize)]) {
    let groups = f.n.div_ceil(LANES);
    let stride = f.dim * LANES;
    for g0 in (0..groups).step_by(BLOCK_GROUPS) {
        let g1 = (g0 + BLOCK_GROUPS).min(groups);
        for ((a, visited), best) in queries.iter().zip(best.iter_mut()) {
            if visited.left == 0 || a.len() != f.dim {
                continue;
            }
            for g in g0..g1 {
                let block = &f.data[g * stride..(g + 1) * stride];
                let mut d = [0f32; LANES];
                for (col, ak) in block.chunks_exact(LANES).zip(a.iter()) {
                    let col: &[f32; LANES] = col.try_into().expect("8 lanes");
                    for c in 0..LANES {
                        let x = col[c] - ak;
                        d[c] += x * x;
                    }
                }
                for (c, dc) in d.iter().enumerate() {
                    let i = g * LANES + c;
                    if *dc < best.0 && i < f.n && !visited.seen[i] {
                        *best = (*dc, i);
                    }
                }
            }
        }
    }
}

fn finish(queries: &[(&[f32], &Visited)], best: Vec<(f32, usize)>) -> Vec<Option<usize>> {
    queries
        .iter()
        .zip(best)
        .map(|((_, visited), (_, i))| {
            if visited.left == 0 {
                None
            } else if i != usize::MAX {
                Some(i)
            } else {
                visited.seen.iter().position(|s| !s)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images;
    use rand::RngExt;

    fn reference(rows: &[f32], dim: usize, a: &[f32], v: &Visited) -> Option<usize> {
        (0..rows.len() / dim)
            .filter(|&i| !v.contains(i))
            .map(|i| {
                let d: f32 = rows[i * dim..(i + 1) * dim]
                    .iter()
                    .zip(a)
                    .map(|(x, y)| (x - y) * (x - y))
                    .sum();
                (d, i)
            })
            .min_by(|x, y| x.0.partial_cmp(&y.0).unwrap().then(x.1.cmp(&y.1)))
            .map(|x| x.1)
    }

    #[test]
    fn batches_agree_with_sorting_all_distances() {
        for (n, dim) in [(5003, 16), (301, 5)] {
            let mut rng = images::rng(3, dim as u64);
            let rows: Vec<f32> = (0..n * dim)
                .map(|_| rng.random_range(-1.0f32..1.0))
                .collect();
            let f = Features::from_rows(&rows, dim);
            let mut visited = vec![Visited::new(n); 5];
            for step in 0..300 {
                let actions: Vec<Vec<f32>> = (0..5)
                    .map(|q| {
                        (0..dim)
                            .map(|_| rng.random_range(-3.0f32..3.0) * q as f32 / 4.0)
                            .collect()
                    })
                    .collect();
                let queries: Vec<(&[f32], &Visited)> = actions
                    .iter()
                    .map(|a| a.as_slice())
                    .zip(visited.iter())
                    .collect();
                let got = nearest_batch(&f, &queries);
                for q in 0..5 {
                    assert_eq!(
                        got[q],
                        reference(&rows, dim, &actions[q], &visited[q]),
                        "n {n} step {step} query {q}"
                    );
                }
                for (q, g) in got.into_iter().enumerate() {
                    visited[q].visit(g.unwrap());
                }
            }
        }
    }

    #[test]
    fn the_portable_scan_and_the_dispatched_one_agree() {
        let mut rng = images::rng(4, 0);
        let rows: Vec<f32> = (0..3001 * 16)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        let f = Features::from_rows(&rows, 16);
        let v = Visited::new(3001);
        let actions: Vec<Vec<f32>> = (0..20)
            .map(|_| (0..16).map(|_| rng.random_range(-2.0f32..2.0)).collect())
            .collect();
        let queries: Vec<(&[f32], &Visited)> = actions.iter().map(|a| (a.as_slice(), &v)).collect();
        let mut best = vec![(f32::INFINITY, usize::MAX); queries.len()];
        scan(&f, &queries, &mut best);
        assert_eq!(finish(&queries, best), nearest_batch(&f, &queries));
    }

    #[test]
    fn ties_go_to_the_lowest_index_and_exhaustion_gives_none() {
        let rows = [1.0f32, 1.0, 0.0, 0.0, 1.0, 1.0];
        let f = Features::from_rows(&rows, 2);
        let mut v = Visited::new(3);
        assert_eq!(nearest_batch(&f, &[(&[1.0, 1.0], &v)]), vec![Some(0)]);
        v.visit(0);
        assert_eq!(nearest_batch(&f, &[(&[1.0, 1.0], &v)]), vec![Some(2)]);
        assert_eq!(nearest_batch(&f, &[(&[f32::NAN, 0.0], &v)]), vec![Some(1)]);
        v.visit(1);
        v.visit(2);
        assert_eq!(v.left(), 0);
        assert_eq!(nearest_batch(&f, &[(&[1.0, 1.0], &v)]), vec![None]);
    }
}
