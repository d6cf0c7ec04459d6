//! Axis ticks and their labels: round steps (1, 2, 5 x 10^k) on linear axes, decades (or 1-2-5
//! within a decade) on log axes, and labels that print each tick's value exactly once
//! ("1.8", not "1.7999999999999998"; never "2e-1" twice).

/// A round step near `span / target`: 1, 2 or 5 times a power of ten.
pub fn nice_step(span: f64, target: usize) -> f64 {
    let raw = (span / target.max(1) as f64).abs().max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let m = if f < 1.5 {
        1.0
    } else if f < 3.5 {
        2.0
    } else if f < 7.5 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// Ticks of a linear axis over `[lo, hi]`: multiples of a round step, about `target` of them.
pub fn linear(lo: f64, hi: f64, target: usize) -> (Vec<f64>, f64) {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return (vec![lo], 1.0);
    }
    let step = nice_step(hi - lo, target);
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    // Each tick is k * step, computed from the integer k so that errors do not add up.
    let ticks = (first..=last)
        .map(|k| clean(k as f64 * step, step))
        .collect();
    (ticks, step)
}

/// `v` rounded to the decimals of `step` (so that 3 * 0.1 is 0.3).
fn clean(v: f64, step: f64) -> f64 {
    let d = decimals(step) as i32;
    let f = 10f64.powi(d);
    (v * f).round() / f
}

/// The decimals a label needs to tell ticks `step` apart.
fn decimals(step: f64) -> usize {
    if step >= 1.0 {
        0
    } else {
        (-(step.log10() + 1e-9).floor()) as usize
    }
}

/// The label of a linear-axis tick.
pub fn linear_label(v: f64, step: f64) -> String {
    let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
    if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 1e-4) {
        return sci(v);
    }
    format!("{v:.*}", decimals(step))
}

/// Ticks of a log axis over `[lo, hi]` given as log10 values; returned as log10 values.
/// Whole decades when the axis spans at least two, else 1, 2, 5 of each decade, else (a short
/// axis inside one decade) round linear steps.
pub fn log(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let (d0, d1) = (lo.floor() as i32, hi.ceil() as i32);
    let inside = |e: f64| e >= lo - 1e-9 && e <= hi + 1e-9;
    if hi - lo >= 2.0 {
        let every = ((d1 - d0) as usize).div_ceil(8).max(1);
        return (d0..=d1)
            .filter(|d| ((d - d0) as usize).is_multiple_of(every))
            .map(f64::from)
            .filter(|&e| inside(e))
            .collect();
    }
    let ticks: Vec<f64> = (d0..=d1)
        .flat_map(|d| [1.0, 2.0, 5.0].map(|m| (m * 10f64.powi(d)).log10()))
        .filter(|&e| inside(e))
        .collect();
    if ticks.len() >= 3 {
        return ticks;
    }
    let (vals, _) = linear(10f64.powf(lo), 10f64.powf(hi), 4);
    vals.into_iter()
        .filter(|&v| v > 0.0)
        .map(f64::log10)
        .collect()
}

/// The label of a log-axis tick given as a log10 value: the value with at most 3 significant
/// digits.
pub fn log_label(e: f64) -> String {
    let v = 10f64.powf(e);
    if !(1e-3..1e5).contains(&v) {
        return sci(v);
    }
    let s = format!("{:.*}", (2 - v.log10().floor() as i32).max(0) as usize, v);
    trim(&s)
}

/// `1e-4`, `2.5e6`.
fn sci(v: f64) -> String {
    let s = format!("{v:.2e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    format!("{}e{e}", trim(m))
}

fn trim(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(lo: f64, hi: f64) -> Vec<String> {
        let (t, step) = linear(lo, hi, 6);
        t.iter().map(|&v| linear_label(v, step)).collect()
    }

    #[test]
    fn linear_labels_are_round() {
        assert_eq!(
            labels(0.0, 1.8),
            ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0", "1.2", "1.4", "1.6", "1.8"]
        );
        assert_eq!(labels(1.0, 8.0), ["1", "2", "3", "4", "5", "6", "7", "8"]);
        assert_eq!(
            labels(0.0125, 0.0175),
            ["0.013", "0.014", "0.015", "0.016", "0.017"]
        );
        for (lo, hi) in [
            (0.0, 1.8),
            (-0.37, 0.91),
            (0.0125, 0.0175),
            (3.0, 3000.0),
            (0.1, 0.7),
        ] {
            let l = labels(lo, hi);
            assert!(l.len() >= 3, "{lo}..{hi}: {l:?}");
            assert!(l.iter().all(|s| s.len() <= 7), "{lo}..{hi}: {l:?}");
            let mut d = l.clone();
            d.dedup();
            assert_eq!(d, l, "each label once");
        }
        assert_eq!(linear_label(1.7999999999999998, 0.2), "1.8");
    }

    #[test]
    fn log_labels_are_never_repeated() {
        // The defect: ticks between 0.08 and 0.25 were labelled 2e-1, 2e-1, 1e-1, 1e-1.
        for (lo, hi) in [
            (0.08, 0.25),
            (1e-4, 0.3),
            (0.5, 0.9),
            (3.0, 1.5e6),
            (0.011, 0.019),
        ] {
            let t = log(f64::log10(lo), f64::log10(hi));
            let l: Vec<String> = t.iter().map(|&e| log_label(e)).collect();
            assert!(l.len() >= 2, "{lo}..{hi}: {l:?}");
            let mut u = l.clone();
            u.sort();
            u.dedup();
            assert_eq!(u.len(), l.len(), "{lo}..{hi}: {l:?}");
        }
        let t = log(f64::log10(0.08), f64::log10(0.25));
        let l: Vec<String> = t.iter().map(|&e| log_label(e)).collect();
        assert_eq!(l, ["0.1", "0.15", "0.2", "0.25"]);
        let t = log(f64::log10(1e-4), f64::log10(0.3));
        let l: Vec<String> = t.iter().map(|&e| log_label(e)).collect();
        assert_eq!(l, ["1e-4", "0.001", "0.01", "0.1"]);
        assert_eq!(log_label(6.0), "1e6");
    }
}
