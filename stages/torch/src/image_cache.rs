//! The image sets a worker keeps between jobs. A persistent worker (`nasflow-worker serve`)
//! computes many items of the same stage one after another, all reading the same images: they
//! are loaded (and split) once, and put on the device once, not once per item. One set is kept
//! for the host and one for a device, the latest asked for; a different set replaces it.
//!
//! On the device are the training pictures normalised and zero-padded (N x 3 x 40 x 40), from
//! which batches are cropped and flipped there ([`crop`]) by the same seeded draws the host
//! batches used ([`images::Augment`]): the values are the same bits as `images::batch`'s, and no
//! picture crosses from the host per batch.
use std::sync::{Arc, Mutex};

use tch::{Kind, Tensor};

use crate::train::{prepare, Prepared};
use nasflow_stages::images::{self, ImageSource, Images, PADDED, SIDE};
use nasflow_stages::StageError;

/// An image set on a device.
pub struct OnDevice {
    pub prepared: Arc<Prepared>,
    /// The training pictures, normalised and zero-padded: N x 3 x 40 x 40.
    pub padded: Tensor,
    /// Their labels (N, int64).
    pub train_labels: Tensor,
    /// The held-out pictures, frozen as [`Prepared::held_pixels`]: H x 3 x 32 x 32, and labels.
    pub held: Tensor,
    pub held_labels: Tensor,
    /// Every test picture, normalised: T x 3 x 32 x 32, and labels.
    pub test: Tensor,
    pub test_labels: Tensor,
}

impl OnDevice {
    /// Handles to the same device memory.
    fn handles(&self) -> OnDevice {
        OnDevice {
            prepared: self.prepared.clone(),
            padded: self.padded.shallow_clone(),
            train_labels: self.train_labels.shallow_clone(),
            held: self.held.shallow_clone(),
            held_labels: self.held_labels.shallow_clone(),
            test: self.test.shallow_clone(),
            test_labels: self.test_labels.shallow_clone(),
        }
    }
}

type Kept<T> = Mutex<Option<(String, T)>>;

static HOST: Kept<Arc<Prepared>> = Mutex::new(None);
static DEVICE: Kept<OnDevice> = Mutex::new(None);

fn host_key(source: &ImageSource, held_out: usize, seed: u64) -> String {
    format!("{}|{held_out}|{seed}", source.as_str())
}

/// The image set and its held-out split ([`prepare`]), loaded once per process.
pub fn prepared(
    source: &ImageSource,
    held_out: usize,
    seed: u64,
) -> Result<Arc<Prepared>, StageError> {
    let key = host_key(source, held_out, seed);
    let mut kept = HOST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((k, p)) = kept.as_ref() {
        if *k == key {
            return Ok(p.clone());
        }
    }
    *kept = None; // the old set is freed before the new one is loaded
    let p = Arc::new(prepare(source, held_out, seed)?);
    *kept = Some((key, p.clone()));
    Ok(p)
}

/// The image set on `device`, uploaded once per process.
pub fn on_device(
    source: &ImageSource,
    held_out: usize,
    seed: u64,
    device: tch::Device,
) -> Result<OnDevice, StageError> {
    let key = format!("{}|{device:?}", host_key(source, held_out, seed));
    let mut kept = DEVICE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((k, d)) = kept.as_ref() {
        if *k == key {
            return Ok(d.handles());
        }
    }
    *kept = None;
    let prepared = prepared(source, held_out, seed)?;
    let d = upload(prepared, device);
    let handles = d.handles();
    *kept = Some((key, d));
    Ok(handles)
}

fn upload(p: Arc<Prepared>, device: tch::Device) -> OnDevice {
    let n = p.data.train.len() as i64;
    let side = SIDE as i64;
    let padded = Tensor::from_slice(&images::padded(&p.data.train))
        .view([n, 3, PADDED as i64, PADDED as i64])
        .to_device(device);
    let all_test: Vec<usize> = (0..p.data.test.len()).collect();
    let held = Tensor::from_slice(&p.held_pixels)
        .view([p.held_idx.len() as i64, 3, side, side])
        .to_device(device);
    let test = Tensor::from_slice(&images::batch(&p.data.test, &all_test, None))
        .view([all_test.len() as i64, 3, side, side])
        .to_device(device);
    let all_train: Vec<usize> = (0..p.data.train.len()).collect();
    OnDevice {
        train_labels: labels_of(&p.data.train, &all_train, device),
        held_labels: labels_of(&p.data.train, &p.held_idx, device),
        test_labels: labels_of(&p.data.test, &all_test, device),
        padded,
        held,
        test,
        prepared: p,
    }
}

