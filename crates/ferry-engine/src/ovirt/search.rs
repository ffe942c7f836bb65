//! The `search` query of oVirt's collections, the part scripts use:
//! `field=value` conditions joined by `and`, `*` as a wildcard, names
//! compared without regard to case (`name=demo*`,
//! `correlation_id=nightly-42`). Anything else is refused with a fault
//! that says what is understood, rather than answered with everything.

/// One `field=value` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Condition {
    /// The field, lowercase.
    pub field: String,
    /// The value, `*` matching any run of characters.
    pub pattern: String,
}

/// A parsed search: every condition must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Search {
    conditions: Vec<Condition>,
}

impl Search {
    /// Parses `text`, refusing fields not in `fields`. An empty text
    /// matches everything.
    pub fn parse(text: &str, fields: &[&str]) -> Result<Search, String> {
        let mut conditions = Vec::new();
        for term in split_and(text) {
            let Some((field, value)) = term.split_once('=') else {
                return Err(format!(
                    "the search '{text}' is not understood: use field=value conditions joined by 'and' (fields: {})",
                    fields.join(", ")
                ));
            };
            let field = field.trim().to_ascii_lowercase();
            if !fields.contains(&field.as_str()) {
                return Err(format!(
                    "the search field '{field}' is not supported here: use one of {}",
                    fields.join(", ")
                ));
            }
            let value = value.trim().trim_matches('"');
            conditions.push(Condition {
                field,
                pattern: value.to_string(),
            });
        }
        Ok(Search { conditions })
    }

    /// Whether an object passes: `value(field)` gives its value of a
    /// field (`None`: it has none, and a condition on it fails).
    pub fn matches<'a>(&self, value: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.conditions
            .iter()
            .all(|c| value(&c.field).is_some_and(|v| glob(&c.pattern, v)))
    }
}

/// The conditions of `text`, split at the word `and` (any case).
fn split_and(text: &str) -> Vec<String> {
    let mut terms = vec![String::new()];
    for word in text.split_whitespace() {
        if word.eq_ignore_ascii_case("and") {
            terms.push(String::new());
        } else if let Some(last) = terms.last_mut() {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    terms.retain(|t| !t.is_empty());
    terms
}

/// `pattern` against `text`, case-insensitively, `*` matching any run.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    // The classic two-pointer match with backtracking to the last star.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_name<'a>(name: &'a str) -> impl Fn(&str) -> Option<&'a str> {
        move |f| (f == "name").then_some(name)
    }

    #[test]
    fn names_match_exactly_or_by_wildcard_regardless_of_case() {
        let s = Search::parse("name=demo-disk", &["name", "id"]).expect("parse");
        assert!(s.matches(by_name("demo-disk")));
        assert!(s.matches(by_name("Demo-Disk")));
        assert!(!s.matches(by_name("demo-disk2")));
        let s = Search::parse("name = demo*", &["name"]).expect("parse");
        assert!(s.matches(by_name("demo-vm")));
        assert!(!s.matches(by_name("other")));
        let s = Search::parse("", &["name"]).expect("parse");
        assert!(s.matches(by_name("anything")));
    }

    #[test]
    fn every_condition_must_hold() {
        let s = Search::parse("name=a* and id=42", &["name", "id"]).expect("parse");
        assert!(s.matches(|f| match f {
            "name" => Some("abc"),
            "id" => Some("42"),
            _ => None,
        }));
        assert!(!s.matches(|f| match f {
            "name" => Some("abc"),
            _ => Some("43"),
        }));
    }

    #[test]
    fn unknown_fields_and_shapes_are_refused_by_name() {
        let e = Search::parse("status=ok", &["name"]).expect_err("refused");
        assert!(e.contains("'status'") && e.contains("name"), "{e}");
        let e = Search::parse("demo", &["name"]).expect_err("refused");
        assert!(e.contains("field=value"), "{e}");
    }
}
