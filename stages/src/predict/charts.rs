//! predict's charts: box plots per fit size (info-NAS's protocol) and mean lines against the
//! fit size on a log axis (NASLib's).
use nasflow_contract::StageError;

use super::Scored;
use crate::report::{mean_ci95, write_chart, Chart, Series};

/// The (feature set, regressor) pairs scored, sorted: one series each.
fn series_keys(scored: &[Scored]) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = scored
        .iter()
        .map(|s| (s.features.clone(), s.regressor.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Box plots `rmse`, `pearson` (the paper's Figs 9-10) and `kendall`: per fit size, the seeds'
/// values on the cells outside the fit set, one box per regressor and feature set.
pub fn write_charts(
    out: &std::path::Path,
    scored: &[Scored],
    sizes: &[usize],
) -> Result<(), StageError> {
    let keys = series_keys(scored);
    let ticks: Vec<(f64, String)> = sizes
        .iter()
        .enumerate()
        .map(|(i, s)| (i as f64, s.to_string()))
        .collect();
    type Get = fn(&Scored) -> f64;
    for (name, what, get) in [
        ("rmse", "RMSE", (|s: &Scored| s.rmse) as Get),
        ("pearson", "Pearson r", |s: &Scored| s.pearson),
        ("kendall", "Kendall tau", |s: &Scored| s.kendall_tau),
    ] {
        let series = keys
            .iter()
            .map(|(f, r)| Series {
                name: format!("{r} on {f}"),
                boxes: (sizes.iter().enumerate())
                    .map(|(i, size)| {
                        let of = |s: &&Scored| {
                            &s.features == f
                                && &s.regressor == r
                                && s.train_size == *size
                                && s.set.is_empty()
                        };
                        (i as f64, scored.iter().filter(of).map(get).collect())
                    })
                    .collect(),
                ..Series::default()
            })
            .collect();
        let chart = Chart {
            title: format!("predict: {what} over seeds per fit size"),
            kind: nasflow_charts::Kind::Box,
            x_label: "fit size (cells)".into(),
            y_label: what.into(),
            x_ticks: ticks.clone(),
            series,
            ..Chart::default()
        };
        write_chart(out, name, &chart)?;
    }
    Ok(())
}

/// NASLib's charts: Spearman rho, Kendall tau and |Pearson r| against the fit size (log x),
/// mean over seeds with a 95% band, one line per regressor and feature set.
pub fn write_size_charts(out: &std::path::Path, scored: &[Scored]) -> Result<(), StageError> {
    let keys = series_keys(scored);
    let mut sizes: Vec<usize> = scored.iter().map(|s| s.train_size).collect();
    sizes.sort();
    sizes.dedup();
    type Get = fn(&Scored) -> f64;
    for (name, what, get) in [
        ("spearman", "Spearman rho", (|s: &Scored| s.spearman) as Get),
        ("kendall", "Kendall tau", |s: &Scored| s.kendall_tau),
        ("pearson", "|Pearson r|", |s: &Scored| s.pearson),
    ] {
        let series = keys
            .iter()
            .map(|(f, r)| {
                let at = |size: usize| -> (f64, f64) {
                    let v: Vec<f64> = (scored.iter())
                        .filter(|s| &s.features == f && &s.regressor == r && s.train_size == size)
                        .map(get)
                        .filter(|x| x.is_finite())
                        .collect();
                    mean_ci95(&v)
                };
                let points: Vec<(f64, f64, f64)> = (sizes.iter())
                    .map(|&n| (n as f64, at(n)))
                    .filter(|(_, (m, _))| m.is_finite())
                    .map(|(x, (m, h))| (x, m, h))
                    .collect();
                Series {
                    name: format!("{r} on {f}"),
                    line: points.iter().map(|&(x, m, _)| (x, m)).collect(),
                    band: points.iter().map(|&(x, m, h)| (x, m - h, m + h)).collect(),
                    ..Series::default()
                }
            })
            .collect();
        let chart = Chart {
            title: format!("predict (NASLib's protocol): {what} on the 200 test cells"),
            x_label: "fit size (cells)".into(),
            y_label: format!("{what} (mean over seeds, 95% band)"),
            log_x: true,
            series,
            ..Chart::default()
        };
        write_chart(out, name, &chart)?;
    }
    Ok(())
}
