//! The filter and PATCH path parser: a lazy lexer and a recursive-descent parser for the grammar of
//! RFC 7644 §3.4.2.2 (filters) and §3.5.2 (PATCH `path`), plus the `emails[type eq "work"].value`
//! extension sent by Entra ID.
//!
//! Errors name the 1-based character position and what was expected, because the client has only
//! the text it sent to go on. Input size and nesting are bounded so that hostile input can never
//! exhaust the stack.

use super::ast::{AttrPath, CompValue, CompareOp, Filter, PatchPath};
use crate::error::{ScimError, ScimResult};
use serde_json::Number;
use std::fmt;

/// The longest filter or path accepted, in bytes. Real IdP filters are far shorter; the bound
/// keeps the left-nested `and`/`or` chains (and everything that walks them) small.
pub const MAX_FILTER_LEN: usize = 8 * 1024;

/// The deepest nesting of parentheses, `not (...)` and value filters `[...]` accepted.
pub const MAX_NESTING: usize = 50;

const OPERATOR_LIST: &str = "eq, ne, co, sw, ew, gt, ge, lt, le, pr";

/// Parses a filter expression (RFC 7644 §3.4.2.2).
pub fn parse_filter(text: &str) -> ScimResult<Filter> {
    let mut parser = Parser::new(text, Grammar::Filter)?;
    let filter = parser.parse_or(Scope::Resource)?;
    parser.expect_end()?;
    Ok(filter)
}

/// Parses a PATCH `path` (RFC 7644 §3.5.2): `attrPath`, or `valuePath` optionally followed by
/// `.subAttr`.
pub fn parse_patch_path(text: &str) -> ScimResult<PatchPath> {
    let mut parser = Parser::new(text, Grammar::Path)?;
    let token = parser.next()?;
    let Tok::Word(word) = token.tok else {
        return Err(parser.unexpected(&token, "expected an attribute path"));
    };
    let attr = parser.attr_path(word, token.start)?;
    let mut filter = None;
    let mut sub = None;
    if parser.peek()?.tok == Tok::LBracket {
        filter = Some(parser.parse_value_filter(&attr)?);
        if parser.peek()?.tok == Tok::Dot {
            parser.next()?;
            sub = Some(parser.sub_attr_after_bracket()?);
        }
    }
    let end = parser.next()?;
    if end.tok != Tok::End {
        return Err(parser.unexpected(&end, "expected the end of the path"));
    }
    Ok(PatchPath { attr, filter, sub })
}

/// Which text is being parsed: decides the `scimType` and wording of errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grammar {
    Filter,
    Path,
}

/// Whether the expression being parsed sits inside a value filter `attr[...]`, where value paths
/// cannot nest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Resource,
    ValueFilter,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    LParen,
    RParen,
    LBracket,
    RBracket,
    /// A `.` at the start of a token: only valid right after `]`, as in `emails[...].value`.
    Dot,
    /// A run of attribute-path characters: an attribute path, operator or keyword.
    Word(&'a str),
    Str(String),
    Num(Number),
    End,
}

/// A token and its byte span in the source.
#[derive(Debug, Clone)]
struct Token<'a> {
    tok: Tok<'a>,
    start: usize,
    end: usize,
}

