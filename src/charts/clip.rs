//! A clipped y axis for box charts: a series whose boxes all sit far above (or below) the
//! others' (a regressor with a 0.78 RMSE among ones near 0.05) is left off the scale, named in
//! the title and the legend with its median, so that it no longer flattens the rest.
use crate::{draw::box_stats, Chart, Kind};

/// The series off scale: (series index, its median).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Clip {
    pub off: Vec<(usize, f64)>,
}

impl Clip {
    /// The title's note, when something is off scale.
    pub fn note(&self) -> Option<String> {
        (!self.off.is_empty()).then(|| {
            format!(
                "y axis clipped: {} series off scale, see the legend",
                self.off.len()
            )
        })
    }

    /// The median of series `k`, if it is off scale.
    pub fn median_of(&self, k: usize) -> Option<f64> {
        self.off.iter().find(|o| o.0 == k).map(|o| o.1)
    }

    /// Whether series `k` is off scale.
    pub fn is_off(&self, k: usize) -> bool {
        self.median_of(k).is_some()
    }
}

/// Each series' whisker extent over its boxes and its median of medians.
fn extents(chart: &Chart) -> Vec<Option<(f64, f64, f64)>> {
    (chart.series.iter())
        .map(|s| {
            let stats: Vec<[f64; 5]> = s
                .boxes
                .iter()
                .filter_map(|(_, v)| box_stats(v))
                .map(|b| b.0)
                .collect();
            if stats.is_empty() {
                return None;
            }
            let lo = stats.iter().map(|b| b[0]).fold(f64::INFINITY, f64::min);
            let hi = stats.iter().map(|b| b[4]).fold(f64::NEG_INFINITY, f64::max);
            let mut med: Vec<f64> = stats.iter().map(|b| b[2]).collect();
            med.sort_by(f64::total_cmp);
            Some((lo, hi, med[med.len() / 2]))
        })
        .collect()
}

/// The series of a box chart (linear y) to leave off the scale: those whose median lies more
/// than 10 median absolute deviations from the median of all series' medians (and outside
/// every kept series' whiskers), as long as at least half the series stay.
pub fn off_scale(chart: &Chart) -> Clip {
    let mut clip = Clip::default();
    if chart.kind != Kind::Box || chart.log_y {
        return clip;
    }
    let ext = extents(chart);
    let with: Vec<(usize, (f64, f64, f64))> = (ext.iter().enumerate())
        .filter_map(|(k, e)| Some((k, (*e)?)))
        .collect();
    if with.len() < 3 {
        return clip;
    }
    let median = |mut v: Vec<f64>| -> f64 {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    };
    let center = median(with.iter().map(|(_, e)| e.2).collect());
    let mad = median(with.iter().map(|(_, e)| (e.2 - center).abs()).collect());
    if mad <= 0.0 {
        return clip;
    }
    let far = |e: &(f64, f64, f64)| (e.2 - center).abs() > 10.0 * mad;
    let kept: Vec<&(usize, (f64, f64, f64))> = with.iter().filter(|(_, e)| !far(e)).collect();
    if kept.len() * 2 < with.len() {
        return clip;
    }
    let lo = kept.iter().map(|(_, e)| e.0).fold(f64::INFINITY, f64::min);
    let hi = kept
        .iter()
        .map(|(_, e)| e.1)
        .fold(f64::NEG_INFINITY, f64::max);
    for (k, e) in &with {
        if far(e) && (e.0 > hi || e.1 < lo) {
            clip.off.push((*k, e.2));
        }
    }
    clip
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Series;

    fn boxes(name: &str, center: f64) -> Series {
        Series {
            name: name.into(),
            boxes: vec![(0.0, (0..10).map(|i| center + i as f64 * 0.001).collect())],
            ..Series::default()
        }
    }

    #[test]
    fn a_far_regressor_goes_off_scale_and_close_ones_stay() {
        let mut chart = Chart {
            kind: Kind::Box,
            series: vec![
                boxes("rf", 0.03),
                boxes("gp", 0.78),
                boxes("gb", 0.035),
                boxes("svr", 0.04),
            ],
            ..Chart::default()
        };
        let c = off_scale(&chart);
        assert_eq!(c.off.len(), 1);
        assert!(c.is_off(1));
        assert!((c.median_of(1).unwrap() - 0.7845).abs() < 1e-9);
        assert!(c.note().unwrap().contains("clipped"));
        chart.series[1] = boxes("gp", 0.05);
        assert_eq!(
            off_scale(&chart),
            Clip::default(),
            "nothing far: nothing clipped"
        );
        chart.kind = Kind::Line;
        assert_eq!(off_scale(&chart), Clip::default());
    }
}
