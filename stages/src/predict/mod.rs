//! The `predict` stage: performance prediction from train-vae's latent features (info-NAS's
//! `run_gaussian_process.py` protocol), with the same regressors on the plain encoding and on
//! BANANAS's path encoding as baselines, scored as NASLib's predictor study scores (RMSE,
//! Pearson r, Kendall tau, Spearman rho, precision@10 and @20).
//!
//! For each training size and seed: draw the fit set at random among the table's cells outside
//! the labeled training networks (`fit_outside_train`), fit each regressor on each feature set
//! (the 16-d latent features; the flattened 7x7 adjacency + 7x5 one-hot ops), predict every
//! other cell (the labeled training networks included: info-NAS's
//! `run_gaussian_process.py` keeps them out of the fit set only), and score RMSE and Pearson r
//! on those whose true accuracy is above `threshold` (predictions are not filtered). The fit set of a (size, seed) is the same for
//! every regressor and feature set. Each fit is scored four ways, as info-NAS's result sets:
//! on the cells outside the fit set (`fit_N`) and on all cells (`fit_N_all`), each against the
//! target and, when the target is the validation accuracy and the table has test accuracies,
//! against the test accuracy (`fit_N_test`, `fit_N_all_test`).
//!
//! Inputs: `train-vae`, `pretrain` (labeled networks; with `table = "pretrained"` the figures).
//! Outputs: `results.jsonl` (one row per feature set, regressor, size, seed and result set),
//! `summary.json` (per regressor, feature set and result set: mean and 95% half-width over seeds
//! of each metric), `rmse.png`, `pearson.png`, `kendall.png` (box plots of the `fit_N` set; SVGs
//! and chart data beside them).
pub mod charts;
pub mod headline;
pub mod naslib;
pub mod regress;
pub mod zero_cost;

use rand::RngExt;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

use nasflow_contract::layout::SUMMARY;
use nasflow_contract::{Kind, KindInfo, StageContext, StageError};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::images;
use crate::report::mean_ci95;
use crate::search::table::{latent_choices, Features, LatentChoice, Searchable, TableSource};
use crate::space::{Arch, SearchSpace};
use crate::stats::{kendall_tau, precision_at, spearman};
use regress::{pearson, rmse, Regressor};

/// The `predict` kind.
pub struct Predict;

impl Kind for Predict {
    type Params = PredictParams;
    const INFO: KindInfo = KindInfo {
        name: "predict",
        version: 7,
        doc: "Predict network accuracy from the latent features (RF, GP, SVR, gradient boosting) against the plain and path encodings; RMSE, Pearson, Kendall tau, Spearman, precision@k",
        reads_seed: true,
        uses_device: false,
        item_level: false,
        key_metrics: &[],
    };
}

/// The params of `predict`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PredictParams {
    /// "pretrained" (the networks pretrained in this pipeline), "nb101-10k" (built in) or an NB101 table file, as reinforce's `table`
    pub table: TableSource,
    /// the dependency (a train-vae stage) whose latent features to use
    #[schemars(extend("x-nasflow-dep" = true))]
    pub vae: String,
    /// whose latent features to predict from: train-vae's main model or those it trained alongside; with several (["io", "reference"]), each is a feature set of its own (`rf.io.fit_250`, ...) and the summary tests them against each other, paired by fit set
    pub features: Vec<Features>,
    /// the train-vae checkpoint (epoch) whose features to use; 0: the last
    pub checkpoint: usize,
    /// the accuracy to predict
    pub target: Target,
    /// whose predictor protocol (`train_sizes` and `threshold` default to its)
    pub protocol: ProtocolKind,
    /// a reference's known quirk to reproduce ("info-nas" needs `target = "valid"`; its "Test features" sets need a table with test accuracies)
    pub quirks: PredictQuirks,
    /// fit-set sizes; unset: the protocol's (info-nas: 250, 600, 1000; naslib: 5, 8, 14, 24, 42, 71, 121, 205, 347, 589, 1000)
    pub train_sizes: Option<Vec<usize>>,
    /// random fit sets per size; seeds are the pipeline seed + 0..N
    #[schemars(range(min = 1))]
    pub seeds: usize,
    /// score only cells whose true accuracy is above this; unset: the protocol's (info-nas: 0.8; naslib: no filter)
    pub threshold: Option<f64>,
    /// the regressors, each with scikit-learn's defaults
    pub regressors: Vec<RegressorName>,
    /// the feature sets to fit each regressor on ("zero-cost" and "latent+zero-cost" read the `zero_cost` dep; every set is then scored on the cells that have proxies)
    pub feature_sets: Vec<FeatureSet>,
    /// the dependency (a zero-cost stage) whose proxies the zero-cost feature sets read; "" for none
    #[schemars(extend("x-nasflow-dep" = true))]
    pub zero_cost: String,
    /// paths kept by the path encoding (BANANAS/naszilla: 40, the paths of up to 3 ops; at most 364)
    #[schemars(range(min = 1, max = 364))]
    pub path_cutoff: usize,
    /// trees of the random forest
    #[schemars(range(min = 1))]
    pub rf_trees: usize,
    /// RBF length scale of the GP (fixed, as scikit-learn's default kernel)
    #[schemars(extend("exclusiveMinimum" = 0.0))]
    pub gp_length_scale: f64,
    /// added to the GP kernel matrix's diagonal
    #[schemars(range(min = 0.0))]
    pub gp_alpha: f64,
    /// info-nas protocol: draw fit sets only among cells that are not labeled training networks (they are still scored); NASLib's protocol draws from every cell
    pub fit_outside_train: bool,
    /// fit on the encodings of `feature_sets` too (false: on the latent and zero-cost features only)
    pub baseline: bool,
}

