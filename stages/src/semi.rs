//! info-NAS's interleaving of labeled and unlabeled batches (`SemiSupervisedDataset`).
//!
//! `coef = floor(coef_k * unlabeled_batches / (labeled_networks / batch_size))`; the next batch is
//! labeled iff `k * (unlabeled_done / coef + 1) > labeled_done` (integer division), so the stream
//! is `k` labeled batches, then `coef` unlabeled, repeated; when one kind runs out only the other
//! remains. At the paper's sizes (608 networks, 381,261 - 608 unlabeled cells, batch 32, k 300,
//! coef_k 0.33) that is 300 labeled, then 206 unlabeled.

/// One batch of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batch {
    Labeled,
    Unlabeled,
}

/// The interleaving rule's unlabeled run length.
pub fn labeled_coef(
    coef_k: f64,
    unlabeled_batches: usize,
    labeled_networks: usize,
    batch_size: usize,
) -> usize {
    let per = (labeled_networks / batch_size.max(1)).max(1);
    ((coef_k * unlabeled_batches as f64) / per as f64)
        .floor()
        .max(1.0) as usize
}

/// The order of an epoch's batches: `labeled` and `unlabeled` batches in all.
pub fn interleave(labeled: usize, unlabeled: usize, k: usize, coef: usize) -> Vec<Batch> {
    let coef = coef.max(1);
    let (mut l, mut u) = (0usize, 0usize);
    let mut out = Vec::with_capacity(labeled + unlabeled);
    while l < labeled || u < unlabeled {
        let want_labeled = k * (u / coef + 1) > l;
        if (want_labeled && l < labeled) || u >= unlabeled {
            out.push(Batch::Labeled);
            l += 1;
        } else {
            out.push(Batch::Unlabeled);
            u += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_sizes_give_300_labeled_then_206_unlabeled() {
        let unlabeled_batches = (381_261usize - 608).div_ceil(32);
        assert_eq!(unlabeled_batches, 11_896);
        let coef = labeled_coef(0.33, unlabeled_batches, 608, 32);
        assert_eq!(coef, 206);
        let labeled_batches = 608_000 / 32;
        let s = interleave(labeled_batches, unlabeled_batches, 300, coef);
        assert_eq!(s.len(), labeled_batches + unlabeled_batches);
        // Runs: 300 labeled, 206 unlabeled, 300 labeled, ...
        let mut runs: Vec<(Batch, usize)> = Vec::new();
        for b in &s {
            match runs.last_mut() {
                Some((kind, n)) if kind == b => *n += 1,
                _ => runs.push((*b, 1)),
            }
        }
        assert_eq!(runs[0], (Batch::Labeled, 300));
        assert_eq!(runs[1], (Batch::Unlabeled, 206));
        assert_eq!(runs[2], (Batch::Labeled, 300));
        assert_eq!(runs[3], (Batch::Unlabeled, 206));
        // The unlabeled batches run out first; only labeled ones remain at the end.
        assert_eq!(runs.last().unwrap().0, Batch::Labeled);
        assert_eq!(
            s.iter().filter(|b| **b == Batch::Unlabeled).count(),
            unlabeled_batches
        );
    }

    #[test]
    fn one_kind_alone() {
        assert_eq!(interleave(0, 3, 300, 206), vec![Batch::Unlabeled; 3]);
        assert_eq!(interleave(2, 0, 300, 206), vec![Batch::Labeled; 2]);
    }
}
