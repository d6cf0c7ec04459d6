//! Channel plan and trainable parameter count of the NB101 network built from a cell
//! (NASBench-PyTorch's `Network`, which follows NB101's `model_builder`): a stem conv-bn-relu,
//! `stacks` stacks of `cells_per_stack` cells with 2x2 max-pooling and channel doubling between
//! stacks, global average pooling and a dense classifier. Conv layers have no bias; every
//! batch norm has a trainable scale and shift.
use super::cell::{Cell, Op};

/// The network's sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skeleton {
    pub in_channels: usize,
    pub init_channels: usize,
    pub stacks: usize,
    pub cells_per_stack: usize,
    pub classes: usize,
}

impl Skeleton {
    /// NB101's: 3 input channels, 128 stem channels, 3 stacks x 3 cells, 10 classes.
    pub const NB101: Skeleton = Skeleton {
        in_channels: 3,
        init_channels: 128,
        stacks: 3,
        cells_per_stack: 3,
        classes: 10,
    };

    /// Channels of the features before the classifier.
    pub fn feature_channels(&self) -> usize {
        self.init_channels << self.stacks.saturating_sub(1)
    }
}

/// NB101's `compute_vertex_channels`: the channels of every vertex of a (pruned) cell taking
/// `input` channels and producing `output`. Vertices feeding the output split `output` among
/// them, the remainder going one channel each to the lowest-numbered ones; every other vertex
/// takes the largest of its successors' channels.
pub fn vertex_channels(cell: &Cell, input: usize, output: usize) -> Vec<usize> {
    let n = cell.num_vertices();
    let mut ch = vec![0usize; n];
    ch[0] = input;
    ch[n - 1] = output;
    if n == 2 {
        return ch;
    }
    let out_in_degree = (1..n).filter(|&v| cell.edge(v, n - 1)).count();
    if out_in_degree == 0 {
        return ch; // only the input feeds the output: nothing interior survives pruning
    }
    let interior = output / out_in_degree;
    let mut correction = output % out_in_degree;
    for v in 1..n - 1 {
        if cell.edge(v, n - 1) {
            ch[v] = interior;
            if correction > 0 {
                ch[v] += 1;
                correction -= 1;
            }
        }
    }
    for v in (1..n.saturating_sub(2)).rev() {
        if !cell.edge(v, n - 1) {
            for dst in v + 1..n - 1 {
                if cell.edge(v, dst) {
                    ch[v] = ch[v].max(ch[dst]);
                }
            }
        }
    }
    ch
}

fn conv_bn(cin: usize, cout: usize, k: usize) -> usize {
    cin * cout * k * k + 2 * cout
}

/// Trainable parameters of one cell.
pub fn cell_parameters(cell: &Cell, input: usize, output: usize) -> usize {
    let n = cell.num_vertices();
    let ch = vertex_channels(cell, input, output);
    let mut total = 0;
    for t in 1..n {
        if t < n - 1 {
            total += match cell.ops()[t] {
                Op::Conv3x3 => conv_bn(ch[t], ch[t], 3),
                Op::Conv1x1 => conv_bn(ch[t], ch[t], 1),
                _ => 0,
            };
        }
        if cell.edge(0, t) {
            total += conv_bn(input, ch[t], 1); // the 1x1 projection of the cell input
        }
    }
    total
}

/// Trainable parameters of the whole network.
pub fn trainable_parameters(cell: &Cell, s: &Skeleton) -> usize {
    let mut total = conv_bn(s.in_channels, s.init_channels, 3);
    let mut cin = s.init_channels;
    let mut cout = s.init_channels;
    for stack in 0..s.stacks {
        if stack > 0 {
            cout *= 2;
        }
        for _ in 0..s.cells_per_stack {
            total += cell_parameters(cell, cin, cout);
            cin = cout;
        }
    }
    total + cout * s.classes + s.classes
}

/// Multiply-accumulates of one cell's convolutions on one `side` x `side` image.
fn cell_macs(cell: &Cell, input: usize, output: usize, side: usize) -> u64 {
    let n = cell.num_vertices();
    let ch = vertex_channels(cell, input, output);
    let px = (side * side) as u64;
    let conv = |cin: usize, cout: usize, k: usize| (cin * cout * k * k) as u64 * px;
    let mut total = 0;
    for t in 1..n {
        if t < n - 1 {
            total += match cell.ops()[t] {
                Op::Conv3x3 => conv(ch[t], ch[t], 3),
                Op::Conv1x1 => conv(ch[t], ch[t], 1),
                _ => 0,
            };
        }
        if cell.edge(0, t) {
            total += conv(input, ch[t], 1);
        }
    }
    total
}

/// Multiply-accumulates of the network's convolutions and classifier on one image of
/// `side` x `side` pixels (forward pass; batch norm, pooling and additions not counted): the
/// deterministic measure of training cost the `pretrained` search table uses.
pub fn multiply_accumulates(cell: &Cell, s: &Skeleton, side: usize) -> u64 {
    let mut total = (s.in_channels * s.init_channels * 9 * side * side) as u64;
    let (mut cin, mut cout, mut side) = (s.init_channels, s.init_channels, side);
    for stack in 0..s.stacks {
        if stack > 0 {
            cout *= 2;
            side /= 2;
        }
        for _ in 0..s.cells_per_stack {
            total += cell_macs(cell, cin, cout, side);
            cin = cout;
        }
    }
    total + (cout * s.classes) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_cell_has_nb101s_count() {
        let c = Cell::parse(
            "0111010000000100000010000100000000100000010000000",
            "input,conv1x1-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,maxpool3x3,output",
        )
        .unwrap();
        assert_eq!(trainable_parameters(&c, &Skeleton::NB101), 2_694_282);
    }

    #[test]
    fn multiply_accumulates_by_hand() {
        // input -> conv3x3 -> output, 1 stack of 1 cell, 4 stem channels, 2 classes, 2x2 images:
        // stem 3*4*9*4 = 432; projection 4*4*1*4 = 64; conv3x3 4*4*9*4 = 576; classifier 4*2 = 8.
        let c = Cell::parse("010001000", "input,conv3x3-bn-relu,output").unwrap();
        let s = Skeleton {
            in_channels: 3,
            init_channels: 4,
            stacks: 1,
            cells_per_stack: 1,
            classes: 2,
        };
        assert_eq!(multiply_accumulates(&c, &s, 2), 432 + 64 + 576 + 8);
    }

    #[test]
    fn remainder_goes_to_the_lowest_vertices() {
        // Three vertices feed the output: 128 = 43 + 43 + 42.
        let c = Cell::parse(
            "0111000001000010000100000",
            "input,conv3x3-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,output",
        )
        .unwrap();
        assert_eq!(vertex_channels(&c, 128, 128), vec![128, 43, 43, 42, 128]);
    }
}