impl PredictParams {
    /// The latent features to predict from, each with its label ("" for a single one).
    pub fn latents(&self) -> Result<Vec<(String, LatentChoice)>, StageError> {
        latent_choices(&self.vae, &self.features, self.checkpoint)
    }
}

impl Default for PredictParams {
    fn default() -> Self {
        PredictParams {
            table: TableSource::default(),
            vae: "train-vae".into(),
            features: vec![Features::Main],
            checkpoint: 0,
            target: Target::Valid,
            protocol: ProtocolKind::InfoNas,
            quirks: PredictQuirks::None,
            train_sizes: None,
            seeds: 10,
            threshold: None,
            regressors: vec![RegressorName::Rf, RegressorName::Gp],
            feature_sets: vec![FeatureSet::Latent, FeatureSet::Encoding, FeatureSet::Path],
            zero_cost: String::new(),
            path_cutoff: crate::nb101::paths::DEFAULT_CUTOFF,
            rf_trees: 100,
            gp_length_scale: 1.0,
            gp_alpha: 1e-10,
            fit_outside_train: true,
            baseline: true,
        }
    }
}

/// Whose predictor protocol (the `protocol` param).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ProtocolKind {
    /// info-NAS's run_gaussian_process.py: fit sets outside the labeled networks, scored on the other cells above 0.8, signed Pearson
    #[default]
    #[serde(rename = "info-nas")]
    InfoNas,
    /// NASLib's predictor evaluation (White et al. 2021): 11 fit sizes 5..1000, a 200-cell test set, no filter, NASLib's metric definitions
    #[serde(rename = "naslib")]
    Naslib,
}

impl ProtocolKind {
    pub fn name(self) -> &'static str {
        match self {
            ProtocolKind::InfoNas => "info-nas",
            ProtocolKind::Naslib => "naslib",
        }
    }
    /// The fit sizes when `train_sizes` is unset.
    pub fn sizes(self) -> Vec<usize> {
        match self {
            ProtocolKind::InfoNas => vec![250, 600, 1000],
            ProtocolKind::Naslib => naslib::sizes(),
        }
    }
    /// The accuracy filter when `threshold` is unset.
    pub fn threshold(self) -> Option<f64> {
        match self {
            ProtocolKind::InfoNas => Some(0.8),
            ProtocolKind::Naslib => None,
        }
    }
}

/// Which known quirk of a reference `predict` reproduces (the `quirks` param).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PredictQuirks {
    /// none
    #[default]
    #[serde(rename = "none")]
    None,
    /// info-NAS's pairing bug in run_gaussian_process.py (a93ba91, lines 150-166): its "Test features" sets fitted on test accuracy, "All features - test accuracy" on validation accuracy
    #[serde(rename = "info-nas")]
    InfoNas,
}

/// Which accuracy `predict` predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// the validation accuracy
    Valid,
    /// the test accuracy (where the table has it)
    Test,
}

/// A regressor `predict` can fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RegressorName {
    /// random forest (smartcore; scikit-learn's defaults)
    Rf,
    /// Gaussian process (scikit-learn's default GaussianProcessRegressor)
    Gp,
    /// epsilon-SVR (smartcore; scikit-learn's SVR() defaults: RBF, gamma "scale", C 1, epsilon 0.1)
    Svr,
    /// gradient-boosted trees (scikit-learn's GradientBoostingRegressor() defaults: 100 stages, rate 0.1, depth 3)
    Gb,
}

/// A feature set `predict` fits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FeatureSet {
    /// train-vae's latent features (of `features` and `checkpoint`)
    Latent,
    /// the plain encoding: flattened 7x7 adjacency + 7x5 one-hot ops (84 values)
    Encoding,
    /// BANANAS's path encoding, truncated to `path_cutoff` paths
    Path,
    /// the five zero-cost proxies of the `zero_cost` dep (each standardised over the cells)
    #[serde(rename = "zero-cost")]
    ZeroCost,
    /// each latent feature set with the five proxies appended (`io+zero-cost`, ...)
    #[serde(rename = "latent+zero-cost")]
    LatentZeroCost,
}

impl FeatureSet {
    pub fn name(self) -> &'static str {
        match self {
            FeatureSet::Latent => "latent",
            FeatureSet::Encoding => "encoding",
            FeatureSet::Path => "path",
            FeatureSet::ZeroCost => "zero-cost",
            FeatureSet::LatentZeroCost => "latent+zero-cost",
        }
    }

    /// Whether it reads the zero-cost proxies.
    pub fn uses_zero_cost(self) -> bool {
        matches!(self, FeatureSet::ZeroCost | FeatureSet::LatentZeroCost)
    }
}

/// One scored fit.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Scored {
    pub features: String,
    pub regressor: String,
    pub train_size: usize,
    pub seed: u64,
    /// The result set: "" (cells outside the fit set, against the target), "_all" (all cells),
    /// "_test", "_all_test" (the same against the test accuracy).
    pub set: String,
    pub rmse: f64,
    pub pearson: f64,
    pub kendall_tau: f64,
    pub spearman: f64,
    pub precision_10: f64,
    pub precision_20: f64,
    /// Cells scored (above the threshold).
    pub scored: usize,
}

/// The protocol's settings.
#[derive(Clone, Debug)]
pub struct Protocol {
    pub kind: ProtocolKind,
    pub quirks: PredictQuirks,
    pub sizes: Vec<usize>,
    pub seeds: Vec<u64>,
    pub threshold: Option<f64>,
    pub regressors: Vec<Regressor>,
    pub use_test: bool,
    pub fit_outside_train: bool,
    pub feature_sets: Vec<FeatureSet>,
    pub path_cutoff: usize,
}

