//! The `train-vae` stage: info-NAS's semi-supervised training of arch2vec's graph VAE with the
//! input-output head (`variant = "io"`), or of the plain VAE on the same batch stream
//! (`variant = "arch2vec"`, the paper's reference model). The computation is in
//! `nasflow_torch::train_vae`; this module declares the kind.
//!
//! Inputs: `sample` (the unlabeled cells) and `preprocess` (the labeled datasets). Outputs:
//! `checkpoint-epoch-E.safetensors` at the configured epochs and at the end, `metrics.json`
//! (per epoch: losses, reconstruction accuracy of ops and adjacency on the unlabeled validation
//! cells, validity and uniqueness of cells decoded from the prior, labeled L1 on each labeled
//! set next to its mean baseline, seconds), and the latent features of every cell (`latent.safetensors`:
//! `features`, cells x 16, the mean over the 7 nodes of the encoder mean, rows in the order of
//! `latent-cells.nb101`, sorted by hash).
use crate::api::{KindSpec, ParamSpec, ParamType};

pub static TRAIN_VAE: KindSpec = KindSpec {
    name: "train-vae",
    version: 1,
    doc: "Train arch2vec's graph VAE, extended with info-NAS's input-output head (variant = \"io\") or plain (variant = \"arch2vec\"), semi-supervised",
    params: &[
        ParamSpec { name: "variant", ty: ParamType::Str, default: Some("\"io\""), doc: "\"io\" (info-NAS) or \"arch2vec\" (the reference VAE on the same batch stream)" },
        ParamSpec { name: "epochs", ty: ParamType::Int, default: Some("30"), doc: "training epochs (paper: 30)" },
        ParamSpec { name: "checkpoints", ty: ParamType::List, default: Some("[10, 30]"), doc: "epochs after which to save a checkpoint (the last epoch always is)" },
        ParamSpec { name: "batch_size", ty: ParamType::Int, default: Some("32"), doc: "batch size of labeled and unlabeled batches" },
        ParamSpec { name: "lr", ty: ParamType::Float, default: Some("0.001"), doc: "Adam learning rate (each optimizer)" },
        ParamSpec { name: "grad_clip", ty: ParamType::Float, default: Some("5.0"), doc: "gradient-norm clipping" },
        ParamSpec { name: "k", ty: ParamType::Int, default: Some("300"), doc: "labeled batches per run of the interleaving" },
        ParamSpec { name: "coef_k", ty: ParamType::Float, default: Some("0.33"), doc: "scales the unlabeled run length of the interleaving" },
        ParamSpec { name: "image_channels", ty: ParamType::Int, default: Some("128"), doc: "first width of the head's image branch (paper: 128)" },
        ParamSpec { name: "images", ty: ParamType::PathOr(&["synthetic"]), default: Some("\"synthetic\""), doc: "the image set pretrain and extract used" },
        ParamSpec { name: "prior_samples", ty: ParamType::Int, default: Some("10000"), doc: "cells decoded from the prior per epoch for validity and uniqueness" },
        ParamSpec { name: "unlabeled_limit", ty: ParamType::Int, default: Some("0"), doc: "train on the first N unlabeled train cells only (0: all)" },
    ],
    reads_seed: true,
    uses_device: true,
    item_level: false,
};
