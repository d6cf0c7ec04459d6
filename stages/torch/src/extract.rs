//! `extract`'s computation (tch): for one trained network, in eval mode, the global-average-pool
//! features (the classifier's input; 512 at NB101's sizes) on
//!
//! - the *seen* images: pretrain's held-out training images, with their one frozen augmentation
//!   (as info-NAS materialised its validation loader once), in split order;
//! - the *unseen* images: `unseen` test images drawn with a seeded generator (paper: 2,000), test
//!   transform (normalisation only);
//!
//! and the classifier's weight and bias. `features.safetensors` holds (f32 unless noted):
//!
//! | name | shape | |
//! |---|---|---|
//! | `seen_features` | held_out x C | |
//! | `seen_labels` | held_out (i64) | class of each seen image |
//! | `seen_indices` | held_out (i64) | index in the training images |
//! | `unseen_features` | unseen x C | |
//! | `unseen_labels` | unseen (i64) | |
//! | `unseen_indices` | unseen (i64) | index in the test images, in draw order |
//! | `classifier_weight` | classes x C | |
//! | `classifier_bias` | classes | |
use tch::nn::{self};
use tch::Tensor;

use crate::device::{torch_device, torch_err};
use crate::network::{AnyNetwork, Init};
use crate::shim::{self, Bf16Autocast};
use crate::train::{labels, layout};
use nasflow_stages::files::read_json;
use nasflow_stages::images;
use nasflow_stages::pretrain::{item_arch, ExtractParams, NetworkInfo, Precision};
use nasflow_stages::{StageContext, StageError};

pub const UNSEEN_STREAM: u64 = 4;

/// The network's features of `pixels` (already on its device), in batches of 250, on the CPU.
fn features(net: &AnyNetwork, pixels: &Tensor, p: &ExtractParams) -> Tensor {
    let _guard = tch::no_grad_guard();
    let _bf16 = (p.precision == Precision::Bf16).then(|| Bf16Autocast::enter(pixels.device()));
    let n = pixels.size()[0];
    let parts: Vec<Tensor> = (0..n)
        .step_by(250)
        .map(|s| {
            let x = pixels.narrow(0, s, (n - s).min(250));
            net.features(&layout(x, p.channels_last), false)
                .to_kind(tch::Kind::Float)
        })
        .collect();
    Tensor::cat(&parts, 0).to_device(tch::Device::Cpu)
}

fn index_tensor(idx: &[usize]) -> Tensor {
    Tensor::from_slice(&idx.iter().map(|&i| i as i64).collect::<Vec<_>>())
}

pub fn run(ctx: &StageContext<ExtractParams>) -> Result<(), StageError> {
    let (hash, _) = item_arch(ctx)?;
    let dir = ctx.input("pretrain")?;
    let info: NetworkInfo = read_json(&dir.join("network.json"))?;
    if info.hash != hash {
        return Err(StageError::Failed(format!(
            "pretrain's network {} is not this item's {hash}",
            info.hash
        )));
    }
    tch::set_num_threads(ctx.threads.max(1) as i32);
    let device = torch_device(ctx.device);
    // The images, on the device once per worker: the held-out ones as pretrain froze them, and
    // every test picture (normalised only).
    let on_device =
        crate::image_cache::on_device(&ctx.params.images, info.held_out, ctx.seed, device)?;
    let p = &on_device.prepared;
    if p.data.name != info.images {
        return Err(StageError::Config(format!(
            "stage `{}` reads images {} but pretrain trained on {}: set the same `images` in both stages",
            ctx.stage, p.data.name, info.images
        )));
    }
    let mut vs = nn::VarStore::new(device);
    let net = AnyNetwork::new(&vs.root(), &info.arch()?, &info.skeleton(), Init::Zeros);
    vs.load(dir.join("weights.safetensors"))
        .map_err(torch_err)?;
    if ctx.params.channels_last {
        shim::vars_to_channels_last(&vs);
    }

    let unseen = ctx.params.unseen.min(p.data.test.len());
    let unseen_idx = rand::seq::index::sample(
        &mut images::rng(ctx.seed, UNSEEN_STREAM),
        p.data.test.len(),
        unseen,
    )
    .into_vec();
    let unseen_pixels = on_device
        .test
        .index_select(0, &index_tensor(&unseen_idx).to_device(device));

    let cpu = tch::Device::Cpu;
    let tensors = vec![
        ("seen_features", features(&net, &on_device.held, ctx.params)),
        ("seen_labels", labels(&p.data.train, &p.held_idx, cpu)),
        ("seen_indices", index_tensor(&p.held_idx)),
        (
            "unseen_features",
            features(&net, &unseen_pixels, ctx.params),
        ),
        ("unseen_labels", labels(&p.data.test, &unseen_idx, cpu)),
        ("unseen_indices", index_tensor(&unseen_idx)),
        (
            "classifier_weight",
            net.classifier().ws.detach().to_device(cpu),
        ),
        (
            "classifier_bias",
            net.classifier()
                .bs
                .as_ref()
                .expect("bias")
                .detach()
                .to_device(cpu),
        ),
    ];
    Tensor::write_safetensors(&tensors, ctx.out.join("features.safetensors")).map_err(torch_err)
}