struct Parser<'a> {
    src: &'a str,
    /// Byte offset of the first character not yet lexed; always on a character boundary.
    pos: usize,
    peeked: Option<Token<'a>>,
    depth: usize,
    grammar: Grammar,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str, grammar: Grammar) -> ScimResult<Self> {
        let parser = Parser { src, pos: 0, peeked: None, depth: 0, grammar };
        let what = match grammar {
            Grammar::Filter => "filter",
            Grammar::Path => "path",
        };
        if src.len() > MAX_FILTER_LEN {
            return Err(parser.plain_error(format!(
                "the {what} is {} bytes long; the limit is {MAX_FILTER_LEN}",
                src.len()
            )));
        }
        if src.trim_ascii().is_empty() {
            return Err(parser.plain_error(format!("the {what} is empty")));
        }
        Ok(parser)
    }

    // ----- errors -------------------------------------------------------------------------

    /// An error without a position (whole-input problems such as length).
    fn plain_error(&self, reason: String) -> ScimError {
        match self.grammar {
            Grammar::Filter => ScimError::invalid_filter(format!("invalid filter: {reason}")),
            Grammar::Path => ScimError::invalid_path(format!("invalid path: {reason}")),
        }
    }

    /// An error at byte offset `at`, reported as a 1-based character position.
    fn error(&self, at: usize, reason: impl fmt::Display) -> ScimError {
        let position = self.position_of(at);
        match self.grammar {
            Grammar::Filter => {
                ScimError::invalid_filter(format!("invalid filter at position {position}: {reason}"))
            }
            Grammar::Path => {
                ScimError::invalid_path(format!("invalid path at position {position}: {reason}"))
            }
        }
    }

    /// The 1-based character position of byte offset `at`: what a client sees in its editor.
    fn position_of(&self, at: usize) -> usize {
        self.src.get(..at).map_or(at, |prefix| prefix.chars().count()) + 1
    }

    /// "`expected`, found `token`" at the token.
    fn unexpected(&self, token: &Token<'_>, expected: &str) -> ScimError {
        self.error(token.start, format!("{expected}, found {}", self.describe(token)))
    }

    /// How a token reads in a message: its source text, shortened, with its kind.
    fn describe(&self, token: &Token<'_>) -> String {
        let text = self.src.get(token.start..token.end).unwrap_or("");
        let short: String = text.chars().take(40).collect();
        let short = if short.len() < text.len() { format!("{short}...") } else { short };
        match token.tok {
            Tok::End => "the end of the input".to_owned(),
            Tok::Word(_) => format!("{short:?}"),
            Tok::Str(_) => format!("the string {short}"),
            Tok::Num(_) => format!("the number {short}"),
            _ => format!("'{short}'"),
        }
    }

    // ----- lexer --------------------------------------------------------------------------

    fn peek(&mut self) -> ScimResult<&Token<'a>> {
        if self.peeked.is_none() {
            let token = self.lex()?;
            self.peeked = Some(token);
        }
        // The branch above guarantees a token; this keeps the function free of `unwrap`.
        match &self.peeked {
            Some(token) => Ok(token),
            None => Err(self.error(self.pos, "internal lexer error")),
        }
    }

    fn next(&mut self) -> ScimResult<Token<'a>> {
        match self.peeked.take() {
            Some(token) => Ok(token),
            None => self.lex(),
        }
    }

    /// Is the next token the keyword `word` (case-insensitively)?
    fn peek_keyword(&mut self, word: &str) -> ScimResult<bool> {
        Ok(matches!(self.peek()?.tok, Tok::Word(w) if w.eq_ignore_ascii_case(word)))
    }

    fn lex(&mut self) -> ScimResult<Token<'a>> {
        let bytes = self.src.as_bytes();
        while bytes.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(&first) = bytes.get(start) else {
            return Ok(Token { tok: Tok::End, start, end: start });
        };
        let tok = match first {
            b'(' | b')' | b'[' | b']' | b'.' => {
                self.pos += 1;
                match first {
                    b'(' => Tok::LParen,
                    b')' => Tok::RParen,
                    b'[' => Tok::LBracket,
                    b']' => Tok::RBracket,
                    _ => Tok::Dot,
                }
            }
            b'"' => Tok::Str(self.lex_string()?),
            b'-' | b'0'..=b'9' => Tok::Num(self.lex_number()?),
            b'$' | b'a'..=b'z' | b'A'..=b'Z' => {
                while bytes.get(self.pos).is_some_and(|&b| is_word_byte(b)) {
                    self.pos += 1;
                }
                // Word bytes are ASCII, so both ends of the span are character boundaries.
                Tok::Word(self.src.get(start..self.pos).unwrap_or(""))
            }
            _ => {
                let found = self.src.get(start..).and_then(|rest| rest.chars().next());
                let shown = found.map_or_else(String::new, |c| format!(" {c:?}"));
                return Err(self.error(start, format!("unexpected character{shown}")));
            }
        };
        Ok(Token { tok, start, end: self.pos })
    }

    /// Lexes a JSON string (RFC 8259 §7) starting at the opening quote.
    fn lex_string(&mut self) -> ScimResult<String> {
        let start = self.pos;
        let body_start = start + 1;
        let body = self.src.get(body_start..).unwrap_or("");
        let mut chars = body.char_indices();
        let mut out = String::new();
        let unterminated =
            |parser: &Self| parser.error(start, "unterminated string: missing the closing '\"'");
        loop {
            let Some((offset, c)) = chars.next() else {
                return Err(unterminated(self));
            };
            match c {
                '"' => {
                    self.pos = body_start + offset + 1;
                    return Ok(out);
                }
                '\\' => {
                    let escape_at = body_start + offset;
                    let Some((_, kind)) = chars.next() else {
                        return Err(unterminated(self));
                    };
                    let decoded = match kind {
                        '"' => '"',
                        '\\' => '\\',
                        '/' => '/',
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        'u' => self.unicode_escape(&mut chars, escape_at)?,
                        other => {
                            return Err(self.error(
                                escape_at,
                                format!(
                                    "invalid escape '\\{}' in string; valid escapes are \
                                     \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX",
                                    other.escape_debug()
                                ),
                            ));
                        }
                    };
                    out.push(decoded);
                }
                c if u32::from(c) < 0x20 => {
                    return Err(self.error(
                        body_start + offset,
                        format!("control character U+{:04X} must be escaped inside a string", u32::from(c)),
                    ));
                }
                c => out.push(c),
            }
        }
    }

    /// Decodes the `XXXX` of a `\uXXXX` escape at `escape_at`, joining a UTF-16 surrogate pair
    /// written as two escapes.
    fn unicode_escape(&self, chars: &mut std::str::CharIndices<'_>, escape_at: usize) -> ScimResult<char> {
        let high = self.hex4(chars, escape_at)?;
        let code = match high {
            0xD800..=0xDBFF => {
                let low_at = escape_at + 6;
                let is_escape =
                    matches!(chars.next(), Some((_, '\\'))) && matches!(chars.next(), Some((_, 'u')));
                if !is_escape {
                    return Err(self.error(
                        escape_at,
                        "invalid \\u escape: a high surrogate must be followed by a \\u escape \
                         of a low surrogate",
                    ));
                }
                let low = self.hex4(chars, low_at)?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(
                        self.error(low_at, "invalid \\u escape: expected a low surrogate (\\uDC00-\\uDFFF)")
                    );
                }
                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => {
                return Err(self.error(
                    escape_at,
                    "invalid \\u escape: a low surrogate without a preceding high surrogate",
                ));
            }
            code => code,
        };
        char::from_u32(code)
            .ok_or_else(|| self.error(escape_at, "invalid \\u escape: not a Unicode scalar value"))
    }

    fn hex4(&self, chars: &mut std::str::CharIndices<'_>, escape_at: usize) -> ScimResult<u32> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = chars.next().and_then(|(_, c)| c.to_digit(16)).ok_or_else(|| {
                self.error(escape_at, "invalid \\u escape: expected four hexadecimal digits")
            })?;
            code = code * 16 + digit;
        }
        Ok(code)
    }

    /// Lexes a JSON number (RFC 8259 §6): `-? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?`.
    fn lex_number(&mut self) -> ScimResult<Number> {
        let bytes = self.src.as_bytes();
        let start = self.pos;
        let at = |pos: usize| bytes.get(pos).copied();
        let digits_from = |mut pos: usize| {
            while at(pos).is_some_and(|b| b.is_ascii_digit()) {
                pos += 1;
            }
            pos
        };
        let invalid = |reason: &str| self.error(start, format!("invalid number: {reason}"));
        let mut pos = start;
        if at(pos) == Some(b'-') {
            pos += 1;
        }
        match at(pos) {
            Some(b'0') => pos += 1,
            Some(b'1'..=b'9') => pos = digits_from(pos),
            _ => return Err(invalid("expected a digit after '-'")),
        }
        if at(pos) == Some(b'.') {
            let fraction = digits_from(pos + 1);
            if fraction == pos + 1 {
                return Err(invalid("expected a digit after the decimal point"));
            }
            pos = fraction;
        }
        if matches!(at(pos), Some(b'e' | b'E')) {
            pos += 1;
            if matches!(at(pos), Some(b'+' | b'-')) {
                pos += 1;
            }
            let exponent = digits_from(pos);
            if exponent == pos {
                return Err(invalid("expected a digit in the exponent"));
            }
            pos = exponent;
        }
        // `01`, `1x` or `1.2.3` are one malformed number, not a number followed by a word.
        if at(pos).is_some_and(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_') {
            return Err(invalid("not a JSON number (no leading zeros, letters or extra dots)"));
        }
        let text = self.src.get(start..pos).unwrap_or("");
        let number =
            json_number(text).ok_or_else(|| invalid("out of range for a 64-bit floating point number"))?;
        self.pos = pos;
        Ok(number)
    }

    // ----- parser -------------------------------------------------------------------------

    fn enter(&mut self, at: usize) -> ScimResult<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.error(
                at,
                format!(
                    "too deeply nested: more than {MAX_NESTING} levels of parentheses, \
                     \"not\" and value filters"
                ),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn expect_end(&mut self) -> ScimResult<()> {
        let token = self.next()?;
        match token.tok {
            Tok::End => Ok(()),
            Tok::RParen => Err(self.error(token.start, "unbalanced ')': there is no '(' to close")),
            Tok::RBracket => Err(self.error(token.start, "unbalanced ']': there is no '[' to close")),
            _ => Err(self.unexpected(&token, "expected \"and\", \"or\" or the end of the filter")),
        }
    }

    /// `or` binds loosest: `a or b and c` is `a or (b and c)`. Chains are left-nested.
    fn parse_or(&mut self, scope: Scope) -> ScimResult<Filter> {
        let mut left = self.parse_and(scope)?;
        while self.peek_keyword("or")? {
            self.next()?;
            let right = self.parse_and(scope)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_and(&mut self, scope: Scope) -> ScimResult<Filter> {
        let mut left = self.parse_unary(scope)?;
        while self.peek_keyword("and")? {
            self.next()?;
            let right = self.parse_unary(scope)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// `( filter )`, `not ( filter )` or an attribute expression.
    fn parse_unary(&mut self, scope: Scope) -> ScimResult<Filter> {
        let token = self.next()?;
        match token.tok {
            Tok::LParen => self.parse_group(token.start, scope),
            // `not` is a keyword only before `(`; otherwise it is an attribute named "not".
            Tok::Word(word) if word.eq_ignore_ascii_case("not") => match self.peek()?.tok {
                Tok::LParen => {
                    let open = self.next()?;
                    Ok(Filter::Not(Box::new(self.parse_group(open.start, scope)?)))
                }
                Tok::Word(next) if !is_operator_word(next) => {
                    let found = self.peek()?.clone();
                    Err(self.unexpected(&found, "expected '(' after \"not\""))
                }
                _ => self.parse_attr_expr(word, token.start, scope),
            },
            Tok::Word(word) => self.parse_attr_expr(word, token.start, scope),
            _ => Err(self
                .unexpected(&token, "expected an attribute path, \"not (\" or '(' to start an expression")),
        }
    }

    /// The rest of `( filter )` after the `(` at `open`.
    fn parse_group(&mut self, open: usize, scope: Scope) -> ScimResult<Filter> {
        self.enter(open)?;
        let inner = self.parse_or(scope)?;
        let close = self.next()?;
        if close.tok != Tok::RParen {
            let expected = format!(
                "expected \"and\", \"or\" or ')' closing the '(' at position {}",
                self.position_of(open)
            );
            return Err(self.unexpected(&close, &expected));
        }
        self.leave();
        Ok(inner)
    }

    /// `attrPath pr`, `attrPath op value`, `attrPath[valFilter]` or the Entra ID form
    /// `attrPath[valFilter].subAttr op value`.
    fn parse_attr_expr(&mut self, word: &'a str, start: usize, scope: Scope) -> ScimResult<Filter> {
        let path = self.attr_path(word, start)?;
        if self.peek()?.tok != Tok::LBracket {
            return self.parse_condition(path, start);
        }
        if scope == Scope::ValueFilter {
            let bracket = self.peek()?.start;
            return Err(self
                .error(bracket, "value filters cannot be nested: inside '[...]' name sub-attributes only"));
        }
        let mut inner = self.parse_value_filter(&path)?;
        if self.peek()?.tok == Tok::Dot {
            // Entra ID sends `emails[type eq "work"].value eq "x"`: the element must satisfy the
            // bracket filter and the trailing condition, which is exactly a conjunction inside
            // the brackets.
            self.next()?;
            let sub_at = self.peek()?.start;
            let sub = self.sub_attr_after_bracket()?;
            let condition = self.parse_condition(AttrPath { urn: None, name: sub, sub: None }, sub_at)?;
            inner = Filter::And(Box::new(inner), Box::new(condition));
        }
        Ok(Filter::ValuePath(path, Box::new(inner)))
    }

    /// The `[valFilter]` after `path`, brackets included.
    fn parse_value_filter(&mut self, path: &AttrPath) -> ScimResult<Filter> {
        let open = self.next()?;
        if path.sub.is_some() {
            return Err(self.error(
                open.start,
                format!(
                    "a value filter '[...]' must follow a multi-valued attribute, not the \
                     sub-attribute \"{path}\""
                ),
            ));
        }
        self.enter(open.start)?;
        let inner = self.parse_or(Scope::ValueFilter)?;
        let close = self.next()?;
        if close.tok != Tok::RBracket {
            let expected = format!(
                "expected \"and\", \"or\" or ']' closing the '[' at position {}",
                self.position_of(open.start)
            );
            return Err(self.unexpected(&close, &expected));
        }
        self.leave();
        Ok(inner)
    }

    /// The sub-attribute name after `].`.
    fn sub_attr_after_bracket(&mut self) -> ScimResult<String> {
        let token = self.next()?;
        let Tok::Word(word) = token.tok else {
            return Err(self.unexpected(&token, "expected a sub-attribute name after '].'"));
        };
        if !is_attr_name(word) {
            return Err(self.error(
                token.start,
                format!(
                    "\"{word}\" is not a sub-attribute name (a letter followed by letters, \
                     digits, '-' or '_')"
                ),
            ));
        }
        Ok(word.to_owned())
    }

    /// `pr`, or a comparison operator and its value, after `path` (which started at `path_at`).
    fn parse_condition(&mut self, path: AttrPath, path_at: usize) -> ScimResult<Filter> {
        let token = self.next()?;
        let Tok::Word(word) = token.tok else {
            // `eq "x"`: the attribute is missing and the operator was read as a path. Attribute
            // names may legally spell an operator, so this is only a hint, not a rule.
            if path.urn.is_none() && path.sub.is_none() && is_operator_word(&path.name) {
                return Err(self.error(
                    path_at,
                    format!("expected an attribute path before the operator \"{}\"", path.name),
                ));
            }
            let expected = format!("expected a comparison operator ({OPERATOR_LIST})");
            return Err(self.unexpected(&token, &expected));
        };
        if word.eq_ignore_ascii_case("pr") {
            self.reject_value_after_pr()?;
            return Ok(Filter::Present(path));
        }
        let Some(op) = parse_operator(word) else {
            let expected = format!("expected a comparison operator ({OPERATOR_LIST})");
            return Err(self.unexpected(&token, &expected));
        };
        let value_token = self.next()?;
        let value = match value_token.tok {
            Tok::Str(ref text) => CompValue::String(text.clone()),
            Tok::Num(ref number) => CompValue::Number(number.clone()),
            Tok::Word(w) if w.eq_ignore_ascii_case("true") => CompValue::Bool(true),
            Tok::Word(w) if w.eq_ignore_ascii_case("false") => CompValue::Bool(false),
            Tok::Word(w) if w.eq_ignore_ascii_case("null") => CompValue::Null,
            _ => {
                return Err(self.unexpected(
                    &value_token,
                    &format!(
                        "expected a value after \"{}\" (a JSON string, number, true, false or \
                         null)",
                        op.as_str()
                    ),
                ));
            }
        };
        let ordering = matches!(op, CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le);
        if ordering && matches!(value, CompValue::Bool(_) | CompValue::Null) {
            return Err(self.error(
                value_token.start,
                format!(
                    "\"{}\" cannot compare with {}: booleans and null only support eq and ne",
                    op.as_str(),
                    self.describe(&value_token)
                ),
            ));
        }
        Ok(Filter::Compare(path, op, value))
    }

    fn reject_value_after_pr(&mut self) -> ScimResult<()> {
        let next = self.peek()?;
        let is_value = match next.tok {
            Tok::Str(_) | Tok::Num(_) => true,
            Tok::Word(w) => ["true", "false", "null"].iter().any(|v| w.eq_ignore_ascii_case(v)),
            _ => false,
        };
        if is_value {
            let next = next.clone();
            return Err(self.error(
                next.start,
                format!("the \"pr\" operator takes no value, found {}", self.describe(&next)),
            ));
        }
        Ok(())
    }

    /// Splits a word into `[urn ":"] name ["." sub]`. The URN is everything up to the last ':'
    /// because attribute names cannot contain ':' while URNs contain dots (`2.0`).
    fn attr_path(&self, word: &str, start: usize) -> ScimResult<AttrPath> {
        let (urn, rest, rest_at) = match word.rfind(':') {
            Some(colon) => (
                Some(word.get(..colon).unwrap_or("")),
                word.get(colon + 1..).unwrap_or(""),
                start + colon + 1,
            ),
            None => (None, word, start),
        };
        let (name, sub) = match rest.split_once('.') {
            Some((name, sub)) => (name, Some(sub)),
            None => (rest, None),
        };
        if name.is_empty() && urn.is_some() {
            return Err(
                self.error(rest_at, format!("missing attribute name after the schema URN in \"{word}\""))
            );
        }
        if !is_attr_name(name) {
            return Err(self.error(
                rest_at,
                format!(
                    "\"{word}\" is not an attribute path: attribute names start with a letter \
                     followed by letters, digits, '-' or '_'"
                ),
            ));
        }
        match sub {
            Some(sub) if !is_attr_name(sub) => {
                return Err(self.error(
                    rest_at + name.len() + 1,
                    format!(
                        "\"{word}\" is not an attribute path: expected one sub-attribute name \
                         after '.', found \"{sub}\""
                    ),
                ));
            }
            _ => {}
        }
        Ok(AttrPath { urn: urn.map(str::to_owned), name: name.to_owned(), sub: sub.map(str::to_owned) })
    }
}

/// Converts lexed JSON number text: integers exactly when they fit 64 bits, everything else with
/// the standard library's correctly rounded `f64` parser (serde_json's default float parsing may
/// be off by one unit in the last place, which would break print/parse round trips).
fn json_number(text: &str) -> Option<Number> {
    let integer = !text.contains(['.', 'e', 'E']);
    if integer {
        if let Ok(value) = text.parse::<u64>() {
            return Some(Number::from(value));
        }
        if let Ok(value) = text.parse::<i64>() {
            return Some(Number::from(value));
        }
    }
    text.parse::<f64>().ok().filter(|value| value.is_finite()).and_then(Number::from_f64)
}

/// Characters of attribute paths: name characters plus the ':' and '.' of URNs and sub-attributes
/// and the '$' of `$ref`.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.' | b'$')
}

/// `ATTRNAME = ALPHA *(nameChar)` (RFC 7643 §2.1), plus `$ref` (RFC 7643 §2.4).
pub(crate) fn is_attr_name(name: &str) -> bool {
    if name.eq_ignore_ascii_case("$ref") {
        return true;
    }
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn parse_operator(word: &str) -> Option<CompareOp> {
    use CompareOp::*;
    [Eq, Ne, Co, Sw, Ew, Gt, Ge, Lt, Le].into_iter().find(|op| word.eq_ignore_ascii_case(op.as_str()))
}

fn is_operator_word(word: &str) -> bool {
    word.eq_ignore_ascii_case("pr") || parse_operator(word).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ScimType;
    use proptest::prelude::*;
    use serde_json::json;

    fn parse(text: &str) -> Filter {
        match parse_filter(text) {
            Ok(filter) => filter,
            Err(error) => panic!("{text:?} should parse: {}", error.detail),
        }
    }

    fn error(text: &str) -> String {
        match parse_filter(text) {
            Ok(filter) => panic!("{text:?} should not parse, got {filter:?}"),
            Err(error) => {
                assert_eq!(error.scim_type, Some(ScimType::InvalidFilter), "{text:?}");
                assert_eq!(error.status, 400);
                error.detail
            }
        }
    }

    fn path(name: &str) -> AttrPath {
        AttrPath::simple(name)
    }

    fn cmp(path: AttrPath, op: CompareOp, value: CompValue) -> Filter {
        Filter::Compare(path, op, value)
    }

    fn text(value: &str) -> CompValue {
        CompValue::String(value.to_owned())
    }

    fn num(value: serde_json::Value) -> CompValue {
        match value {
            serde_json::Value::Number(number) => CompValue::Number(number),
            other => panic!("not a number: {other}"),
        }
    }

    fn and(left: Filter, right: Filter) -> Filter {
        Filter::And(Box::new(left), Box::new(right))
    }

    fn or(left: Filter, right: Filter) -> Filter {
        Filter::Or(Box::new(left), Box::new(right))
    }

    fn not(inner: Filter) -> Filter {
        Filter::Not(Box::new(inner))
    }

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    #[test]
    fn a_username_equality_parses_to_one_comparison() {
        assert_eq!(parse(r#"userName eq "bjensen""#), cmp(path("userName"), CompareOp::Eq, text("bjensen")));
    }

    #[test]
    fn the_identity_filters_idps_send_parse() {
        // E9 (userName), E10 (externalId), O1 (displayName) and a lookup by GUID.
        assert_eq!(
            parse(r#"externalId eq "00u1abcd""#),
            cmp(path("externalId"), CompareOp::Eq, text("00u1abcd"))
        );
        assert_eq!(
            parse(r#"displayName eq "Sales Team""#),
            cmp(path("displayName"), CompareOp::Eq, text("Sales Team"))
        );
        assert_eq!(
            parse(r#"id eq "2819c223-7f76-453a-919d-413861904646""#),
            cmp(path("id"), CompareOp::Eq, text("2819c223-7f76-453a-919d-413861904646"))
        );
    }

    #[test]
    fn every_comparison_operator_parses() {
        for (word, op) in [
            ("eq", CompareOp::Eq),
            ("ne", CompareOp::Ne),
            ("co", CompareOp::Co),
            ("sw", CompareOp::Sw),
            ("ew", CompareOp::Ew),
            ("gt", CompareOp::Gt),
            ("ge", CompareOp::Ge),
            ("lt", CompareOp::Lt),
            ("le", CompareOp::Le),
        ] {
            assert_eq!(parse(&format!("title {word} \"x\"")), cmp(path("title"), op, text("x")));
        }
        assert_eq!(parse("title pr"), Filter::Present(path("title")));
    }

    #[test]
    fn operators_and_keywords_are_case_insensitive() {
        assert_eq!(parse(r#"displayName Eq "x""#), cmp(path("displayName"), CompareOp::Eq, text("x")));
        assert_eq!(
            parse("title PR AND nickName Pr OR NOT (active EQ TRUE)"),
            or(
                and(Filter::Present(path("title")), Filter::Present(path("nickName"))),
                not(cmp(path("active"), CompareOp::Eq, CompValue::Bool(true)))
            )
        );
        assert_eq!(parse("x eq FALSE"), cmp(path("x"), CompareOp::Eq, CompValue::Bool(false)));
        assert_eq!(parse("x eq Null"), cmp(path("x"), CompareOp::Eq, CompValue::Null));
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let one = cmp(path("a"), CompareOp::Eq, num(json!(1)));
        let two = cmp(path("b"), CompareOp::Eq, num(json!(2)));
        let three = cmp(path("c"), CompareOp::Eq, num(json!(3)));
        assert_eq!(parse("a eq 1 or b eq 2 and c eq 3"), or(one.clone(), and(two.clone(), three.clone())));
        assert_eq!(parse("a eq 1 and b eq 2 or c eq 3"), or(and(one.clone(), two.clone()), three.clone()));
        assert_eq!(parse("(a eq 1 or b eq 2) and c eq 3"), and(or(one, two), three));
    }

    #[test]
    fn chains_of_one_connective_nest_to_the_left() {
        let [a, b, c] = ["a", "b", "c"].map(|name| Filter::Present(path(name)));
        assert_eq!(parse("a pr and b pr and c pr"), and(and(a.clone(), b.clone()), c.clone()));
        assert_eq!(parse("a pr or (b pr or c pr)"), or(a, or(b, c)));
    }

    #[test]
    fn redundant_parentheses_and_whitespace_leave_no_trace() {
        assert_eq!(parse("((( title pr )))"), parse("title pr"));
        assert_eq!(parse("\ttitle\n pr  "), parse("title pr"));
        assert_eq!(parse("not(title pr)"), not(Filter::Present(path("title"))));
    }

    #[test]
    fn not_negates_a_parenthesized_filter() {
        assert_eq!(
            parse(r#"not (userName eq "x" or title pr)"#),
            not(or(cmp(path("userName"), CompareOp::Eq, text("x")), Filter::Present(path("title"))))
        );
    }

    #[test]
    fn an_attribute_may_be_named_like_a_keyword() {
        assert_eq!(parse("not pr"), Filter::Present(path("not")));
        assert_eq!(
            parse("and eq 1 and or pr"),
            and(cmp(path("and"), CompareOp::Eq, num(json!(1))), Filter::Present(path("or")))
        );
    }

    #[test]
    fn value_paths_hold_a_filter_on_sub_attributes() {
        assert_eq!(
            parse(r#"emails[type eq "work" and primary eq true]"#),
            Filter::ValuePath(
                path("emails"),
                Box::new(and(
                    cmp(path("type"), CompareOp::Eq, text("work")),
                    cmp(path("primary"), CompareOp::Eq, CompValue::Bool(true))
                ))
            )
        );
        assert_eq!(
            parse(r#"emails[not (type eq "home")] and userName pr"#),
            and(
                Filter::ValuePath(
                    path("emails"),
                    Box::new(not(cmp(path("type"), CompareOp::Eq, text("home"))))
                ),
                Filter::Present(path("userName"))
            )
        );
    }

    #[test]
    fn the_entra_value_path_with_a_trailing_sub_attribute_is_a_conjunction() {
        assert_eq!(
            parse(r#"emails[type eq "work"].value eq "x""#),
            Filter::ValuePath(
                path("emails"),
                Box::new(and(
                    cmp(path("type"), CompareOp::Eq, text("work")),
                    cmp(path("value"), CompareOp::Eq, text("x"))
                ))
            )
        );
        assert_eq!(
            parse(r#"emails[type eq "work"].value pr"#),
            Filter::ValuePath(
                path("emails"),
                Box::new(and(cmp(path("type"), CompareOp::Eq, text("work")), Filter::Present(path("value"))))
            )
        );
    }

    #[test]
    fn sub_attributes_and_urn_prefixes_split_at_the_last_colon() {
        assert_eq!(
            parse(r#"name.familyName co "O'Malley""#),
            cmp(AttrPath::with_sub("name", "familyName"), CompareOp::Co, text("O'Malley"))
        );
        let core = parse(r#"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName eq "B""#);
        assert_eq!(
            core,
            cmp(
                AttrPath {
                    urn: Some("urn:ietf:params:scim:schemas:core:2.0:User".into()),
                    name: "name".into(),
                    sub: Some("givenName".into()),
                },
                CompareOp::Eq,
                text("B")
            )
        );
        let employee = parse(&format!("{ENTERPRISE}:employeeNumber eq \"701984\""));
        assert_eq!(
            employee,
            cmp(
                AttrPath { urn: Some(ENTERPRISE.into()), name: "employeeNumber".into(), sub: None },
                CompareOp::Eq,
                text("701984")
            )
        );
        let manager = parse(&format!("{ENTERPRISE}:manager.value pr"));
        assert_eq!(
            manager,
            Filter::Present(AttrPath {
                urn: Some(ENTERPRISE.into()),
                name: "manager".into(),
                sub: Some("value".into()),
            })
        );
    }

    #[test]
    fn dollar_ref_and_name_characters_are_accepted_in_names() {
        assert_eq!(
            parse(r#"members[$ref eq "https://x/Users/1"]"#),
            Filter::ValuePath(
                path("members"),
                Box::new(cmp(path("$ref"), CompareOp::Eq, text("https://x/Users/1")))
            )
        );
        assert_eq!(parse("x-custom_attr9 pr"), Filter::Present(path("x-custom_attr9")));
    }

    #[test]
    fn json_numbers_parse_as_integers_decimals_and_exponents() {
        assert_eq!(parse("n eq 42"), cmp(path("n"), CompareOp::Eq, num(json!(42))));
        assert_eq!(parse("n eq -7"), cmp(path("n"), CompareOp::Eq, num(json!(-7))));
        assert_eq!(parse("n gt 0.5"), cmp(path("n"), CompareOp::Gt, num(json!(0.5))));
        assert_eq!(parse("n lt 1.5E3"), cmp(path("n"), CompareOp::Lt, num(json!(1500.0))));
        assert_eq!(parse("n le -2e-2"), cmp(path("n"), CompareOp::Le, num(json!(-0.02))));
        // Beyond 64-bit integers numbers become floating point rather than errors.
        assert_eq!(
            parse("n eq 18446744073709551616"),
            cmp(path("n"), CompareOp::Eq, num(json!(18446744073709551616.0)))
        );
    }

    #[test]
    fn strings_decode_every_json_escape() {
        assert_eq!(
            parse(r#"x eq "q\" b\\ s\/ \b\f\n\r\t \u00e9 \ud83d\ude00 ü""#),
            cmp(path("x"), CompareOp::Eq, text("q\" b\\ s/ \u{8}\u{c}\n\r\t é 😀 ü"))
        );
    }

    #[test]
    fn an_unknown_operator_is_reported_with_its_position() {
        assert_eq!(
            error(r#"emails.value eqq "x""#),
            "invalid filter at position 14: expected a comparison operator \
             (eq, ne, co, sw, ew, gt, ge, lt, le, pr), found \"eqq\""
        );
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let detail = error(r#"displayName eq "Zoë" and € pr"#);
        assert!(detail.starts_with("invalid filter at position 26: unexpected character '€'"), "{detail}");
    }

    #[test]
    fn empty_and_trailing_input_are_rejected() {
        assert_eq!(error(""), "invalid filter: the filter is empty");
        assert_eq!(error("  \t"), "invalid filter: the filter is empty");
        assert_eq!(
            error(r#"userName eq "x" "y""#),
            "invalid filter at position 17: expected \"and\", \"or\" or the end of the filter, \
             found the string \"y\""
        );
        assert!(error("title pr title pr").contains("position 10"));
    }

    #[test]
    fn unbalanced_parentheses_and_brackets_are_rejected() {
        assert_eq!(
            error("(title pr"),
            "invalid filter at position 10: expected \"and\", \"or\" or ')' closing the '(' at \
             position 1, found the end of the input"
        );
        assert_eq!(
            error("title pr)"),
            "invalid filter at position 9: unbalanced ')': there is no '(' to close"
        );
        assert!(error(r#"emails[type eq "work""#).contains("closing the '[' at position 7"));
        assert!(error(r#"emails[type eq "work"))"#).contains("position 22"));
        assert!(error("emails]").contains("position 7"));
    }

    #[test]
    fn nested_value_paths_are_rejected() {
        assert_eq!(
            error("a[b[c eq 1]]"),
            "invalid filter at position 4: value filters cannot be nested: inside '[...]' name \
             sub-attributes only"
        );
        assert!(error("name.givenName[x pr]").contains("not the sub-attribute"));
    }

    #[test]
    fn pr_takes_no_value() {
        assert_eq!(
            error(r#"title pr "x""#),
            "invalid filter at position 10: the \"pr\" operator takes no value, found the string \
             \"x\""
        );
        assert!(error("title pr true").contains("takes no value"));
    }

    #[test]
    fn ordering_booleans_or_null_is_rejected() {
        assert_eq!(
            error("active gt true"),
            "invalid filter at position 11: \"gt\" cannot compare with \"true\": booleans and \
             null only support eq and ne"
        );
        assert!(error("x le null").contains("position 6"));
        assert!(error("x GE False").contains("booleans and null"));
    }

    #[test]
    fn malformed_strings_are_rejected_at_the_right_place() {
        assert_eq!(
            error(r#"title eq "abc"#),
            "invalid filter at position 10: unterminated string: missing the closing '\"'"
        );
        assert!(error(r#"title eq "abc\"#).contains("unterminated"));
        assert!(error(r#"title eq "a\qb""#).contains("position 12: invalid escape '\\q'"));
        assert!(error(r#"title eq "\u12G4""#).contains("four hexadecimal digits"));
        assert!(error(r#"title eq "\ud83d""#).contains("high surrogate"));
        assert!(error(r#"title eq "\ud83d\u0041""#).contains("low surrogate"));
        assert!(error(r#"title eq "\ude00""#).contains("without a preceding high surrogate"));
        assert!(error("title eq \"a\nb\"").contains("control character U+000A"));
    }

    #[test]
    fn malformed_numbers_are_rejected() {
        for bad in ["01", "1.", "-", "-x", "1e", "1e+", "1.2.3", "12abc", ".5"] {
            let detail = error(&format!("n eq {bad}"));
            assert!(detail.contains("position 6"), "{bad}: {detail}");
        }
        assert!(error("n eq 1e999").contains("out of range"));
    }

    #[test]
    fn missing_pieces_are_named() {
        assert!(error(r#"eq "x""#).contains("position 1: expected an attribute path before"));
        assert!(error("title eq").contains("expected a value after \"eq\""));
        assert!(error("title eq and").contains("found \"and\""));
        assert!(error("title").contains("expected a comparison operator"));
        assert!(error("title pr and").contains("found the end of the input"));
        assert!(error("not title pr").contains("expected '(' after \"not\""));
        assert!(error("name. pr").contains("sub-attribute name"));
        assert!(error("name.a.b pr").contains("found \"a.b\""));
        assert!(error("urn:x: pr").contains("missing attribute name"));
        assert!(error("9lives pr").contains("invalid number"));
        assert!(error(r#"emails[type eq "w"]. "x""#).contains("sub-attribute name after '].'"));
        assert!(error("@ pr").contains("unexpected character '@'"));
    }

    #[test]
    fn nesting_beyond_the_limit_is_rejected_without_overflowing_the_stack() {
        let ok = format!("{}title pr{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
        assert_eq!(parse(&ok), Filter::Present(path("title")));
        let deep = format!("{}title pr{}", "(".repeat(MAX_NESTING + 1), ")".repeat(MAX_NESTING + 1));
        assert!(error(&deep).contains("too deeply nested"));
        // The 51st `not (` starts at character 251; its parenthesis is at 255.
        let nots = format!("{}title pr{}", "not (".repeat(60), ")".repeat(60));
        assert!(error(&nots).contains("position 255: too deeply nested"), "{}", error(&nots));
        let unclosed = "(".repeat(MAX_FILTER_LEN);
        assert!(error(&unclosed).contains("too deeply nested"));
    }

    #[test]
    fn input_beyond_the_length_limit_is_rejected() {
        let long = format!("title eq \"{}\"", "x".repeat(MAX_FILTER_LEN));
        assert!(error(&long).contains("the limit is 8192"));
    }

    #[test]
    fn odd_input_is_rejected_without_panicking() {
        let odd = [
            "\"",
            "\\",
            "[",
            "]",
            "(",
            ")",
            ".",
            "-",
            "$",
            ":",
            "é",
            "😀",
            "\u{0}",
            "a[",
            "a[]",
            "a]",
            "a.",
            "a..b pr",
            "a:",
            ":a pr",
            "a eq \"\\u",
            "a eq \"\\ud83d\\u",
            "a eq -",
            "a eq 1e",
            "a[b pr].",
            "a[b pr].c",
            "a[b pr]..c eq 1",
            "not",
            "not (",
            "not ()",
            "()",
            "a pr or",
            "or",
            "and a pr",
            "a eq \"é",
            "é eq 1",
            "a eq 1 é",
            "\u{feff}a pr",
            "a\u{a0}pr",
            "$ref$ pr",
            "a eq \u{1F600}",
        ];
        for text in odd {
            assert!(parse_filter(text).is_err(), "{text:?}");
            let _ = parse_patch_path(text);
        }
    }

    #[test]
    fn patch_paths_cover_every_rfc_form() {
        let parse_path = |text: &str| match parse_patch_path(text) {
            Ok(path) => path,
            Err(error) => panic!("{text:?}: {}", error.detail),
        };
        assert_eq!(parse_path("members"), PatchPath { attr: path("members"), filter: None, sub: None });
        assert_eq!(
            parse_path("name.givenName"),
            PatchPath { attr: AttrPath::with_sub("name", "givenName"), filter: None, sub: None }
        );
        assert_eq!(
            parse_path(r#"members[value eq "2819c223"]"#),
            PatchPath {
                attr: path("members"),
                filter: Some(cmp(path("value"), CompareOp::Eq, text("2819c223"))),
                sub: None,
            }
        );
        assert_eq!(
            parse_path(r#"emails[type eq "work"].value"#),
            PatchPath {
                attr: path("emails"),
                filter: Some(cmp(path("type"), CompareOp::Eq, text("work"))),
                sub: Some("value".into()),
            }
        );
        assert_eq!(
            parse_path(&format!("{ENTERPRISE}:employeeNumber")).attr,
            AttrPath { urn: Some(ENTERPRISE.into()), name: "employeeNumber".into(), sub: None }
        );
        assert_eq!(
            parse_path(&format!("{ENTERPRISE}:manager.value")).attr,
            AttrPath { urn: Some(ENTERPRISE.into()), name: "manager".into(), sub: Some("value".into()) }
        );
    }

    #[test]
    fn bad_patch_paths_are_invalid_paths_with_positions() {
        let bad = |text: &str| match parse_patch_path(text) {
            Ok(path) => panic!("{text:?} parsed as {path:?}"),
            Err(error) => {
                assert_eq!(error.scim_type, Some(ScimType::InvalidPath), "{text:?}");
                error.detail
            }
        };
        assert_eq!(bad(""), "invalid path: the path is empty");
        assert_eq!(
            bad("members value"),
            "invalid path at position 9: expected the end of the path, found \"value\""
        );
        assert_eq!(
            bad(r#"members[value eqq "x"]"#),
            "invalid path at position 15: expected a comparison operator \
             (eq, ne, co, sw, ew, gt, ge, lt, le, pr), found \"eqq\""
        );
        assert!(bad(r#"emails[type eq "work"].value eq "x""#).contains("position 30"));
        assert!(bad(r#"emails[type eq "work""#).contains("closing the '['"));
        assert!(bad("emails[a[b pr]]").contains("cannot be nested"));
        assert!(bad("(members)").contains("expected an attribute path, found '('"));
        assert!(bad("members[]").contains("position 9"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn parsing_arbitrary_text_never_panics(text in any::<String>()) {
            let _ = parse_filter(&text);
            let _ = parse_patch_path(&text);
        }

        #[test]
        fn parsing_filter_shaped_text_never_panics(
            text in r#"[a-z\[\]().:"\\ 0-9eE+-]{0,40}( (and|or|eq|pr|not) )?[a-z\[\]().:"\\ 0-9é😀]{0,40}"#
        ) {
            let _ = parse_filter(&text);
            let _ = parse_patch_path(&text);
        }
    }
}
