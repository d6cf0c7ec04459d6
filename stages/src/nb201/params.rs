//! Trainable parameters and multiply-accumulates of NB201's CIFAR network (`TinyNetwork` with
//! `InferCell`s in D-X-Y/AutoDL-Projects `xautodl/models/cell_infers/`): a stem conv 3x3 + batch
//! norm with `C` channels, `stacks` stages of `N` cells with a residual reduction block
//! (`ResNetBasicblock`, stride 2, channels doubled) between stages, batch norm + ReLU, global
//! average pooling and a linear classifier. NB201's own network: C 16, N 5, 3 stages.
//!
//! In a cell, `nor_conv_KxK` is ReLU, conv (no bias), batch norm (trainable scale and shift);
//! `avg_pool_3x3`, `skip_connect` and `none` have no parameters (cells keep their channels, so
//! neither the pool's projection nor the skip's factorized reduction is ever built). The
//! reduction block: ReLU-conv3x3(stride 2)-BN, ReLU-conv3x3-BN, and a residual branch of 2x2
//! average pooling then a 1x1 conv (no bias).
use super::cell::{Cell, Op};
use crate::nb101::params::Skeleton;

/// NB201's network: 3 input channels, C 16, 3 stages of N 5 cells, 10 classes.
pub const NB201: Skeleton = Skeleton {
    in_channels: 3,
    init_channels: 16,
    stacks: 3,
    cells_per_stack: 5,
    classes: 10,
};

/// Conv weights and batch-norm scale and shift of one ReLU-conv-BN.
fn relu_conv_bn(cin: usize, cout: usize, k: usize) -> usize {
    k * k * cin * cout + 2 * cout
}

fn cell_parameters(cell: &Cell, c: usize) -> usize {
    cell.ops
        .iter()
        .map(|op| match op {
            Op::Conv1x1 => relu_conv_bn(c, c, 1),
            Op::Conv3x3 => relu_conv_bn(c, c, 3),
            _ => 0,
        })
        .sum()
}

/// The network's trainable parameters (NB201's `params` column is this over 1e6).
pub fn trainable_parameters(cell: &Cell, s: &Skeleton) -> usize {
    let c0 = s.init_channels;
    let mut total = s.in_channels * c0 * 9 + 2 * c0;
    for stage in 0..s.stacks {
        let c = c0 << stage;
        if stage > 0 {
            total += relu_conv_bn(c / 2, c, 3) + relu_conv_bn(c, c, 3) + c / 2 * c;
        }
        total += s.cells_per_stack * cell_parameters(cell, c);
    }
    let last = c0 << s.stacks.saturating_sub(1);
    total + 2 * last + last * s.classes + s.classes
}

/// Multiply-accumulates of convolutions and the classifier on one `side` x `side` image
/// (pooling, batch norm and additions not counted, as for NB101's figure).
pub fn multiply_accumulates(cell: &Cell, s: &Skeleton, side: usize) -> u64 {
    let c0 = s.init_channels as u64;
    let mut hw = (side * side) as u64;
    let mut total = hw * c0 * s.in_channels as u64 * 9;
    let per_cell = |c: u64, hw: u64| -> u64 {
        cell.ops
            .iter()
            .map(|op| match op {
                Op::Conv1x1 => hw * c * c,
                Op::Conv3x3 => hw * c * c * 9,
                _ => 0,
            })
            .sum()
    };
    for stage in 0..s.stacks {
        let c = c0 << stage;
        if stage > 0 {
            hw /= 4;
            total += hw * c * (c / 2) * 9 + hw * c * c * 9 + hw * c * (c / 2);
        }
        total += s.cells_per_stack as u64 * per_cell(c, hw);
    }
    let last = c0 << s.stacks.saturating_sub(1);
    total + last * s.classes as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nb201::table::Table;

    #[test]
    fn parameter_counts_equal_nb201s_for_every_cell_it_publishes() {
        let t = Table::embedded().unwrap();
        let mut checked = 0;
        for r in t.rows() {
            let Some(published) = r.params_m else {
                continue;
            };
            let ours = trainable_parameters(&r.cell, &NB201);
            assert_eq!(
                format!("{:.6}", ours as f64 / 1e6),
                format!("{published:.6}"),
                "{}",
                r.cell.arch_string()
            );
            checked += 1;
        }
        assert_eq!(checked, 9445);
    }

    #[test]
    fn multiply_accumulates_by_hand() {
        // All none: stem 32*32*16*3*9, the two reduction blocks, the classifier.
        let none = Cell::parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|").unwrap();
        let stem = 32 * 32 * 16 * 3 * 9;
        let red1 = 256 * 32 * 16 * 9 + 256 * 32 * 32 * 9 + 256 * 32 * 16;
        let red2 = 64 * 64 * 32 * 9 + 64 * 64 * 64 * 9 + 64 * 64 * 32;
        assert_eq!(
            multiply_accumulates(&none, &NB201, 32),
            stem + red1 + red2 + 640
        );
        // One 1x1 conv per cell adds 1024*16*16 per stage-1 cell, the same at every stage.
        let one = Cell::parse("|none~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|").unwrap();
        assert_eq!(
            multiply_accumulates(&one, &NB201, 32) - multiply_accumulates(&none, &NB201, 32),
            3 * 5 * 262_144
        );
    }
}
