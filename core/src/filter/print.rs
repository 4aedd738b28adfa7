//! Canonical text for filters and PATCH paths: lowercase keywords, single spaces, JSON-escaped
//! strings and only the parentheses the tree needs. The text re-parses to the same tree, so a
//! filter can be logged, stored in an event or forwarded downstream without losing meaning.

use super::ast::{CompValue, CompareOp, Filter, PatchPath};
use std::fmt::{self, Write as _};

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(value) => write!(f, "{value}"),
            CompValue::Number(number) => write!(f, "{number}"),
            CompValue::String(text) => write_json_string(f, text),
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::Compare(path, op, value) => write!(f, "{path} {op} {value}"),
            Filter::And(..) | Filter::Or(..) => write_chain(f, self),
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::ValuePath(path, inner) => write!(f, "{path}[{inner}]"),
        }
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// Writes an `and`/`or` chain. The parser nests chains to the left and binds `and` tighter than
/// `or`, so an operand needs parentheses when it is an `or` inside an `and`, or when it is nested
/// to the right of its own connective (`a and (b and c)`), which the parser would otherwise
/// re-associate.
fn write_chain(f: &mut fmt::Formatter<'_>, chain: &Filter) -> fmt::Result {
    let is_and = matches!(chain, Filter::And(..));
    let keyword = if is_and { " and " } else { " or " };
    for (index, operand) in chain.chain_operands().into_iter().enumerate() {
        if index > 0 {
            f.write_str(keyword)?;
        }
        let parenthesize = match operand {
            Filter::Or(..) => is_and || index > 0,
            Filter::And(..) => is_and && index > 0,
            _ => false,
        };
        if parenthesize {
            write!(f, "({operand})")?;
        } else {
            write!(f, "{operand}")?;
        }
    }
    Ok(())
}

