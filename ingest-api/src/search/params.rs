//! The parameters of a query (RFC 7644 §3.4.2 and §3.4.3, RFC 9865): from a query string
//! (`GET /Users?filter=..&startIndex=..`) or from a `POST /.search` SearchRequest body.
//!
//! Lenient by design: parameter names match case-insensitively, unknown parameters are ignored
//! (E21 `?aadOptscim062020`), `startIndex` below 1 counts as 1, a negative `count` as 0 and a
//! `count` above [`ApiConfig::max_results`](crate::ApiConfig) is clamped (RFC 7644 §3.4.2.4).

use crate::config::ApiConfig;
use crate::error::{ApiError, ApiResult};
use actix_web::web;
use scimflow_core::ScimError;
use serde_json::Value;

/// The SearchRequest message URN (RFC 7644 §3.4.3).
pub const SEARCH_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// The decoded query string: name/value pairs in order.
#[derive(Debug, Clone, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn parse(query_string: &str) -> ApiResult<Self> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query_string).map_err(|error| {
            ApiError::from(ScimError::invalid_syntax(format!("the query string cannot be decoded: {error}")))
        })?;
        Ok(QueryParams(pairs.into_inner()))
    }

    /// The first value of parameter `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// `attributes` and `excludedAttributes`, for projections on single-resource answers.
    pub fn projection(&self) -> (Option<&str>, Option<&str>) {
        (self.get("attributes"), self.get("excludedAttributes"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    Ascending,
    Descending,
}

/// How the client pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    /// RFC 7644 index paging: 1-based `startIndex`.
    Index { start_index: usize },
    /// RFC 9865 cursor paging: `cursor` (empty for the first page).
    Cursor(String),
}

/// One list or search request, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub filter: Option<String>,
    pub sort_by: Option<String>,
    pub sort_order: SortOrder,
    pub paging: Paging,
    /// Page size after clamping; `0` asks for `totalResults` only.
    pub count: usize,
    pub attributes: Option<String>,
    pub excluded_attributes: Option<String>,
}

impl ListQuery {
    /// From the query string of `GET /Users`, `GET /Groups`.
    pub fn from_params(params: &QueryParams, config: &ApiConfig) -> ApiResult<Self> {
        let start_index =
            params.get("startIndex").map(|text| parse_integer("startIndex", text)).transpose()?;
        let count = params.get("count").map(|text| parse_integer("count", text)).transpose()?;
        build(
            RawQuery {
                filter: params.get("filter").map(str::to_owned),
                sort_by: params.get("sortBy").map(str::to_owned),
                sort_order: params.get("sortOrder").map(str::to_owned),
                start_index,
                count,
                cursor: params.get("cursor").map(str::to_owned),
                attributes: params.get("attributes").map(str::to_owned),
                excluded_attributes: params.get("excludedAttributes").map(str::to_owned),
            },
            config,
        )
    }

    /// From a SearchRequest body (`POST /.search`). `schemas` must name the SearchRequest URN.
    pub fn from_search_request(body: &Value, config: &ApiConfig) -> ApiResult<Self> {
        let schemas_ok = match member(body, "schemas") {
            Some(Value::Array(uris)) => uris
                .iter()
                .any(|uri| uri.as_str().is_some_and(|uri| uri.eq_ignore_ascii_case(SEARCH_REQUEST_SCHEMA))),
            Some(Value::String(uri)) => uri.eq_ignore_ascii_case(SEARCH_REQUEST_SCHEMA),
            _ => false,
        };
        if !schemas_ok {
            return Err(ScimError::invalid_syntax(format!(
                "a search request needs \"schemas\": [\"{SEARCH_REQUEST_SCHEMA}\"]"
            ))
            .into());
        }
        let text = |name: &str| -> ApiResult<Option<String>> {
            match member(body, name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) => Ok(Some(text.clone())),
                Some(_) => Err(ScimError::invalid_value(format!("\"{name}\" must be a string")).into()),
            }
        };
        let list = |name: &str| -> ApiResult<Option<String>> {
            match member(body, name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) => Ok(Some(text.clone())),
                Some(Value::Array(items)) => {
                    let names: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                    let names = names.ok_or_else(|| {
                        ApiError::from(ScimError::invalid_value(format!(
                            "\"{name}\" must be an array of strings"
                        )))
                    })?;
                    Ok(Some(names.join(",")))
                }
                Some(_) => {
                    Err(ScimError::invalid_value(format!("\"{name}\" must be an array of strings")).into())
                }
            }
        };
        let integer = |name: &str| -> ApiResult<Option<i64>> {
            match member(body, name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(number)) => match number.as_i64() {
                    Some(value) => Ok(Some(value)),
                    None if number.as_f64().is_some_and(|v| v > 0.0) => Ok(Some(i64::MAX)),
                    None => Ok(Some(0)),
                },
                Some(Value::String(text)) => parse_integer(name, text).map(Some),
                Some(_) => Err(ScimError::invalid_value(format!("\"{name}\" must be an integer")).into()),
            }
        };
        build(
            RawQuery {
                filter: text("filter")?,
                sort_by: text("sortBy")?,
                sort_order: text("sortOrder")?,
                start_index: integer("startIndex")?,
                count: integer("count")?,
                cursor: text("cursor")?,
                attributes: list("attributes")?,
                excluded_attributes: list("excludedAttributes")?,
            },
            config,
        )
    }
}

