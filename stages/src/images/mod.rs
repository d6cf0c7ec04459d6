//! Image data for pretraining and extraction, as bytes (no libtorch here): CIFAR-10's binary
//! files ([`cifar`]) or the embedded synthetic set ([`synthetic`]), the info-NAS held-out split,
//! and batches normalised and (seeded) augmented as NASBench-PyTorch's transforms do.
//!
//! Images are stored as CIFAR does: 3 x 32 x 32 bytes a picture, channel planes R, G, B.
pub mod cifar;
pub mod synthetic;

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const SIDE: usize = 32;
pub const PIXELS: usize = 3 * SIDE * SIDE;
pub const CLASSES: usize = 10;
/// CIFAR-10 channel means and standard deviations (NASBench-PyTorch's `Normalize`).
pub const MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
pub const STD: [f32; 3] = [0.2023, 0.1994, 0.2010];
/// Padding of the random crop.
pub const PAD: usize = 4;

/// Pictures and their labels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Images {
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Images {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * PIXELS..(i + 1) * PIXELS]
    }
    /// The pictures at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Images {
        let mut out = Images {
            pixels: Vec::with_capacity(idx.len() * PIXELS),
            labels: Vec::with_capacity(idx.len()),
        };
        for &i in idx {
            out.pixels.extend_from_slice(self.image(i));
            out.labels.push(self.labels[i]);
        }
        out
    }
}

/// A training set and a test set.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub train: Images,
    pub test: Images,
    /// What it is, for records: `synthetic(seed=1)` or `cifar10`.
    pub name: String,
}

/// The keyword of an `images` param for the embedded synthetic set.
pub struct Synthetic;

impl nasflow_contract::Keywords for Synthetic {
    const KEYWORDS: &'static [&'static str] = &["synthetic"];
}

/// An image source as pipeline.toml names it: `"synthetic"` or a CIFAR-10 directory.
pub type ImageSource = nasflow_contract::PathOr<Synthetic>;

/// Loads an image source.
pub fn load(source: &ImageSource, seed: u64) -> Result<Dataset, cifar::CifarError> {
    match source.path() {
        None => Ok(synthetic::generate(seed, synthetic::TRAIN, synthetic::TEST)),
        Some(dir) => cifar::load_dir(dir),
    }
}

/// The info-NAS split of the training images: `held_out` indices drawn without replacement with
/// a seeded generator (sorted), and the rest, which train the networks.
pub fn split(n: usize, held_out: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(10);
    let mut held: Vec<usize> = rand::seq::index::sample(&mut rng, n, held_out.min(n)).into_vec();
    held.sort_unstable();
    let mut is_held = vec![false; n];
    held.iter().for_each(|&i| is_held[i] = true);
    let rest = (0..n).filter(|&i| !is_held[i]).collect();
    (rest, held)
}

/// Normalised float pictures (N x 3 x 32 x 32, row-major) of `idx`; with `augment`, each
/// picture is randomly cropped from its 4-pixel zero-padded version and flipped horizontally
/// with probability 1/2, as `RandomCrop(32, padding=4)` and `RandomHorizontalFlip` do.
pub fn batch(images: &Images, idx: &[usize], mut augment: Option<&mut ChaCha8Rng>) -> Vec<f32> {
    let mut out = vec![0f32; idx.len() * PIXELS];
    for (k, &i) in idx.iter().enumerate() {
        let (dy, dx, flip) = match augment.as_deref_mut() {
            Some(rng) => (
                rng.random_range(0..=2 * PAD) as isize - PAD as isize,
                rng.random_range(0..=2 * PAD) as isize - PAD as isize,
                rng.random_bool(0.5),
            ),
            None => (0, 0, false),
        };
        let src = images.image(i);
        let dst = &mut out[k * PIXELS..(k + 1) * PIXELS];
        for c in 0..3 {
            let zero = -MEAN[c] / STD[c];
            for y in 0..SIDE {
                let sy = y as isize + dy;
                for x in 0..SIDE {
                    let xx = if flip { SIDE - 1 - x } else { x };
                    let sx = xx as isize + dx;
                    let v = if (0..SIDE as isize).contains(&sy) && (0..SIDE as isize).contains(&sx)
                    {
                        (src[c * SIDE * SIDE + sy as usize * SIDE + sx as usize] as f32 / 255.0
                            - MEAN[c])
                            / STD[c]
                    } else {
                        zero
                    };
                    dst[c * SIDE * SIDE + y * SIDE + x] = v;
                }
            }
        }
    }
    out
}

/// A seeded generator for one purpose (`stream`) of one run.
pub fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// Shuffles `v` in place with `rng` (Fisher-Yates, via rand).
pub fn shuffle<T>(v: &mut [T], rng: &mut impl Rng) {
    use rand::seq::SliceRandom;
    v.shuffle(rng);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_seeded_disjoint_and_complete() {
        let (a, b) = split(500, 100, 1);
        assert_eq!((a.len(), b.len()), (400, 100));
        let mut all: Vec<usize> = a.iter().chain(&b).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..500).collect::<Vec<_>>());
        assert_eq!(split(500, 100, 1), (a, b.clone()));
        assert_ne!(split(500, 100, 2).1, b);
    }

    #[test]
    fn batch_normalises_and_augments() {
        let mut img = Images {
            pixels: vec![0; PIXELS],
            labels: vec![3],
        };
        img.pixels[0] = 255; // top-left red pixel
        let plain = batch(&img, &[0], None);
        assert!((plain[0] - (1.0 - MEAN[0]) / STD[0]).abs() < 1e-6);
        assert!((plain[1] - (-MEAN[0] / STD[0])).abs() < 1e-6);
        // Augmented: the bright pixel moves (or leaves the crop); the seed fixes where.
        let a1 = batch(&img, &[0], Some(&mut rng(1, 0)));
        let a2 = batch(&img, &[0], Some(&mut rng(1, 0)));
        assert_eq!(a1, a2);
        let moved = (0..20).any(|s| batch(&img, &[0], Some(&mut rng(s, 0))) != plain);
        assert!(moved);
    }
}