/// A JSON string literal (RFC 8259 §7): quotes, backslashes and control characters escaped,
/// everything else (including non-ASCII) written as is.
fn write_json_string(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in text.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            '\u{8}' => f.write_str("\\b")?,
            '\u{c}' => f.write_str("\\f")?,
            c if u32::from(c) < 0x20 => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::ast::AttrPath;
    use crate::filter::{MAX_FILTER_LEN, parse_filter, parse_patch_path};
    use proptest::prelude::*;
    use serde_json::Number;

    fn reprint(text: &str) -> String {
        match parse_filter(text) {
            Ok(filter) => filter.to_string(),
            Err(error) => panic!("{text:?}: {}", error.detail),
        }
    }

    #[test]
    fn keywords_are_lowercased_and_spacing_normalised() {
        assert_eq!(
            reprint(r#"  userName   Eq "bjensen" AND  title PR"#),
            r#"userName eq "bjensen" and title pr"#
        );
        assert_eq!(reprint("NOT(active eq TRUE)"), "not (active eq true)");
        assert_eq!(reprint("x eq NULL or y ne False"), "x eq null or y ne false");
    }

    #[test]
    fn only_necessary_parentheses_are_printed() {
        assert_eq!(reprint("((a pr) and (b pr)) or (c pr)"), "a pr and b pr or c pr");
        assert_eq!(reprint("(a pr or b pr) and c pr"), "(a pr or b pr) and c pr");
        assert_eq!(reprint("a pr and (b pr or c pr)"), "a pr and (b pr or c pr)");
        assert_eq!(reprint("a pr and (b pr and c pr)"), "a pr and (b pr and c pr)");
        assert_eq!(reprint("a pr or (b pr or c pr)"), "a pr or (b pr or c pr)");
        assert_eq!(reprint("a pr or (b pr and c pr)"), "a pr or b pr and c pr");
    }

    #[test]
    fn strings_are_printed_as_json() {
        assert_eq!(
            reprint(r#"x eq "q\" b\\ s\/ \b\f\n\r\t \u0001 \u00e9 \ud83d\ude00""#),
            "x eq \"q\\\" b\\\\ s/ \\b\\f\\n\\r\\t \\u0001 é 😀\""
        );
    }

    #[test]
    fn numbers_keep_their_json_form() {
        assert_eq!(
            reprint("n eq 42 or n eq -7 or n eq 0.5 or n eq 1.5E3"),
            "n eq 42 or n eq -7 or n eq 0.5 or n eq 1500.0"
        );
    }

    #[test]
    fn the_entra_form_prints_as_a_plain_value_filter() {
        assert_eq!(
            reprint(r#"emails[type eq "work"].value eq "x""#),
            r#"emails[type eq "work" and value eq "x"]"#
        );
    }

    #[test]
    fn urn_paths_print_with_their_urn() {
        let text = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq \"x\"";
        assert_eq!(reprint(text), text);
    }

    #[test]
    fn patch_paths_print_in_rfc_form() {
        for text in [
            "members",
            "name.givenName",
            r#"members[value eq "2819c223"]"#,
            r#"emails[type eq "work"].value"#,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        ] {
            let path = parse_patch_path(text).map_err(|e| e.detail);
            assert_eq!(path.map(|p| p.to_string()).as_deref(), Ok(text));
        }
    }

    // ----- round-trip properties ---------------------------------------------------------

    fn attr_name() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => "[a-zA-Z][a-zA-Z0-9_-]{0,8}",
            1 => Just("$ref".to_owned()),
            1 => prop::sample::select(vec!["not", "and", "or", "pr", "eq", "true", "null"])
                .prop_map(str::to_owned),
        ]
    }

    fn urn() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("urn:ietf:params:scim:schemas:core:2.0:User".to_owned()),
            Just("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".to_owned()),
            "urn(:[a-zA-Z0-9.-]{1,6}){1,5}",
        ]
    }

    fn attr_path() -> impl Strategy<Value = AttrPath> {
        (prop::option::weighted(0.2, urn()), attr_name(), prop::option::of(attr_name()))
            .prop_map(|(urn, name, sub)| AttrPath { urn, name, sub })
    }

    fn number() -> impl Strategy<Value = Number> {
        prop_oneof![
            any::<i64>().prop_map(Number::from),
            any::<u64>().prop_map(Number::from),
            any::<f64>().prop_filter_map("finite", Number::from_f64),
            (-1000i32..1000, 0u32..4).prop_filter_map("finite", |(m, e)| {
                Number::from_f64(f64::from(m) / f64::from(10u32.pow(e)))
            }),
        ]
    }

    fn comp_value() -> impl Strategy<Value = CompValue> {
        prop_oneof![
            Just(CompValue::Null),
            any::<bool>().prop_map(CompValue::Bool),
            number().prop_map(CompValue::Number),
            any::<String>().prop_map(CompValue::String),
            r#"[a-z"\\/é😀\n\t\u{0}\u{1f} ]{0,12}"#.prop_map(CompValue::String),
        ]
    }

    fn compare_op() -> impl Strategy<Value = CompareOp> {
        use CompareOp::*;
        prop::sample::select(vec![Eq, Ne, Co, Sw, Ew, Gt, Ge, Lt, Le])
    }

    fn leaf() -> impl Strategy<Value = Filter> {
        prop_oneof![
            attr_path().prop_map(Filter::Present),
            (attr_path(), compare_op(), comp_value()).prop_map(|(path, op, value)| {
                // The grammar only orders strings and numbers.
                let ordering = matches!(op, CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le);
                let unordered = matches!(value, CompValue::Bool(_) | CompValue::Null);
                let op = if ordering && unordered { CompareOp::Eq } else { op };
                Filter::Compare(path, op, value)
            }),
        ]
    }

    fn connectives(inner: BoxedStrategy<Filter>) -> impl Strategy<Value = Filter> {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(l, r)| Filter::And(Box::new(l), Box::new(r))),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| Filter::Or(Box::new(l), Box::new(r))),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    }

    /// Filters valid inside `attr[...]`: anything but another value path.
    fn value_filter() -> impl Strategy<Value = Filter> {
        leaf().prop_recursive(3, 12, 2, |inner| connectives(inner.boxed()))
    }

    fn filter() -> impl Strategy<Value = Filter> {
        leaf().prop_recursive(5, 40, 2, |inner| {
            let value_path = (attr_path(), value_filter()).prop_map(|(mut path, inner)| {
                path.sub = None;
                Filter::ValuePath(path, Box::new(inner))
            });
            prop_oneof![3 => connectives(inner.boxed()), 1 => value_path]
        })
    }

    fn patch_path() -> impl Strategy<Value = PatchPath> {
        (attr_path(), prop::option::of(value_filter()), prop::option::of(attr_name())).prop_map(
            |(mut attr, filter, sub)| {
                // A value filter follows a bare attribute, and `.sub` only follows a filter.
                if filter.is_some() {
                    attr.sub = None;
                }
                let sub = if filter.is_some() { sub } else { None };
                PatchPath { attr, filter, sub }
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn printed_filters_parse_back_to_the_same_tree(filter in filter()) {
            let text = filter.to_string();
            prop_assume!(text.len() <= MAX_FILTER_LEN);
            prop_assert_eq!(parse_filter(&text), Ok(filter), "printed as {}", text);
        }

        #[test]
        fn printed_patch_paths_parse_back_to_the_same_path(path in patch_path()) {
            let text = path.to_string();
            prop_assert_eq!(parse_patch_path(&text), Ok(path), "printed as {}", text);
        }

        #[test]
        fn printing_is_a_fixed_point_after_one_parse(text in r#"[a-c]{1,2} (eq|pr|co) ("x"|1|true)?( (and|or) [a-c] pr){0,3}"#) {
            if let Ok(filter) = parse_filter(&text) {
                let printed = filter.to_string();
                let again = parse_filter(&printed).map(|f| f.to_string());
                prop_assert_eq!(again, Ok(printed));
            }
        }
    }
}
