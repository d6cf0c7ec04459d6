//! A layered drawing of a DAG for the report (a small Sugiyama layout, written here: the crates
//! we looked at route edges as straight lines): each node in the layer of its longest path from a
//! source, every edge that skips layers routed through a slot of its own in each layer it
//! crosses, nodes ordered in each layer by the mean slot of their predecessors. An edge runs from
//! the right side of its source to the left side of its target and, in a layer it crosses, along
//! its own slot's middle, so it never passes under a box.

/// Box size and gaps, in pixels.
pub const BOX_W: f64 = 170.0;
pub const BOX_H: f64 = 48.0;
const GAP_X: f64 = 70.0;
const GAP_Y: f64 = 22.0;
const MARGIN: f64 = 10.0;

/// Where each node's box is (top-left corner) and each edge's path (points in order).
#[derive(Clone, Debug, Default)]
pub struct Layout {
    pub boxes: Vec<(f64, f64)>,
    pub paths: Vec<Vec<(f64, f64)>>,
    pub width: f64,
    pub height: f64,
}

/// A slot of a layer: a node, or edge `e` passing through.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Slot {
    Node(usize),
    Pass(usize),
}

/// Lays out `n` nodes with `edges` (from, to), which must form a DAG.
pub fn layout(n: usize, edges: &[(usize, usize)]) -> Layout {
    let mut depth = vec![0usize; n];
    for _ in 0..n {
        for &(a, b) in edges {
            depth[b] = depth[b].max(depth[a] + 1);
        }
    }
    let layers = depth.iter().max().map_or(0, |d| d + 1);
    let mut slots: Vec<Vec<Slot>> = vec![Vec::new(); layers];
    for (i, &d) in depth.iter().enumerate() {
        slots[d].push(Slot::Node(i));
    }
    for (e, &(a, b)) in edges.iter().enumerate() {
        for layer in slots.iter_mut().take(depth[b]).skip(depth[a] + 1) {
            layer.push(Slot::Pass(e));
        }
    }
    order_by_barycenter(&mut slots, edges, &depth);
    let at = |slot: Slot| -> (f64, f64) {
        let (l, k) = (slots.iter().enumerate())
            .find_map(|(l, v)| v.iter().position(|s| *s == slot).map(|k| (l, k)))
            .expect("every slot is placed");
        (
            MARGIN + l as f64 * (BOX_W + GAP_X),
            MARGIN + k as f64 * (BOX_H + GAP_Y),
        )
    };
    let boxes: Vec<(f64, f64)> = (0..n).map(|i| at(Slot::Node(i))).collect();
    let mid = BOX_H / 2.0;
    let paths = (edges.iter().enumerate())
        .map(|(e, &(a, b))| {
            let (x, y) = boxes[a];
            let mut p = vec![(x + BOX_W, y + mid)];
            for (l, layer) in slots.iter().enumerate().take(depth[b]).skip(depth[a] + 1) {
                // The edge's own slot in each layer it crosses.
                let k = layer
                    .iter()
                    .position(|s| *s == Slot::Pass(e))
                    .expect("a pass");
                let (x, y) = (
                    MARGIN + l as f64 * (BOX_W + GAP_X),
                    MARGIN + k as f64 * (BOX_H + GAP_Y),
                );
                p.push((x, y + mid));
                p.push((x + BOX_W, y + mid));
            }
            let (x, y) = boxes[b];
            p.push((x, y + mid));
            p
        })
        .collect();
    let rows = slots.iter().map(Vec::len).max().unwrap_or(1);
    Layout {
        boxes,
        paths,
        width: 2.0 * MARGIN + layers as f64 * (BOX_W + GAP_X) - GAP_X,
        height: 2.0 * MARGIN + rows as f64 * (BOX_H + GAP_Y) - GAP_Y,
    }
}

/// Orders each layer (after the first) by the mean slot, in the layer before, of what leads into
/// each slot: a node's predecessors' (or passes'), a pass's previous slot.
fn order_by_barycenter(slots: &mut [Vec<Slot>], edges: &[(usize, usize)], depth: &[usize]) {
    for l in 1..slots.len() {
        let before = slots[l - 1].clone();
        let pos = |s: Slot| before.iter().position(|x| *x == s).map(|k| k as f64);
        let lead = |e: usize| -> Option<f64> {
            let (a, _) = edges[e];
            if depth[a] + 1 == l {
                pos(Slot::Node(a))
            } else {
                pos(Slot::Pass(e))
            }
        };
        let key = |s: &Slot| -> f64 {
            let v: Vec<f64> = match *s {
                Slot::Node(i) => (edges.iter().enumerate())
                    .filter(|(_, &(_, b))| b == i)
                    .filter_map(|(e, _)| lead(e))
                    .collect(),
                Slot::Pass(e) => lead(e).into_iter().collect(),
            };
            if v.is_empty() {
                f64::MAX
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        let mut keyed: Vec<(f64, usize, Slot)> = slots[l]
            .iter()
            .enumerate()
            .map(|(k, s)| (key(s), k, *s))
            .collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        slots[l] = keyed.into_iter().map(|(_, _, s)| s).collect();
    }
}

/// Whether the segment a-b enters the inside of the box at `corner` (shrunk by 1 pixel, so that
/// touching its side does not count): Liang-Barsky clipping.
pub fn crosses_box(a: (f64, f64), b: (f64, f64), corner: (f64, f64)) -> bool {
    let (x0, y0, x1, y1) = (
        corner.0 + 1.0,
        corner.1 + 1.0,
        corner.0 + BOX_W - 1.0,
        corner.1 + BOX_H - 1.0,
    );
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.0 - x0),
        (dx, x1 - a.0),
        (-dy, a.1 - y0),
        (dy, y1 - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return false;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    t0 < t1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_clear(n: usize, edges: &[(usize, usize)]) {
        let l = layout(n, edges);
        for (e, path) in l.paths.iter().enumerate() {
            let (a, b) = edges[e];
            for w in path.windows(2) {
                for (i, &corner) in l.boxes.iter().enumerate() {
                    if i != a && i != b {
                        assert!(
                            !crosses_box(w[0], w[1], corner),
                            "edge {a}->{b} crosses box {i}: {l:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_default_pipelines_edges_pass_under_no_box() {
        // sample, pretrain, extract, preprocess, train-vae, reinforce, predict
        let edges = [
            (0, 1),
            (1, 2),
            (2, 3),
            (0, 4),
            (3, 4),
            (4, 5),
            (1, 5),
            (4, 6),
            (1, 6),
        ];
        assert_clear(7, &edges);
        let l = layout(7, &edges);
        // pretrain -> predict skips three layers: it bends through three slots of its own.
        assert_eq!(l.paths[8].len(), 2 + 2 * 3);
    }

    #[test]
    fn random_dags_pass_under_no_box() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200 {
            let n = 2 + (next() % 9) as usize;
            let edges: Vec<(usize, usize)> = (0..n)
                .flat_map(|b| (0..b).map(move |a| (a, b)))
                .filter(|_| next() % 3 == 0)
                .collect();
            assert_clear(n, &edges);
        }
    }

    #[test]
    fn crossing_is_entering_the_inside() {
        assert!(crosses_box((0.0, 20.0), (500.0, 20.0), (100.0, 0.0)));
        assert!(
            !crosses_box((0.0, 60.0), (500.0, 60.0), (100.0, 0.0)),
            "below it"
        );
        assert!(
            !crosses_box((0.0, 20.0), (100.0, 20.0), (100.0, 0.0)),
            "ends at its side"
        );
    }
}
