//! pipeline.toml, with the NAS kinds' typed params, variants and sweeps: any text is an error
//! or a pipeline, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nasflow_engine::registry::Registry;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let reg = Registry::from(nasflow_fuzz_kinds);
    let file = std::path::Path::new("pipeline.toml");
    if let Ok(variants) = nasflow_engine::variants::parse(file, text) {
        for v in variants.iter().take(4) {
            let _ = nasflow_engine::config::parse(file, text, &reg, &v.overrides);
        }
    }
    if let Ok(p) = nasflow_engine::config::parse(file, text, &reg, &[]) {
        let _ = nasflow_engine::dag::Dag::build(&p);
    }
});

/// The NAS kinds' declarations (their computations are not needed to load a pipeline).
fn nasflow_fuzz_kinds(r: &mut Registry) {
    use nasflow_contract::Registrar;
    use nasflow_stages as s;
    fn none<P>(_: &nasflow_contract::StageContext<P>) -> Result<(), nasflow_contract::StageError> {
        Ok(())
    }
    r.kind::<s::sample::Sample, _>(none);
    r.kind::<s::pretrain::Pretrain, _>(none);
    r.kind::<s::pretrain::Extract, _>(none);
    r.kind::<s::preprocess::Preprocess, _>(none);
    r.kind::<s::train_vae::TrainVae, _>(none);
    r.kind::<s::reinforce::Reinforce, _>(none);
    r.kind::<s::predict::Predict, _>(none);
}
