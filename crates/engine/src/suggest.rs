//! "Did you mean" suggestions for unknown names: modules, fields, helpers, operators,
//! connections.

/// Edit distance (insertions, deletions, substitutions) between two strings.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate the user most likely meant: same name in another case, else the
/// closest within a third of the length (at least 1, at most 3 edits), else one that
/// starts or is contained in what was written (`len` → `length`, `uppercase` → `upper`).
pub fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let input_lower = input.to_lowercase();
    let limit = (input.chars().count() / 3).clamp(1, 3);
    let mut closest: Option<(usize, &str)> = None;
    let mut contained: Option<&str> = None;
    for c in candidates {
        let c_lower = c.to_lowercase();
        if c_lower == input_lower {
            return Some(c);
        }
        let d = distance(&input_lower, &c_lower);
        if d <= limit && closest.is_none_or(|(best, _)| d < best) {
            closest = Some((d, c));
        }
        let related = (input_lower.len() >= 3 && c_lower.starts_with(&input_lower))
            || (c_lower.len() >= 4 && input_lower.contains(&c_lower));
        if related && contained.is_none_or(|best| c.len() > best.len()) {
            contained = Some(c);
        }
    }
    closest.map(|(_, c)| c).or(contained)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: &[&str] = &[
        "upper",
        "lower",
        "length",
        "formatDate",
        "startsWith",
        "trim",
    ];

    #[test]
    fn suggestions() {
        let s = |x| did_you_mean(x, NAMES.iter().copied());
        assert_eq!(s("uper"), Some("upper"));
        assert_eq!(s("formatdate"), Some("formatDate"));
        assert_eq!(s("lenght"), Some("length"));
        assert_eq!(s("len"), Some("length"));
        assert_eq!(s("toUpperCase"), Some("upper"));
        assert_eq!(s("startwith"), Some("startsWith"));
        assert_eq!(s("zzz"), None);
        assert_eq!(s("frobnicate"), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
