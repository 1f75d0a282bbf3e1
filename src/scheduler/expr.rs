//! The constraint and affinity language of Swarm classic.
//!
//! `KEY==VALUE` and `KEY!=VALUE`; a `~` after the operator (`==~`, `!=~`)
//! makes the expression soft: it is dropped when no node satisfies it.
//! VALUE is exact, a glob (`us-*`, `node-?`) or a regular expression
//! between slashes (`/^e.$/`). Keys are case-insensitive, values are not.

use regex::Regex;

/// `==` or `!=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Must match.
    Eq,
    /// Must not match.
    Ne,
}

/// How a value is matched.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// The exact string.
    Exact(String),
    /// A glob or `/regex/`, compiled.
    Pattern(Regex),
}

impl Matcher {
    /// Whether `candidate` matches.
    pub fn matches(&self, candidate: &str) -> bool {
        match self {
            Matcher::Exact(value) => value == candidate,
            Matcher::Pattern(re) => re.is_match(candidate),
        }
    }
}

/// One parsed `KEY op VALUE` expression.
#[derive(Debug, Clone)]
pub struct Expr {
    /// Lower-cased key.
    pub key: String,
    /// Operator.
    pub op: Op,
    /// Soft (`~`): ignored when nothing satisfies it.
    pub soft: bool,
    /// Value as written.
    pub value: String,
    /// Compiled matcher for the value.
    pub matcher: Matcher,
}

/// A malformed expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid expression {text:?}: {why}")]
pub struct ExprError {
    /// The expression.
    pub text: String,
    /// What is wrong.
    pub why: String,
}

impl Expr {
    /// Parses `KEY==VALUE`, `KEY!=VALUE`, `KEY==~VALUE`, `KEY!=~VALUE`.
    pub fn parse(text: &str) -> Result<Expr, ExprError> {
        let err = |why: &str| ExprError {
            text: text.to_string(),
            why: why.to_string(),
        };
        let (key, op, rest) = match (text.find("=="), text.find("!=")) {
            (Some(i), Some(j)) if j < i => (&text[..j], Op::Ne, &text[j + 2..]),
            (Some(i), _) => (&text[..i], Op::Eq, &text[i + 2..]),
            (None, Some(j)) => (&text[..j], Op::Ne, &text[j + 2..]),
            (None, None) => return Err(err("expected KEY==VALUE or KEY!=VALUE")),
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(err("the key is empty"));
        }
        if !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
        {
            return Err(err(
                "the key may hold only letters, digits, '.', '-', '_' and '/'",
            ));
        }
        let (soft, value) = match rest.strip_prefix('~') {
            Some(v) => (true, v.trim()),
            None => (false, rest.trim()),
        };
        if value.is_empty() {
            return Err(err("the value is empty"));
        }
        if value.chars().any(char::is_control) {
            return Err(err(
                "the value holds a control character (such as a NUL byte)",
            ));
        }
        let matcher = if value.len() >= 2 && value.starts_with('/') && value.ends_with('/') {
            let re = Regex::new(&value[1..value.len() - 1])
                .map_err(|e| err(&format!("bad regular expression: {e}")))?;
            Matcher::Pattern(re)
        } else if value.contains(['*', '?']) {
            let mut pattern = String::from("^");
            for c in value.chars() {
                match c {
                    '*' => pattern.push_str(".*"),
                    '?' => pattern.push('.'),
                    c => pattern.push_str(&regex::escape(&c.to_string())),
                }
            }
            pattern.push('$');
            Matcher::Pattern(Regex::new(&pattern).map_err(|e| err(&e.to_string()))?)
        } else {
            Matcher::Exact(value.to_string())
        };
        Ok(Expr {
            key: key.to_ascii_lowercase(),
            op,
            soft,
            value: value.to_string(),
            matcher,
        })
    }

    /// Whether a node whose values for the key are `values` satisfies the
    /// expression: `==` needs one matching value, `!=` needs none.
    pub fn accepts<'a>(&self, mut values: impl Iterator<Item = &'a str>) -> bool {
        let any = values.any(|v| self.matcher.matches(v));
        match self.op {
            Op::Eq => any,
            Op::Ne => !any,
        }
    }
}

impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self.op {
            Op::Eq => "==",
            Op::Ne => "!=",
        };
        let soft = if self.soft { "~" } else { "" };
        write!(f, "{}{op}{soft}{}", self.key, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(expr: &str, values: &[&str]) -> bool {
        Expr::parse(expr).unwrap().accepts(values.iter().copied())
    }

    #[test]
    fn table() {
        let cases: &[(&str, &[&str], bool)] = &[
            ("region==eu", &["eu"], true),
            ("region==eu", &["us"], false),
            ("region==eu", &[], false),
            ("region!=eu", &["eu"], false),
            ("region!=eu", &["us"], true),
            ("region!=eu", &[], true),
            ("region==EU", &["eu"], false),
            ("REGION==eu", &["eu"], true),
            ("region==us-*", &["us-east"], true),
            ("region==us-*", &["eu-west"], false),
            ("region==us-*", &["xus-east"], false),
            ("node==node-?", &["node-1"], true),
            ("node==node-?", &["node-12"], false),
            ("node==a.b", &["axb"], false),
            ("node==a.*", &["a.b"], true),
            ("kernel==/^e.$/", &["ea"], true),
            ("kernel==/^e.$/", &["eab"], false),
            ("kernel==/4\\.1/", &["x4.1y"], true),
            ("kernel!=/^e/", &["eu"], false),
            ("kernel!=/^e/", &["us"], true),
            ("region==~eu", &["eu"], true),
            ("region!=~eu", &["us"], true),
            ("node==a", &["b", "a"], true),
            ("node!=a", &["b", "a"], false),
            ("storagedriver==vfs", &["vfs"], true),
            ("region== eu ", &["eu"], true),
            ("com.docker.x==1", &["1"], true),
        ];
        for (expr, values, want) in cases {
            assert_eq!(accepts(expr, values), *want, "{expr} over {values:?}");
        }
    }

    #[test]
    fn parts() {
        let e = Expr::parse("Region!=~eu-*").unwrap();
        assert_eq!(e.key, "region");
        assert_eq!(e.op, Op::Ne);
        assert!(e.soft);
        assert_eq!(e.value, "eu-*");
        assert_eq!(e.to_string(), "region!=~eu-*");
        assert!(!Expr::parse("a==b").unwrap().soft);
    }

    #[test]
    fn malformed() {
        for (text, why) in [
            ("region", "expected KEY==VALUE"),
            ("region=eu", "expected KEY==VALUE"),
            ("==eu", "key is empty"),
            ("region==", "value is empty"),
            ("region==~", "value is empty"),
            ("re gion==eu", "key may hold only"),
            ("region==/(/", "bad regular expression"),
            ("region==eu\0", "control character"),
            ("region==e\u{1b}u", "control character"),
        ] {
            let e = Expr::parse(text).unwrap_err();
            assert!(e.to_string().contains(why), "{text}: {e}");
        }
    }
}