const STREAM: u64 = 0x9ed1_c700;

/// What [`evaluate`] produced: the scored fits, the sizes that left nothing to predict, and
/// notes on result sets that could not be built.
pub struct Evaluated {
    pub scored: Vec<Scored>,
    pub skipped: Vec<usize>,
    pub notes: Vec<String>,
}

/// Runs the protocol; sizes that leave nothing to predict are returned as skipped.
pub fn evaluate(
    table: &Searchable,
    p: &Protocol,
    threads: usize,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Evaluated, StageError> {
    evaluate_each(&[(String::new(), table)], p, threads, progress)
}

/// With a zero-cost feature set: reads the `zero_cost` dep's proxies and restricts every table
/// to the cells that have them; returns (cells kept, cells before).
fn zero_cost_sets(
    ctx: &StageContext<PredictParams>,
    tables: &mut [(String, Searchable)],
) -> Result<Option<(usize, usize)>, StageError> {
    let p = ctx.params;
    if !p.feature_sets.iter().any(|f| f.uses_zero_cost()) {
        return Ok(None);
    }
    if p.zero_cost.is_empty() {
        return Err(StageError::Config(format!(
            "stage `{}`: feature_sets names a zero-cost set but `zero_cost` names no dep: add a zero-cost stage to deps and set zero_cost = \"NAME\"",
            ctx.stage
        )));
    }
    let dir = ctx.input(&p.zero_cost)?;
    let proxies = zero_cost::read(&dir.join("proxies.jsonl"))?;
    let before = tables.first().map_or(0, |(_, t)| t.len());
    let kept = zero_cost::attach(tables, &proxies);
    if kept < 2 {
        return Err(StageError::Failed(format!(
            "stage `{}`: only {kept} of the table's {before} cells have zero-cost proxies: score the table's cells in the zero-cost stage",
            ctx.stage
        )));
    }
    Ok(Some((kept, before)))
}

/// [`evaluate`] with several latent feature sets of the same cells (labelled: "" is `latent`),
/// each fit on the same fit sets; the first table gives the cells and their accuracies.
pub fn evaluate_each(
    latents: &[(String, &Searchable)],
    p: &Protocol,
    threads: usize,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Evaluated, StageError> {
    let table = latents[0].1;
    if p.quirks == PredictQuirks::InfoNas && p.use_test {
        return Err(StageError::Config(
            "quirks = \"info-nas\" reproduces a pairing of validation and test accuracy: set target = \"valid\"".into(),
        ));
    }
    let naslib = p.kind == ProtocolKind::Naslib;
    let candidates: Vec<usize> = (0..table.len())
        .filter(|&i| {
            let outside = naslib || !(p.fit_outside_train && table.labeled_train[i]);
            outside && target(table, p, i).is_some()
        })
        .collect();
    let mut sets: Vec<(String, Vec<Vec<f64>>)> = Vec::new();
    let mut notes = Vec::new();
    for &f in &p.feature_sets {
        if f == FeatureSet::Path && table.space() != SearchSpace::Nb101 {
            notes.push(format!(
                "the path encoding is NB101's (arch2vec's paths over its 7-vertex cells); on {} it is not built, so `path` is not scored",
                table.space().name()
            ));
            continue;
        }
        if f == FeatureSet::Latent {
            for (label, t) in latents {
                let name = if label.is_empty() { f.name() } else { label };
                sets.push((name.to_string(), feature_rows(t, f, p.path_cutoff)));
            }
        } else if f == FeatureSet::LatentZeroCost {
            for (label, t) in latents {
                let name = match label.is_empty() {
                    true => f.name().to_string(),
                    false => format!("{label}+zero-cost"),
                };
                sets.push((name, feature_rows(t, f, p.path_cutoff)));
            }
        } else {
            sets.push((f.name().to_string(), feature_rows(table, f, p.path_cutoff)));
        }
    }
    let room = if naslib {
        candidates.len().saturating_sub(naslib::TEST_SIZE) + 1
    } else {
        candidates.len()
    };
    let (sizes, skipped): (Vec<usize>, Vec<usize>) =
        p.sizes.iter().partition(|&&s| s >= 2 && s < room);
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let mut tasks = Vec::new();
    // smartcore's SVR needs at least as many fit cells as features. NASLib's protocol fixes its
    // sizes (and drops its smallest for SVR itself): such fits are left out and said so; under
    // info-NAS's the sizes are the user's, and the fit's error names them.
    let too_few = |rows: &[Vec<f64>], r: Regressor, size: usize| {
        naslib && r == Regressor::Svr && size < rows.first().map_or(0, Vec::len)
    };
    for (name, rows) in &sets {
        let small: Vec<usize> = (sizes.iter().copied())
            .filter(|&n| too_few(rows, Regressor::Svr, n))
            .collect();
        if p.regressors.contains(&Regressor::Svr) && !small.is_empty() {
            let dim = rows.first().map_or(0, Vec::len);
            notes.push(format!(
                "svr on {name}: fit sizes {small:?} have fewer cells than the {dim} features, which smartcore's SVR needs at least; they are left out (NASLib drops its smallest size for SVR)"
            ));
        }
    }
    for &size in &sizes {
        for &seed in &p.seeds {
            for (name, rows) in &sets {
                for r in &p.regressors {
                    if too_few(rows, *r, size) {
                        continue;
                    }
                    tasks.push(Fit {
                        size,
                        seed,
                        features: name,
                        rows,
                        regressor: *r,
                        largest,
                    });
                }
            }
        }
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| StageError::Failed(format!("thread pool: {e}")))?;
    let done = std::sync::atomic::AtomicU64::new(0);
    let total = tasks.len() as u64;
    let scored = pool.install(|| {
        tasks
            .par_iter()
            .map(|f| {
                let s = if naslib {
                    f.score_naslib(table, p, &candidates)
                } else {
                    f.score(table, p, &candidates)
                };
                progress(
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
                    total,
                );
                s
            })
            .collect::<Result<Vec<_>, StageError>>()
    })?;
    if p.quirks == PredictQuirks::InfoNas && !table.test.iter().any(Option::is_some) {
        notes.push("quirks = \"info-nas\": the table has no test accuracies, so info-NAS's \"Test features\" sets (fitted on test accuracy: `fit_N`, `fit_N_test`) cannot be built; only the \"All features\" sets are scored".to_string());
    }
    Ok(Evaluated {
        scored: scored.into_iter().flatten().collect(),
        skipped,
        notes,
    })
}

/// A feature set's rows, one per cell.
fn feature_rows(table: &Searchable, f: FeatureSet, cutoff: usize) -> Vec<Vec<f64>> {
    match f {
        FeatureSet::Latent => (0..table.len())
            .map(|i| table.feature(i).iter().map(|&v| v as f64).collect())
            .collect(),
        FeatureSet::Encoding => table.cells.iter().map(Arch::plain_encoding).collect(),
        FeatureSet::ZeroCost => table.zero_cost.clone(),
        FeatureSet::LatentZeroCost => (0..table.len())
            .map(|i| {
                let latent = table.feature(i).iter().map(|&v| v as f64);
                latent.chain(table.zero_cost[i].iter().copied()).collect()
            })
            .collect(),
        // NB101's cells only (evaluate_each skips `path` for other spaces).
        FeatureSet::Path => (table.cells.iter())
            .filter_map(|c| c.nb101())
            .map(|c| crate::nb101::paths::path_encoding(c, cutoff))
            .collect(),
    }
}

/// The accuracy a cell is scored on.
fn target(table: &Searchable, p: &Protocol, i: usize) -> Option<f64> {
    if p.use_test {
        table.test[i]
    } else {
        Some(table.valid[i])
    }
}

/// One fit: a regressor on a feature set, fit on the (size, seed) fit set.
struct Fit<'a> {
    size: usize,
    seed: u64,
    features: &'a str,
    rows: &'a [Vec<f64>],
    regressor: Regressor,
    /// The largest fit size (NASLib's protocol draws that many and fits on prefixes).
    largest: usize,
}

impl Fit<'_> {
    /// The fit set of (size, seed): a partial Fisher-Yates shuffle of the candidates.
    fn fit_set(&self, candidates: &[usize]) -> Vec<usize> {
        let mut rng = images::rng(self.seed, STREAM ^ self.size as u64);
        let mut order = candidates.to_vec();
        for k in 0..self.size {
            let j = rng.random_range(k..order.len());
            order.swap(k, j);
        }
        order.truncate(self.size);
        order
    }

    /// The regressor with this fit's seed.
    fn seeded(&self) -> Regressor {
        match self.regressor {
            Regressor::Forest { trees, .. } => Regressor::Forest {
                trees,
                seed: self.seed,
            },
            Regressor::Boost { stages, .. } => Regressor::Boost {
                stages,
                seed: self.seed,
            },
            r => r,
        }
    }

    /// Fits on cells `fit` with accuracies `y` and predicts cells `at`.
    fn fit_predict(&self, fit: &[usize], y: &[f64], at: &[usize]) -> Result<Vec<f64>, StageError> {
        let pick =
            |ix: &[usize]| -> Vec<Vec<f64>> { ix.iter().map(|&i| self.rows[i].clone()).collect() };
        self.seeded()
            .fit_predict(&pick(fit), y, &pick(at))
            .map_err(|e| {
                StageError::Failed(format!(
                    "{} features, {} cells, seed {}: {e}",
                    self.features, self.size, self.seed
                ))
            })
    }

    /// NASLib's protocol: fit on the first `size` cells of the seed's fit draw, predict and
    /// score its 200 test cells.
    fn score_naslib(
        &self,
        table: &Searchable,
        p: &Protocol,
        cells: &[usize],
    ) -> Result<Vec<Scored>, StageError> {
        let (test, draw) = naslib::draw(cells, self.largest, self.seed, STREAM);
        let fit = &draw[..self.size];
        let y: Vec<f64> = fit
            .iter()
            .map(|&i| target(table, p, i).unwrap_or(0.0))
            .collect();
        let pred = self.fit_predict(fit, &y, &test)?;
        // An explicit threshold under NASLib's protocol: scored on the test cells above it.
        let bar = p.threshold.unwrap_or(f64::NEG_INFINITY);
        let keep: Vec<usize> = (0..test.len())
            .filter(|&k| target(table, p, test[k]).is_some_and(|t| t > bar))
            .collect();
        let cells: Vec<usize> = keep.iter().map(|&k| test[k]).collect();
        let pred: Vec<f64> = keep.iter().map(|&k| pred[k]).collect();
        let of = (self.features, self.seeded().name(), self.size, self.seed);
        let s = naslib::score(table, p, &cells, &pred, of);
        Ok(vec![s])
    }

    /// info-NAS's protocol: fits, predicts every cell, and scores each result set.
    fn score(
        &self,
        table: &Searchable,
        p: &Protocol,
        candidates: &[usize],
    ) -> Result<Vec<Scored>, StageError> {
        let (size, seed) = (self.size, self.seed);
        let fit = self.fit_set(candidates);
        let mut in_fit = vec![false; table.len()];
        for &i in &fit {
            in_fit[i] = true;
        }
        let everyone: Vec<usize> = (0..table.len()).collect();
        let y: Vec<f64> = fit
            .iter()
            .map(|&i| target(table, p, i).unwrap_or(0.0))
            .collect();
        let pred = self.fit_predict(&fit, &y, &everyone)?;
        // info-NAS's pairing bug: its "Test features" sets (here `""` and `_test`) come from a
        // fit on test accuracy, its "All features" sets from a fit on validation accuracy.
        let on_test: Option<Vec<f64>> = if p.quirks == PredictQuirks::InfoNas {
            let y: Option<Vec<f64>> = fit.iter().map(|&i| table.test[i]).collect();
            match y {
                Some(y) => Some(self.fit_predict(&fit, &y, &everyone)?),
                None => None,
            }
        } else {
            None
        };
        let quirk = p.quirks == PredictQuirks::InfoNas;
        // Result sets: (name, whether fit cells count, the truth of a cell, the predictions).
        type Truth<'t> = Box<dyn Fn(usize) -> Option<f64> + 't>;
        let mut sets: Vec<(&str, bool, Truth, Option<&Vec<f64>>)> = vec![
            (
                "",
                false,
                Box::new(|i| target(table, p, i)),
                if quirk { on_test.as_ref() } else { Some(&pred) },
            ),
            ("_all", true, Box::new(|i| target(table, p, i)), Some(&pred)),
        ];
        if !p.use_test && table.test.iter().any(Option::is_some) {
            let test_fit = if quirk { on_test.as_ref() } else { Some(&pred) };
            sets.push(("_test", false, Box::new(|i| table.test[i]), test_fit));
            sets.push(("_all_test", true, Box::new(|i| table.test[i]), Some(&pred)));
        }
        let name = self.seeded().name();
        let out = sets
            .into_iter()
            .filter_map(|(set, with_fit, truth_of, pred)| {
                let pred = pred?;
                // Scored: the cells of the set whose truth is above the threshold (labeled training
                // networks included: info-NAS leaves them out of the fit set only).
                let bar = p.threshold.unwrap_or(f64::NEG_INFINITY);
                let eval: Vec<usize> = (0..table.len())
                    .filter(|&i| (with_fit || !in_fit[i]) && truth_of(i).is_some_and(|t| t > bar))
                    .collect();
                let truth: Vec<f64> = eval.iter().map(|&i| truth_of(i).unwrap_or(0.0)).collect();
                let pr: Vec<f64> = eval.iter().map(|&i| pred[i]).collect();
                let k = |k: usize| {
                    if eval.len() > k {
                        precision_at(&truth, &pr, k)
                    } else {
                        f64::NAN
                    }
                };
                Some(Scored {
                    features: self.features.to_string(),
                    regressor: name.to_string(),
                    train_size: size,
                    seed,
                    set: set.to_string(),
                    rmse: if eval.is_empty() {
                        f64::NAN
                    } else {
                        rmse(&truth, &pr)
                    },
                    pearson: pearson(&truth, &pr),
                    kendall_tau: kendall_tau(&truth, &pr),
                    spearman: spearman(&truth, &pr),
                    precision_10: k(10),
                    precision_20: k(20),
                    scored: eval.len(),
                })
            });
        Ok(out.collect())
    }
}