fn labels_of(images: &Images, idx: &[usize], device: tch::Device) -> Tensor {
    let l: Vec<i64> = idx.iter().map(|&i| images.labels[i] as i64).collect();
    Tensor::from_slice(&l).to_device(device)
}

/// One epoch's batches, decided on the host and put on the device at once: the pictures'
/// indices and each one's crop rows and columns (flip included).
pub struct EpochPlan {
    pub idx: Tensor,
    rows: Tensor,
    cols: Tensor,
}

impl EpochPlan {
    /// `augments[k]` is the augmentation of picture `idx[k]`.
    pub fn new(idx: &[usize], augments: &[images::Augment], device: tch::Device) -> EpochPlan {
        let opts = (Kind::Int64, device);
        let m = idx.len() as i64;
        let side = SIDE as i64;
        let ints = |f: &dyn Fn(usize) -> i64| {
            Tensor::from_slice(&(0..idx.len()).map(f).collect::<Vec<i64>>()).to_device(device)
        };
        let index = ints(&|k| idx[k] as i64);
        let top = ints(&|k| augments[k].top as i64);
        let left = ints(&|k| augments[k].left as i64);
        let flip = ints(&|k| augments[k].flip as i64);
        let ramp = Tensor::arange(side, opts).view([1, side]);
        let rows = top.view([m, 1]) + &ramp;
        // Flipped: column x reads column 31 - x of the crop.
        let reversed = ramp.flip([1]);
        let x = flip.view([m, 1]) * &reversed + (flip.view([m, 1]).neg() + 1) * &ramp;
        let cols = left.view([m, 1]) + x;
        EpochPlan {
            idx: index,
            rows,
            cols,
        }
    }

    /// The batch of `len` pictures from position `start`, cropped from `padded`.
    pub fn batch(&self, padded: &Tensor, start: i64, len: i64) -> Tensor {
        crop(
            padded,
            &self.idx.narrow(0, start, len),
            &self.rows.narrow(0, start, len),
            &self.cols.narrow(0, start, len),
        )
    }
}

/// `out[b, c, y, x] = padded[idx[b], c, rows[b, y], cols[b, x]]`: copies only, so the values
/// are exactly those of the padded pictures.
pub fn crop(padded: &Tensor, idx: &Tensor, rows: &Tensor, cols: &Tensor) -> Tensor {
    let b = idx.size()[0];
    let (side, p) = (SIDE as i64, PADDED as i64);
    let x = padded.index_select(0, idx);
    let r = rows.view([b, 1, side, 1]).expand([b, 3, side, p], false);
    let x = x.gather(2, &r, false);
    let c = cols.view([b, 1, 1, side]).expand([b, 3, side, side], false);
    x.gather(3, &c, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nasflow_stages::images::{rng, synthetic, Augment};

    #[test]
    fn batches_cropped_on_the_device_are_the_host_batches_bit_for_bit() {
        let data = synthetic::generate(4, 40, 4);
        let idx = [5, 0, 39, 12, 12, 7];
        let expected = images::batch(&data.train, &idx, Some(&mut rng(3, 2)));
        let mut draws = rng(3, 2);
        let augments: Vec<Augment> = idx.iter().map(|_| Augment::draw(&mut draws)).collect();
        assert!(augments.iter().any(|a| a.flip) && augments.iter().any(|a| !a.flip));
        let padded = Tensor::from_slice(&images::padded(&data.train)).view([
            40,
            3,
            PADDED as i64,
            PADDED as i64,
        ]);
        let plan = EpochPlan::new(&idx, &augments, tch::Device::Cpu);
        let mut got = Vec::<f32>::new();
        for (start, len) in [(0, 4), (4, 2)] {
            let b = plan.batch(&padded, start, len).contiguous().view([-1]);
            got.extend(Vec::<f32>::try_from(&b).unwrap());
        }
        assert_eq!(got.len(), expected.len());
        assert!(got
            .iter()
            .zip(&expected)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn a_process_keeps_one_image_set_and_hands_out_the_same_one() {
        let source = ImageSource::new("synthetic");
        let a = prepared(&source, 50, 1).unwrap();
        let b = prepared(&source, 50, 1).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let d = on_device(&source, 50, 1, tch::Device::Cpu).unwrap();
        assert_eq!(d.padded.size()[1..], [3, PADDED as i64, PADDED as i64]);
        assert_eq!(d.held.size()[0], 50);
        let c = prepared(&source, 60, 1).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
