//! "did you mean ...?" for names and values.

/// "did you mean `x`?" for the closest known name, when one is close enough to be a typo.
pub fn did_you_mean(word: &str, known: &[&str]) -> Option<String> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(word, k), *k))
        .filter(|(d, k)| *d <= (k.len().max(word.len()) / 3).max(1))
        .min()
        .map(|(_, k)| format!("did you mean `{k}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_close_names_are_suggested() {
        assert_eq!(
            did_you_mean("epoch", &["epochs", "seed"]),
            Some("did you mean `epochs`?".into())
        );
        assert_eq!(
            did_you_mean("arch2vc", &["io", "arch2vec"]),
            Some("did you mean `arch2vec`?".into())
        );
        assert_eq!(did_you_mean("zzz", &["epochs", "seed"]), None);
    }
}
