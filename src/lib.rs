//! The one place where stage kinds, their computations and the tools meet.
//!
//! Both binaries build from [`register`]: `nasflow` (the engine) keeps the declarations and the
//! tools and drops the computations, so it never links libtorch; `nasflow-worker` keeps the
//! computations and runs them. The compiler checks that each kind is paired with a computation
//! of its own params type; the tests below check that the names are unique and that both
//! binaries see the same kinds.
use nasflow_contract::Registrar;
use nasflow_stages as stages;
use nasflow_torch as torch;

/// Registers every stage kind with its computation, and every tool.
pub fn register(r: &mut impl Registrar) {
    r.kind::<stages::fetch::Fetch, _>(stages::fetch::run);
    r.kind::<stages::sample::Sample, _>(stages::sample::run);
    r.kind::<stages::pretrain::Pretrain, _>(torch::train::run);
    r.kind::<stages::pretrain::Extract, _>(torch::extract::run);
    r.kind::<stages::preprocess::Preprocess, _>(torch::preprocess::run);
    r.kind::<stages::train_vae::TrainVae, _>(torch::train_vae::run);
    r.kind::<stages::reinforce::Reinforce, _>(torch::reinforce::run);
    r.kind::<stages::predict::Predict, _>(stages::predict::run);
    r.kind::<stages::zero_cost::ZeroCost, _>(torch::zero_cost::run);
    for tool in stages::tools::tools() {
        r.tool(tool);
    }
}

#[cfg(test)]
mod tests {
    use nasflow_contract::Computations;
    use nasflow_engine::registry::Registry;

    #[test]
    fn every_declared_kind_has_a_computation_and_names_are_unique() {
        let mut reg = Registry::default();
        super::register(&mut reg);
        let mut comp = Computations::default();
        super::register(&mut comp);
        let mut declared: Vec<&str> = reg.declarations().map(|d| d.info().name).collect();
        let n = declared.len();
        declared.sort();
        declared.dedup();
        assert_eq!(declared.len(), n, "kind names are unique");
        assert_eq!(
            declared,
            comp.names(),
            "declarations and computations agree"
        );
        for kind in [
            "sample",
            "pretrain",
            "extract",
            "preprocess",
            "train-vae",
            "reinforce",
            "predict",
        ] {
            assert!(declared.contains(&kind), "{kind}");
        }
        assert!(reg.tools().iter().any(|t| t.name() == "nb101"));
        for d in reg.declarations() {
            for p in &d.schema().params {
                assert!(!p.doc.is_empty(), "{}.{} has a doc", d.info().name, p.name);
            }
        }
    }
}
