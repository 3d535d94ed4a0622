//! "Did you mean" suggestions for mistyped keys and options.
//! Uses Jaro-Winkler plus prefix matching, so `widht` finds `width` and `lr` finds `lr_decay`.

/// Best close match among `candidates`, if any is close enough to be worth saying.
pub fn did_you_mean<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let mut score = strsim::jaro_winkler(word, c);
        if strsim::damerau_levenshtein(word, c) <= 1 {
            score = score.max(0.95);
        }
        if best.is_none_or(|(b, _)| score > b) {
            best = Some((score, c));
        }
    }
    best.filter(|(s, _)| *s >= 0.8).map(|(_, c)| c.to_string())
}
