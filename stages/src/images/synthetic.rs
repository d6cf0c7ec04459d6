//! The embedded image set: 10 classes of 32 x 32 RGB pictures generated from a seed, so that the
//! default pipeline needs no download.
//!
//! A class is a pair (colour, grating orientation) plus a spatial frequency: colour alone leaves
//! two candidate classes and orientation alone two others, so a network must combine colour with
//! oriented spatial structure (which 3x3 convolutions see and 1x1 convolutions and pooling alone
//! do not) to tell them apart. The class's grating fills a soft window at a random place over a
//! background grating of random orientation, frequency and colour; each picture also draws its
//! own phase, frequency, contrast and colour jitter and pixel noise, so the task is learnable but
//! not trivial.
use std::f32::consts::PI;

use rand::RngExt;

use super::{rng, Dataset, Images, CLASSES, SIDE};

/// The generator's version: bump it (and the `pretrain` and `extract` kinds' versions) whenever
/// the pictures change.
pub const VERSION: u32 = 1;

/// Training and test pictures of the embedded set.
pub const TRAIN: usize = 10_000;
pub const TEST: usize = 2_000;

const COLOURS: [[f32; 3]; 5] = [
    [0.9, 0.3, 0.2],
    [0.2, 0.8, 0.3],
    [0.25, 0.35, 0.9],
    [0.85, 0.8, 0.2],
    [0.7, 0.25, 0.8],
];

fn picture(class: usize, rng: &mut impl RngExt, out: &mut Vec<u8>) {
    let colour = COLOURS[class / 2];
    let orientation = (class % 5) as f32 * PI / 5.0 + rng.random_range(-0.25..0.25);
    let freq = (2.0 + (class % 3) as f32) * rng.random_range(0.85..1.15) * 2.0 * PI / SIDE as f32;
    let phase = rng.random_range(0.0..2.0 * PI);
    let contrast = rng.random_range(0.4..1.0);
    let jitter: [f32; 3] = std::array::from_fn(|_| rng.random_range(-0.25..0.25));
    // The class's grating fills a soft window at a random place; a background grating of a random
    // orientation and colour covers the rest.
    let (cx, cy) = (
        rng.random_range(6.0..26.0f32),
        rng.random_range(6.0..26.0f32),
    );
    let radius = rng.random_range(6.0..12.0f32);
    let b_orient = rng.random_range(0.0..PI);
    let b_freq = rng.random_range(2.0..5.0) * 2.0 * PI / SIDE as f32;
    let b_phase = rng.random_range(0.0..2.0 * PI);
    let b_amp = rng.random_range(0.2..0.7);
    let b_colour = COLOURS[rng.random_range(0..COLOURS.len())];
    let (s, c) = orientation.sin_cos();
    let (bs, bc) = b_orient.sin_cos();
    let mut fg = [0f32; SIDE * SIDE];
    let mut bg = [0f32; SIDE * SIDE];
    let mut win = [0f32; SIDE * SIDE];
    for y in 0..SIDE {
        for x in 0..SIDE {
            let (xf, yf) = (x as f32, y as f32);
            let k = y * SIDE + x;
            fg[k] = contrast * (freq * (c * xf + s * yf) + phase).sin();
            bg[k] = b_amp * (b_freq * (bc * xf + bs * yf) + b_phase).sin();
            let d2 = (xf - cx).powi(2) + (yf - cy).powi(2);
            win[k] = (-d2 / (2.0 * radius * radius)).exp();
        }
    }
    for ch in 0..3 {
        let base = (colour[ch] + jitter[ch]).clamp(0.0, 1.0);
        for k in 0..SIDE * SIDE {
            let noise = rng.random_range(-0.25..0.25);
            let f = 0.5 + 0.45 * base * fg[k] + (base - 0.5) * 0.3;
            let b = 0.5 + 0.45 * b_colour[ch] * bg[k] + (b_colour[ch] - 0.5) * 0.3;
            let v = win[k] * f + (1.0 - win[k]) * b + noise;
            out.push((v.clamp(0.0, 1.0) * 255.0).round() as u8);
        }
    }
}

fn images(n: usize, seed: u64, stream: u64) -> Images {
    let mut r = rng(seed, stream);
    let mut out = Images {
        pixels: Vec::with_capacity(n * super::PIXELS),
        labels: Vec::with_capacity(n),
    };
    for i in 0..n {
        let class = i % CLASSES; // balanced classes, interleaved
        out.labels.push(class as u8);
        picture(class, &mut r, &mut out.pixels);
    }
    out
}

/// The embedded set for a seed: `train` and `test` pictures from separate streams.
pub fn generate(seed: u64, train: usize, test: usize) -> Dataset {
    Dataset {
        train: images(train, seed, 100),
        test: images(test, seed, 101),
        name: format!("synthetic-v{VERSION}(seed={seed}, train={train}, test={test})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_balanced_and_varied() {
        let a = generate(1, 200, 50);
        assert_eq!(a.train.pixels, generate(1, 200, 50).train.pixels);
        assert_ne!(a.train.pixels, generate(2, 200, 50).train.pixels);
        assert_ne!(
            a.train.image(0),
            a.train.image(10),
            "same class, different pictures"
        );
        for c in 0..10u8 {
            assert_eq!(a.train.labels.iter().filter(|&&l| l == c).count(), 20);
        }
        let mean =
            a.train.pixels.iter().map(|&p| p as f64).sum::<f64>() / a.train.pixels.len() as f64;
        assert!((60.0..200.0).contains(&mean), "{mean}");
    }
}
