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

/// One picture's augmentation as NASBench-PyTorch draws it: the crop's offsets into the
/// 4-pixel zero-padded picture (0..=8 each, rows then columns) and whether to flip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Augment {
    pub top: usize,
    pub left: usize,
    pub flip: bool,
}

impl Augment {
    /// No augmentation: the picture itself.
    pub const NONE: Augment = Augment {
        top: PAD,
        left: PAD,
        flip: false,
    };

    /// The next augmentation of the stream (three draws: rows, columns, flip).
    pub fn draw(rng: &mut ChaCha8Rng) -> Augment {
        Augment {
            top: rng.random_range(0..=2 * PAD),
            left: rng.random_range(0..=2 * PAD),
            flip: rng.random_bool(0.5),
        }
    }
}

/// Side of a padded picture.
pub const PADDED: usize = SIDE + 2 * PAD;

/// A channel's value where the padded picture has no pixel (zero before normalisation).
fn zero(c: usize) -> f32 {
    -MEAN[c] / STD[c]
}

fn normalised(v: u8, c: usize) -> f32 {
    (v as f32 / 255.0 - MEAN[c]) / STD[c]
}

/// Normalised float pictures (N x 3 x 32 x 32, row-major) of `idx`; with `augment`, each
/// picture is randomly cropped from its 4-pixel zero-padded version and flipped horizontally
/// with probability 1/2, as `RandomCrop(32, padding=4)` and `RandomHorizontalFlip` do.
pub fn batch(images: &Images, idx: &[usize], mut augment: Option<&mut ChaCha8Rng>) -> Vec<f32> {
    let mut out = vec![0f32; idx.len() * PIXELS];
    for (k, &i) in idx.iter().enumerate() {
        let a = match augment.as_deref_mut() {
            Some(rng) => Augment::draw(rng),
            None => Augment::NONE,
        };
        let (dy, dx) = (
            a.top as isize - PAD as isize,
            a.left as isize - PAD as isize,
        );
        let src = images.image(i);
        let dst = &mut out[k * PIXELS..(k + 1) * PIXELS];
        for c in 0..3 {
            for y in 0..SIDE {
                let sy = y as isize + dy;
                for x in 0..SIDE {
                    let xx = if a.flip { SIDE - 1 - x } else { x };
                    let sx = xx as isize + dx;
                    let v = if (0..SIDE as isize).contains(&sy) && (0..SIDE as isize).contains(&sx)
                    {
                        normalised(src[c * SIDE * SIDE + sy as usize * SIDE + sx as usize], c)
                    } else {
                        zero(c)
                    };
                    dst[c * SIDE * SIDE + y * SIDE + x] = v;
                }
            }
        }
    }
    out
}

/// Every picture normalised and zero-padded by 4 (N x 3 x 40 x 40, row-major): what a device
/// keeps once, to crop and flip batches from ([`batch`]'s values, cropped by [`Augment`]).
pub fn padded(images: &Images) -> Vec<f32> {
    let plane = PADDED * PADDED;
    let mut out = vec![0f32; images.len() * 3 * plane];
    for (i, dst) in out.chunks_mut(3 * plane).enumerate() {
        let src = images.image(i);
        for c in 0..3 {
            let dst = &mut dst[c * plane..(c + 1) * plane];
            dst.fill(zero(c));
            for y in 0..SIDE {
                for x in 0..SIDE {
                    dst[(y + PAD) * PADDED + x + PAD] =
                        normalised(src[c * SIDE * SIDE + y * SIDE + x], c);
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

    /// A batch cropped from the padded pictures by the same draws is the batch itself.
    #[test]
    fn crops_of_the_padded_pictures_are_the_augmented_batch() {
        let data = synthetic::generate(3, 20, 4);
        let idx = [3, 7, 0, 19, 7];
        let expected = batch(&data.train, &idx, Some(&mut rng(9, 2)));
        let padded = padded(&data.train);
        let mut draws = rng(9, 2);
        let plane = PADDED * PADDED;
        let mut got = Vec::new();
        for &i in &idx {
            let a = Augment::draw(&mut draws);
            for c in 0..3 {
                for y in 0..SIDE {
                    for x in 0..SIDE {
                        let xx = if a.flip { SIDE - 1 - x } else { x };
                        got.push(
                            padded[i * 3 * plane + c * plane + (a.top + y) * PADDED + a.left + xx],
                        );
                    }
                }
            }
        }
        assert_eq!(got, expected);
        assert_eq!(batch(&data.train, &[4], None), {
            let a = Augment::NONE;
            (0..3)
                .flat_map(|c| (0..SIDE).flat_map(move |y| (0..SIDE).map(move |x| (c, y, x))))
                .map(|(c, y, x)| {
                    padded[4 * 3 * plane + c * plane + (a.top + y) * PADDED + a.left + x]
                })
                .collect::<Vec<_>>()
        });
    }

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