struct RawQuery {
    filter: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    cursor: Option<String>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

fn build(raw: RawQuery, config: &ApiConfig) -> ApiResult<ListQuery> {
    let non_blank = |value: Option<String>| value.filter(|text| !text.trim().is_empty());
    let sort_order = match raw.sort_order.as_deref().map(str::trim) {
        None | Some("") => SortOrder::Ascending,
        Some(text) if text.eq_ignore_ascii_case("ascending") => SortOrder::Ascending,
        Some(text) if text.eq_ignore_ascii_case("descending") => SortOrder::Descending,
        Some(other) => {
            return Err(ScimError::invalid_value(format!(
                "sortOrder must be \"ascending\" or \"descending\", got {other:?}"
            ))
            .into());
        }
    };
    let max_results = config.max_results;
    let count = match raw.count {
        None => config.default_page_size.min(max_results),
        Some(requested) if requested <= 0 => 0,
        Some(requested) => usize::try_from(requested).unwrap_or(usize::MAX).min(max_results),
    };
    let sort_by = non_blank(raw.sort_by);
    let paging = match raw.cursor {
        Some(cursor) => {
            if raw.start_index.is_some() {
                return Err(ScimError::invalid_value(
                    "send either cursor (RFC 9865) or startIndex (RFC 7644), not both",
                )
                .into());
            }
            if sort_by.is_some() {
                return Err(ScimError::invalid_value(
                    "cursor paging follows id order; drop sortBy or page with startIndex",
                )
                .into());
            }
            Paging::Cursor(cursor.trim().to_owned())
        }
        None => {
            let start_index = raw.start_index.unwrap_or(1).max(1);
            Paging::Index { start_index: usize::try_from(start_index).unwrap_or(usize::MAX) }
        }
    };
    Ok(ListQuery {
        filter: non_blank(raw.filter),
        sort_by,
        sort_order,
        paging,
        count,
        attributes: non_blank(raw.attributes),
        excluded_attributes: non_blank(raw.excluded_attributes),
    })
}

/// An integer parameter; anything else is 400 `invalidValue`.
fn parse_integer(name: &str, text: &str) -> ApiResult<i64> {
    let text = text.trim();
    match text.parse::<i64>() {
        Ok(value) => Ok(value),
        // An integer too large for i64 is still an integer: clamp it.
        Err(_)
            if !text.is_empty()
                && text.trim_start_matches(['-', '+']).bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(if text.starts_with('-') { i64::MIN } else { i64::MAX })
        }
        Err(_) => Err(ScimError::invalid_value(format!("{name} must be an integer, got {text:?}")).into()),
    }
}

/// A member of a JSON object, by case-insensitive name.
fn member<'v>(body: &'v Value, name: &str) -> Option<&'v Value> {
    body.as_object()?.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn query(text: &str) -> ApiResult<ListQuery> {
        ListQuery::from_params(&QueryParams::parse(text).unwrap(), &ApiConfig::default())
    }

    #[test]
    fn paging_parameters_are_normalised() {
        let q = query("startIndex=0&count=-5").unwrap();
        assert_eq!(q.paging, Paging::Index { start_index: 1 });
        assert_eq!(q.count, 0);
        let q = query("count=100000&aadOptscim062020").unwrap();
        assert_eq!(q.count, 1000);
        let q = query("").unwrap();
        assert_eq!(q.count, 100);
        assert_eq!(q.paging, Paging::Index { start_index: 1 });
        assert!(query("count=ten").is_err());
        let q = query("STARTINDEX=3&Count=99999999999999999999999").unwrap();
        assert_eq!(q.paging, Paging::Index { start_index: 3 });
        assert_eq!(q.count, 1000);
    }

    #[test]
    fn filter_and_sort_come_through() {
        let q = query("filter=userName+eq+%22x%22&sortBy=userName&sortOrder=Descending").unwrap();
        assert_eq!(q.filter.as_deref(), Some("userName eq \"x\""));
        assert_eq!(q.sort_order, SortOrder::Descending);
        assert!(query("sortOrder=sideways").is_err());
    }

    #[test]
    fn cursor_paging_excludes_start_index_and_sort() {
        assert_eq!(query("cursor=&count=2").unwrap().paging, Paging::Cursor(String::new()));
        assert!(query("cursor=&startIndex=1").is_err());
        assert!(query("cursor=abc&sortBy=userName").is_err());
    }

    #[test]
    fn search_request_needs_its_schema() {
        let config = ApiConfig::default();
        let body = json!({"schemas": [SEARCH_REQUEST_SCHEMA], "attributes": ["userName", "emails"],
            "filter": "userName sw \"a\"", "startIndex": 2, "count": 3});
        let q = ListQuery::from_search_request(&body, &config).unwrap();
        assert_eq!(q.attributes.as_deref(), Some("userName,emails"));
        assert_eq!(q.paging, Paging::Index { start_index: 2 });
        assert_eq!(q.count, 3);
        let error = ListQuery::from_search_request(&json!({"filter": "x pr"}), &config).unwrap_err();
        assert_eq!(error.status(), 400);
    }
}
