//! The libtorch side of nasflow's NAS stages: the NB101 network in tch ([`network`]), the
//! `pretrain` trainer ([`train`]) and the `extract` feature extraction ([`extract`]).
//!
//! The kinds' declarations (params, docs) live in `nasflow-stages`, which the engine links; this
//! crate holds their computations (`run` functions, joined to the kinds by the root package's
//! registration list) and is linked only by `nasflow-worker`. Keeping libtorch out of
//! the engine by a crate boundary is what makes it reliable: within one crate, code generation
//! may put tch-calling code and engine-visible statics in one object file, and the linker then
//! pulls in libtorch (~300 ms to load) for a no-op run. `tests/cli.rs` checks the engine binary.
pub mod arch2vec;
pub mod device;
pub mod extract;
pub mod image_cache;
pub mod init;
pub mod io_model;
pub mod network;
pub mod network201;
pub mod noise;
pub mod optim;
pub mod pass;
pub mod preprocess;
pub mod proxies;
pub mod reinforce;
pub mod shim;
pub mod train;
pub mod train_vae;
pub mod zero_cost;