/// A metric of a scored fit.
type Metric = (&'static str, fn(&Scored) -> f64);

/// The metrics of a scored fit, by name.
const METRICS: [Metric; 6] = [
    ("rmse", |s| s.rmse),
    ("pearson", |s| s.pearson),
    ("kendall_tau", |s| s.kendall_tau),
    ("spearman", |s| s.spearman),
    ("precision_10", |s| s.precision_10),
    ("precision_20", |s| s.precision_20),
];

/// Per regressor, feature set and fit size (`rf.latent.fit_250`): mean and 95% half-width of
/// RMSE and Pearson r over seeds, and the seeds and scored cells they rest on.
pub fn summarize(scored: &[Scored]) -> Value {
    let mut groups: BTreeMap<(&str, &str, usize, &str), Vec<&Scored>> = BTreeMap::new();
    for s in scored {
        groups
            .entry((&s.features, &s.regressor, s.train_size, &s.set))
            .or_default()
            .push(s);
    }
    let mut out = Map::new();
    let mut warnings = Vec::new();
    for ((f, r, size, set), v) in groups {
        let mut m = Map::new();
        let mut negative = Vec::new();
        for (name, get) in METRICS {
            let x: Vec<f64> = v.iter().map(|s| get(s)).filter(|x| x.is_finite()).collect();
            let (mean, half) = mean_ci95(&x);
            if matches!(name, "pearson" | "kendall_tau" | "spearman") && mean < 0.0 {
                negative.push(format!("{name} {mean:.3}"));
            }
            m.insert(name.into(), json!(mean));
            m.insert(format!("{name}_ci95"), json!(half));
        }
        if !negative.is_empty() {
            warnings.push(json!(format!(
                "{r}.{f}.fit_{size}{set}: negative correlation ({}): the predictions rank the cells backwards",
                negative.join(", ")
            )));
        }
        let scored = v.iter().map(|s| s.scored).min().unwrap_or(0);
        if scored < 5 {
            warnings.push(json!(format!(
                "{r}.{f}.fit_{size}{set}: the metrics rest on {scored} scored cells (fewer than 5)"
            )));
        }
        m.insert("seeds".into(), json!(v.len()));
        m.insert("scored_cells".into(), json!(scored));
        let entry = out
            .entry(r.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("an object")
            .entry(f.to_string())
            .or_insert_with(|| json!({}));
        entry[format!("fit_{size}{set}")] = Value::Object(m);
    }
    let mut units = json!({"seeds": "fit sets", "scored_cells": "cells (fewest over seeds)",
        "threshold": "accuracy"});
    for (name, what) in [
        ("rmse", "accuracy"),
        ("pearson", "Pearson r"),
        ("kendall_tau", "Kendall tau-b"),
        ("spearman", "Spearman rho"),
        (
            "precision_10",
            "fraction of the true top 10 in the predicted top 10",
        ),
        (
            "precision_20",
            "fraction of the true top 20 in the predicted top 20",
        ),
    ] {
        units[name] = json!(format!("{what} (mean over seeds)"));
        units[format!("{name}_ci95")] = json!(format!("{what} (95% half-width)"));
    }
    out.insert("units".into(), units);
    if !warnings.is_empty() {
        out.insert("warnings".into(), Value::Array(warnings));
    }
    Value::Object(out)
}

pub fn run(ctx: &StageContext<PredictParams>) -> Result<(), StageError> {
    let p = ctx.params;
    let mut tables = Searchable::load_each(ctx, &p.table, p.latents()?)?;
    let with_proxies = zero_cost_sets(ctx, &mut tables)?;
    let latents: Vec<(String, &Searchable)> = tables.iter().map(|(l, t)| (l.clone(), t)).collect();
    let table = &tables[0].1;
    let use_test = p.target == Target::Test;
    let regressors = p
        .regressors
        .iter()
        .map(|r| match r {
            RegressorName::Rf => Regressor::Forest {
                trees: p.rf_trees,
                seed: 0,
            },
            RegressorName::Gp => Regressor::Gp {
                length_scale: p.gp_length_scale,
                alpha: p.gp_alpha,
            },
            RegressorName::Svr => Regressor::Svr,
            RegressorName::Gb => Regressor::Boost {
                stages: 100,
                seed: 0,
            },
        })
        .collect();
    let protocol = Protocol {
        kind: p.protocol,
        quirks: p.quirks,
        sizes: (p.train_sizes.clone()).unwrap_or_else(|| p.protocol.sizes()),
        seeds: (0..p.seeds as u64).map(|k| ctx.seed + k).collect(),
        threshold: p.threshold.or(p.protocol.threshold()),
        regressors,
        use_test,
        fit_outside_train: p.fit_outside_train,
        feature_sets: p
            .feature_sets
            .iter()
            .copied()
            .filter(|&f| p.baseline || f == FeatureSet::Latent || f.uses_zero_cost())
            .collect(),
        path_cutoff: p.path_cutoff,
    };
    let progress = |d, t| ctx.progress_with(d, t, "fits", String::new());
    let Evaluated {
        scored,
        skipped,
        mut notes,
    } = evaluate_each(&latents, &protocol, ctx.threads, &progress)?;
    if let Some((kept, of)) = with_proxies {
        notes.push(format!(
            "zero-cost feature sets: every set is fit and scored on the {kept} of {of} table cells with all five proxies (the `{}` dep)",
            p.zero_cost
        ));
    }
    crate::files::write_jsonl(&ctx.out.join("results.jsonl"), &scored)?;
    let mut summary = summarize(&scored);
    let latent: Vec<&str> = tables.iter().map(|(_, t)| t.latent.as_str()).collect();
    let latent = if latent.len() == 1 {
        json!(latent[0])
    } else {
        json!(latent)
    };
    summary["table"] = json!({"source": table.source, "latent": latent, "cells": table.len(),
        "labeled_train": table.labeled_train.iter().filter(|&&t| t).count(),
        "without_feature": table.without_feature, "without_figures": table.without_figures,
        "covers_space": table.len() == crate::search::report::NB101_CELLS});
    summary["target"] = json!(if use_test { "test" } else { "valid" });
    summary["threshold"] = json!(protocol.threshold);
    summary["skipped_sizes"] = json!(skipped);
    summary["settings"] = settings_of(&protocol);
    if !notes.is_empty() {
        let w = summary["warnings"].as_array().cloned().unwrap_or_default();
        summary["warnings"] = json!(w
            .into_iter()
            .chain(notes.into_iter().map(Value::from))
            .collect::<Vec<_>>());
    }
    let names: Vec<String> = (latents.iter())
        .map(|(l, _)| {
            if l.is_empty() {
                FeatureSet::Latent.name().to_string()
            } else {
                l.clone()
            }
        })
        .collect();
    let sets: Vec<String> = (protocol.feature_sets.iter())
        .flat_map(|&f| match f {
            FeatureSet::Latent => names.clone(),
            FeatureSet::LatentZeroCost if names.len() > 1 => {
                names.iter().map(|n| format!("{n}+zero-cost")).collect()
            }
            f => vec![f.name().to_string()],
        })
        .collect();
    if let Some(r) = protocol.regressors.first() {
        let sizes: Vec<usize> = (protocol.sizes.iter().copied())
            .filter(|s| !skipped.contains(s))
            .collect();
        headline::add(&mut summary, &scored, r.name(), &sizes, &names, &sets);
    }
    crate::files::write_json(&ctx.out.join(SUMMARY), &summary)?;
    let sizes: Vec<usize> = protocol
        .sizes
        .iter()
        .copied()
        .filter(|s| !skipped.contains(s))
        .collect();
    match protocol.kind {
        ProtocolKind::InfoNas => charts::write_charts(ctx.out, &scored, &sizes),
        ProtocolKind::Naslib => charts::write_size_charts(ctx.out, &scored),
    }
}

/// How the fits were made, for the summary.
fn settings_of(p: &Protocol) -> Value {
    let described = match p.kind {
        ProtocolKind::InfoNas => "info-NAS's run_gaussian_process.py: fit sets drawn outside the labeled networks, each fit scored on the other cells (and on all cells) whose true accuracy is above the threshold; signed Pearson r; precision@k over the scored cells",
        ProtocolKind::Naslib => "NASLib's predictor evaluation (White et al. 2021): per seed a 200-cell test set and one fit draw, each size fitting on its first N cells; every test cell scored; |Pearson r| and precision@k as NASLib defines them, over the test set",
    };
    json!({
        "protocol": p.kind.name(),
        "described": described,
        "quirks": match p.quirks { PredictQuirks::None => "none", PredictQuirks::InfoNas => "info-nas" },
        "train_sizes": p.sizes,
        "regressor_defaults": "scikit-learn's (RandomForestRegressor, GaussianProcessRegressor, SVR, GradientBoostingRegressor)",
    })
}

#[cfg(test)]
mod tests {
    use super::charts::{write_charts, write_size_charts};
    use super::*;
    use crate::report::Chart;

    /// Cells whose accuracy is a smooth function of their first feature.
    fn table(n: usize) -> Searchable {
        let mut t = crate::search::tests::table(n, 16);
        for i in 0..n {
            let x = t.feature(i)[0] as f64;
            t.valid[i] = 0.8 + 0.1 * (x / (n as f64 * 0.16)).sin().abs();
        }
        t.labeled_train[0] = true;
        t
    }

    fn protocol() -> Protocol {
        Protocol {
            kind: ProtocolKind::InfoNas,
            quirks: PredictQuirks::None,
            sizes: vec![20, 60, 5000],
            seeds: vec![1, 2],
            threshold: Some(0.0),
            regressors: vec![
                Regressor::Forest { trees: 10, seed: 0 },
                Regressor::Gp {
                    length_scale: 1.0,
                    alpha: 1e-6,
                },
            ],
            use_test: false,
            fit_outside_train: true,
            feature_sets: vec![FeatureSet::Latent],
            path_cutoff: 40,
        }
    }

    #[test]
    fn protocol_is_deterministic_and_skips_impossible_sizes() {
        let t = table(120);
        let e = evaluate(&t, &protocol(), 2, &|_, _| {}).unwrap();
        let (a, skipped) = (e.scored, e.skipped);
        assert_eq!(skipped, vec![5000]);
        // 2 sizes x 2 seeds x 2 regressors, each scored on 4 result sets (the table has test
        // accuracies).
        assert_eq!(a.len(), 2 * 2 * 2 * 4);
        let b = evaluate(&t, &protocol(), 1, &|_, _| {}).unwrap().scored;
        assert_eq!(a, b, "same results with another thread count");
        for s in &a {
            // All 120 cells but the fit set: the labeled train network is scored, not fitted;
            // the `_all` sets score the fit set too.
            let expect = if s.set.contains("all") {
                120
            } else {
                120 - s.train_size
            };
            assert_eq!(s.scored, expect, "{s:?}");
            assert!(s.kendall_tau.is_finite() && s.spearman.is_finite() && s.precision_10 >= 0.0);
            assert!(s.rmse.is_finite(), "{s:?}");
            if s.regressor == "rf" && !s.set.contains("test") {
                assert!(s.rmse < 0.05, "{s:?}");
                assert!(s.kendall_tau > 0.5, "{s:?}");
            }
        }
        let s = summarize(&a);
        assert_eq!(s["rf"]["latent"]["fit_60"]["seeds"], 2);
        assert!(s["gp"]["latent"]["fit_20"]["rmse"].as_f64().unwrap() > 0.0);
        assert!(
            s["gp"]["latent"]["fit_20"]["scored_cells"]
                .as_u64()
                .unwrap()
                > 0
        );
        let dir = tempfile::tempdir().unwrap();
        write_charts(dir.path(), &a, &[20, 60]).unwrap();
        for f in [
            "rmse.png",
            "rmse.svg",
            "charts/rmse.json",
            "pearson.png",
            "pearson.svg",
        ] {
            assert!(dir.path().join(f).exists(), "{f}");
        }
        let chart = Chart::read(&dir.path().join("charts/rmse.json")).unwrap();
        assert_eq!(chart.kind, nasflow_charts::Kind::Box);
        assert_eq!(chart.x_ticks.len(), 2);
        let seeds: usize = chart.series.iter().map(|s| s.boxes[0].1.len()).sum();
        assert_eq!(
            seeds,
            a.iter()
                .filter(|s| s.train_size == 20 && s.set.is_empty())
                .count()
        );
        assert!(s["rf"]["latent"]["fit_20_all_test"]["kendall_tau"].is_number());
    }

    #[test]
    fn threshold_filters_the_scored_cells() {
        let t = table(120);
        let mut p = protocol();
        p.threshold = Some(0.85);
        p.sizes = vec![20];
        let a = evaluate(&t, &p, 1, &|_, _| {}).unwrap().scored;
        let above = (0..120).filter(|&i| t.valid[i] > 0.85).count();
        let rest = a.iter().filter(|s| s.set.is_empty());
        assert!(rest.clone().count() > 0);
        assert!(rest.into_iter().all(|s| s.scored < above && s.scored > 0));
    }

    #[test]
    fn naslib_protocol_fits_its_eleven_sizes_and_scores_200_test_cells() {
        let t = table(600);
        let mut p = protocol();
        p.kind = ProtocolKind::Naslib;
        p.sizes = ProtocolKind::Naslib.sizes();
        p.threshold = ProtocolKind::Naslib.threshold();
        p.regressors = vec![Regressor::Forest { trees: 5, seed: 0 }];
        let e = evaluate(&t, &p, 2, &|_, _| {}).unwrap();
        // 600 cells: 200 for the test set leave room for fits of up to 400 cells.
        assert_eq!(e.skipped, vec![589, 1000]);
        let sizes: std::collections::BTreeSet<usize> =
            e.scored.iter().map(|s| s.train_size).collect();
        assert_eq!(
            sizes.into_iter().collect::<Vec<_>>(),
            [5, 8, 14, 24, 42, 71, 121, 205, 347]
        );
        assert_eq!(e.scored.len(), 9 * 2, "one result set per size and seed");
        for s in &e.scored {
            assert_eq!((s.scored, s.set.as_str()), (naslib::TEST_SIZE, ""), "{s:?}");
            assert!(s.pearson >= 0.0, "NASLib's |r|");
        }
        // More fit cells, better fits: RF at 347 cells beats RF at 5 (mean over seeds).
        let mean_tau = |n: usize| {
            let v: Vec<f64> = e
                .scored
                .iter()
                .filter(|s| s.train_size == n)
                .map(|s| s.kendall_tau)
                .collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        assert!(
            mean_tau(347) > mean_tau(5),
            "{} {}",
            mean_tau(347),
            mean_tau(5)
        );
        let dir = tempfile::tempdir().unwrap();
        write_size_charts(dir.path(), &e.scored).unwrap();
        let chart = Chart::read(&dir.path().join("charts/spearman.json")).unwrap();
        assert!(chart.log_x);
        assert_eq!(chart.series[0].line.len(), 9);
    }

    #[test]
    fn naslib_protocol_leaves_out_svr_fits_with_fewer_cells_than_features_and_says_so() {
        let t = table(300);
        let mut p = protocol();
        p.kind = ProtocolKind::Naslib;
        p.sizes = vec![5, 8, 14, 24, 42];
        p.threshold = None;
        p.regressors = vec![Regressor::Svr];
        let e = evaluate(&t, &p, 1, &|_, _| {}).unwrap();
        let sizes: std::collections::BTreeSet<usize> =
            e.scored.iter().map(|s| s.train_size).collect();
        assert_eq!(
            sizes.into_iter().collect::<Vec<_>>(),
            [24, 42],
            "16 latent features"
        );
        assert!(
            e.notes[0].starts_with("svr on latent: fit sizes [5, 8, 14]"),
            "{:?}",
            e.notes
        );
    }

    #[test]
    fn info_nas_quirk_fits_its_test_features_sets_on_test_accuracy() {
        // Test accuracy falls as validation accuracy rises: a fit on test accuracy predicts
        // the validation accuracy backwards.
        let mut t = table(150);
        for i in 0..150 {
            t.test[i] = Some(1.7 - t.valid[i]);
        }
        let mut p = protocol();
        p.sizes = vec![60];
        p.regressors = vec![Regressor::Forest { trees: 10, seed: 0 }];
        let pearson_of = |p: &Protocol, set: &str| -> f64 {
            let e = evaluate(&t, p, 1, &|_, _| {}).unwrap();
            assert!(e.notes.is_empty());
            let v: Vec<f64> = e
                .scored
                .iter()
                .filter(|s| s.set == set)
                .map(|s| s.pearson)
                .collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        assert!(pearson_of(&p, "") > 0.5);
        p.quirks = PredictQuirks::InfoNas;
        assert!(
            pearson_of(&p, "") < -0.5,
            "\"Test features - validation\" fitted on test"
        );
        assert!(
            pearson_of(&p, "_all") > 0.5,
            "\"All features - validation\" fitted on validation"
        );
        assert!(
            pearson_of(&p, "_all_test") < -0.5,
            "\"All features - test\" fitted on validation"
        );
        assert!(
            pearson_of(&p, "_test") > 0.5,
            "\"Test features - test\" fitted on test"
        );
        let e = evaluate(&t, &p, 1, &|_, _| {}).unwrap();
        let warned = summarize(&e.scored)["warnings"].to_string();
        assert!(
            warned.contains("rf.latent.fit_60: negative correlation (pearson -"),
            "a negative correlation is warned of: {warned}"
        );
        assert!(!warned.contains("fit_60_all: negative"), "{warned}");
        // Without test accuracies the "Test features" sets cannot be built, and a note says so.
        t.test = vec![None; 150];
        let e = evaluate(&t, &p, 1, &|_, _| {}).unwrap();
        assert!(
            e.scored.iter().all(|s| s.set == "_all"),
            "only the All-features set"
        );
        assert!(e.notes[0].contains("cannot be built"), "{:?}", e.notes);
        // The quirk pairs validation with test: it needs target = valid.
        p.use_test = true;
        assert!(evaluate(&t, &p, 1, &|_, _| {}).is_err());
    }

    #[test]
    fn plain_encoding_has_84_values() {
        let e = Arch::Nb101(crate::search::tests::tiny_cell()).plain_encoding();
        assert_eq!(e.len(), 84);
        // edges 0->1, 1->2; ops input, conv3x3 (arch2vec index 2), output at row 2 (index 4)
        assert_eq!((e[1], e[7 + 2], e[0]), (1.0, 1.0, 0.0));
        assert_eq!(
            &e[49..49 + 15],
            &[1., 0., 0., 0., 0., 0., 0., 1., 0., 0., 0., 0., 0., 0., 1.]
        );
    }
}
