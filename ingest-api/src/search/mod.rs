//! Queries over one tenant's Users and Groups: filter, sort, index and cursor paging.
//!
//! - [`params`]: the query parameters or SearchRequest body, normalised.
//! - [`cursor`]: RFC 9865 cursors (stateless positions in id order).
//! - [`sort`]: `sortBy` keys and ordering.
//! - [`views`]: the memberships a filter observes, attached for evaluation.
//!
//! A filter is parsed once (400 `invalidFilter` with the position of the error), checked
//! against the schema and a complexity limit, then planned: an index lookup (userName,
//! externalId, displayName, emails.value, id, members.value via the reverse membership index)
//! yields candidates, otherwise the resources of the type are scanned in id order, a bounded
//! batch at a time. Either way the full filter is evaluated on every candidate, so the plan only
//! has to be complete.
//!
//! Memory stays bounded by the page: index paging counts `totalResults` while keeping only the
//! requested window; cursor paging stops one match after the page. Only `sortBy` needs every
//! match at once, so it is capped ([`ApiConfig::max_sort_matches`](crate::ApiConfig)) and
//! answers 400 `tooMany` beyond. Without `sortBy` the order is by id: stable across pages (O10).

pub mod cursor;
pub mod params;
pub mod sort;
pub mod views;

use crate::error::{ApiError, ApiResult};
use crate::state::{ApiState, TenantStore};
use cursor::Position;
use params::{ListQuery, Paging};
use scimflow_core::filter::{
    self, EvalContext, Filter, IndexLookup, QueryPlan, complexity, parse_filter, plan, validate,
};
use scimflow_core::index::IndexName;
use scimflow_core::state::StoredResource;
use scimflow_core::{ResourceKind, ScimError};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use views::FilterNeeds;

/// One matching resource.
#[derive(Debug, Clone)]
pub struct Hit {
    pub kind: ResourceKind,
    pub id: String,
    pub stored: StoredResource,
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct Page {
    /// `totalResults`; `None` with cursor paging, where counting would cost a full scan per page.
    pub total: Option<usize>,
    /// `startIndex` of index paging.
    pub start_index: Option<usize>,
    pub hits: Vec<Hit>,
    /// RFC 9865 `nextCursor`, when another page follows.
    pub next_cursor: Option<String>,
}

/// The query of one resource type.
struct Target {
    kind: ResourceKind,
    filter: Option<Filter>,
    plan: QueryPlan,
    needs: FilterNeeds,
    /// Candidate ids of a `Lookup` plan, sorted; read once per query.
    candidates: Option<Vec<String>>,
}

/// Runs one query for one tenant.
pub struct Search<'a> {
    state: &'a ApiState,
    store: TenantStore<'a>,
    targets: Vec<Target>,
    /// member id -> groups holding it, for the ids a Group filter tests.
    member_groups: HashMap<String, HashSet<String>>,
    group_names: HashMap<String, Option<String>>,
}

impl<'a> Search<'a> {
    /// Parses and plans `filter` for each of `kinds` (searched in that order). With several
    /// kinds (`POST /.search`), a kind the filter does not fit (e.g. `userName` for Groups) is
    /// skipped; the filter is rejected only if it fits none.
    pub fn prepare(
        state: &'a ApiState,
        tenant_id: &'a str,
        kinds: &[ResourceKind],
        filter_text: Option<&str>,
    ) -> ApiResult<Search<'a>> {
        let registry = state.registry.as_ref();
        let parsed = match filter_text {
            Some(text) => {
                let filter = parse_filter(text)?;
                let size = complexity(&filter);
                let limit = state.config.max_filter_complexity;
                if size > limit {
                    return Err(ScimError::invalid_filter(format!(
                        "the filter has {size} terms; at most {limit} are accepted, split the query"
                    ))
                    .into());
                }
                Some(filter)
            }
            None => None,
        };
        let mut targets = Vec::new();
        let mut first_error = None;
        for &kind in kinds {
            let ctx = EvalContext { registry, kind };
            let Some(filter) = &parsed else {
                targets.push(Target {
                    kind,
                    filter: None,
                    plan: QueryPlan::Scan,
                    needs: FilterNeeds::default(),
                    candidates: None,
                });
                continue;
            };
            if let Err(error) = validate(&ctx, filter) {
                first_error.get_or_insert(error);
                continue;
            }
            targets.push(Target {
                kind,
                filter: Some(filter.clone()),
                plan: plan(&ctx, filter),
                needs: FilterNeeds::of(registry, kind, filter),
                candidates: None,
            });
        }
        if targets.is_empty() {
            let error =
                first_error.unwrap_or_else(|| ScimError::invalid_filter("the filter fits no resource type"));
            return Err(error.into());
        }
        Ok(Search {
            state,
            store: state.store(tenant_id),
            targets,
            member_groups: HashMap::new(),
            group_names: HashMap::new(),
        })
    }

    /// Runs the query and returns the requested page.
    pub async fn run(mut self, query: &ListQuery) -> ApiResult<Page> {
        self.load_member_groups().await?;
        if let Some(sort_by) = &query.sort_by {
            return self.sorted_page(query, sort_by).await;
        }
        match &query.paging {
            Paging::Index { start_index } => self.index_page(*start_index, query.count).await,
            Paging::Cursor(cursor) => self.cursor_page(cursor, query.count).await,
        }
    }

    /// Index paging in id order: counts every match, keeps only the window. A target without
    /// a filter takes its count from the store when it has one and stops reading once the
    /// window is full, so paging through an unfiltered import costs O(startIndex + count) per
    /// page instead of a full scan.
    async fn index_page(&mut self, start_index: usize, count: usize) -> ApiResult<Page> {
        let mut to_skip = start_index.saturating_sub(1);
        let mut total = 0usize;
        let mut hits = Vec::new();
        for index in 0..self.targets.len() {
            let known_total = match self.targets[index].filter {
                None => self.store.resource_count(self.targets[index].kind).await?,
                Some(_) => None,
            };
            let known_total = known_total.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
            if let Some(known) = known_total
                && (to_skip >= known || hits.len() == count)
            {
                to_skip -= to_skip.min(known);
                total += known;
                continue;
            }
            let mut counted = 0usize;
            let mut after: Option<String> = None;
            'target: loop {
                let batch = self.next_batch(index, after.as_deref()).await?;
                let Some((batch, last)) = batch else { break };
                after = Some(last);
                for hit in batch {
                    counted += 1;
                    if to_skip > 0 {
                        to_skip -= 1;
                    } else if hits.len() < count {
                        hits.push(hit);
                    }
                    if known_total.is_some() && to_skip == 0 && hits.len() == count {
                        break 'target;
                    }
                }
            }
            total += known_total.unwrap_or(counted);
        }
        Ok(Page { total: Some(total), start_index: Some(start_index), hits, next_cursor: None })
    }

    /// Cursor paging in id order: the `count` matches after the cursor, and a `nextCursor` when
    /// at least one more exists.
    async fn cursor_page(&mut self, cursor: &str, count: usize) -> ApiResult<Page> {
        let position = if cursor.is_empty() { None } else { Some(Position::decode(cursor)?) };
        let first_target = match &position {
            None => 0,
            Some(position) => {
                self.targets.iter().position(|target| Some(target.kind) == position.kind).ok_or_else(
                    || {
                        ApiError::invalid_cursor(
                            "the cursor belongs to another endpoint; start again with an empty cursor",
                        )
                    },
                )?
            }
        };
        let mut hits: Vec<Hit> = Vec::new();
        let mut more = false;
        'targets: for index in first_target..self.targets.len() {
            let mut after = match &position {
                Some(position) if index == first_target => Some(position.id.clone()),
                _ => None,
            };
            loop {
                let batch = self.next_batch(index, after.as_deref()).await?;
                let Some((batch, last)) = batch else { break };
                after = Some(last);
                for hit in batch {
                    if hits.len() == count {
                        more = true;
                        break 'targets;
                    }
                    hits.push(hit);
                }
            }
        }
        let next_cursor = match hits.last() {
            Some(last) if more => Some(Position { kind: Some(last.kind), id: last.id.clone() }.encode()),
            _ => None,
        };
        Ok(Page { total: None, start_index: None, hits, next_cursor })
    }

    /// `sortBy`: every match (capped), sorted, then the index window.
    async fn sorted_page(&mut self, query: &ListQuery, sort_by: &str) -> ApiResult<Page> {
        let registry = self.state.registry.as_ref();
        if !self.targets.iter().any(|target| sort::is_known(registry, target.kind, sort_by)) {
            return Err(
                ScimError::invalid_value(format!("sortBy {sort_by:?} names no known attribute")).into()
            );
        }
        let cap = self.state.config.max_sort_matches;
        let mut keyed = Vec::new();
        for index in 0..self.targets.len() {
            let mut after: Option<String> = None;
            loop {
                let batch = self.next_batch(index, after.as_deref()).await?;
                let Some((batch, last)) = batch else { break };
                after = Some(last);
                for hit in batch {
                    if keyed.len() == cap {
                        return Err(ScimError::too_many(format!(
                            "more than {cap} resources match; sorting needs a narrower filter (or drop sortBy and page in id order)"
                        ))
                        .into());
                    }
                    let key = sort::sort_key(registry, hit.kind, sort_by, &hit.stored.resource);
                    keyed.push((key, hit));
                }
            }
        }
        keyed.sort_by(|(left_key, left), (right_key, right)| {
            sort::compare((left_key, &left.id), (right_key, &right.id), query.sort_order)
        });
        let total = keyed.len();
        let start_index = match query.paging {
            Paging::Index { start_index } => start_index,
            Paging::Cursor(_) => 1,
        };
        let hits = keyed
            .into_iter()
            .skip(start_index.saturating_sub(1))
            .take(query.count)
            .map(|(_, hit)| hit)
            .collect();
        Ok(Page { total: Some(total), start_index: Some(start_index), hits, next_cursor: None })
    }

    /// The next batch of matches of target `index` with ids after `after`, and the last id read
    /// (matching or not) to continue from; `None` when the target is exhausted.
    async fn next_batch(
        &mut self,
        index: usize,
        after: Option<&str>,
    ) -> ApiResult<Option<(Vec<Hit>, String)>> {
        let batch_size = self.state.config.scan_batch_size.max(1);
        let kind = self.targets[index].kind;
        let rows: Vec<(String, Option<StoredResource>)> = match &self.targets[index].plan {
            QueryPlan::Scan => self
                .store
                .resources_page(kind, after, batch_size)
                .await?
                .into_iter()
                .map(|(id, stored)| (id, Some(stored)))
                .collect(),
            QueryPlan::Lookup(lookups) => {
                if self.targets[index].candidates.is_none() {
                    let lookups = lookups.clone();
                    let mut ids = self.candidate_ids(kind, &lookups).await?;
                    ids.sort();
                    ids.dedup();
                    self.targets[index].candidates = Some(ids);
                }
                let candidates = self.targets[index].candidates.as_deref().unwrap_or_default();
                let start = after.map_or(0, |after| candidates.partition_point(|id| id.as_str() <= after));
                let ids: Vec<String> = candidates.iter().skip(start).take(batch_size).cloned().collect();
                let mut rows = Vec::with_capacity(ids.len());
                for id in ids {
                    // An index may list a resource deleted since: it is skipped, but still a
                    // position to continue after.
                    let stored = self.store.resource(kind, &id).await?;
                    rows.push((id, stored));
                }
                rows
            }
        };
        let Some(last) = rows.last().map(|(id, _)| id.clone()) else { return Ok(None) };
        let mut hits = Vec::new();
        for (id, stored) in rows {
            let Some(stored) = stored else { continue };
            if self.matches(index, &id, &stored).await? {
                hits.push(Hit { kind, id, stored });
            }
        }
        Ok(Some((hits, last)))
    }

    /// Candidate ids of an index plan (unsorted, may repeat).
    async fn candidate_ids(&self, kind: ResourceKind, lookups: &[IndexLookup]) -> ApiResult<Vec<String>> {
        let mut ids = Vec::new();
        for lookup in lookups {
            let index = match lookup {
                IndexLookup::Id(id) => {
                    ids.push(id.clone());
                    continue;
                }
                IndexLookup::MemberValue(member_id) => {
                    ids.extend(self.store.groups_of(member_id).await?);
                    continue;
                }
                IndexLookup::UserName(_) => IndexName::UserName,
                IndexLookup::ExternalId(_) => IndexName::ExternalId,
                IndexLookup::DisplayName(_) => IndexName::DisplayName,
                IndexLookup::EmailValue(_) => IndexName::EmailValue,
            };
            ids.extend(self.store.index_lookup(kind, index, lookup.key()).await?);
        }
        Ok(ids)
    }

    /// Reads, once per query, the groups of every member id a Group filter tests.
    async fn load_member_groups(&mut self) -> ApiResult<()> {
        let ids: Vec<String> =
            self.targets.iter().flat_map(|target| target.needs.member_ids.iter().cloned()).collect();
        for id in ids {
            if !self.member_groups.contains_key(&id) {
                let groups = self.store.groups_of(&id).await?.into_iter().collect();
                self.member_groups.insert(id, groups);
            }
        }
        Ok(())
    }

    /// Evaluates the target's filter on one resource, with the memberships it observes attached.
    async fn matches(&mut self, index: usize, id: &str, stored: &StoredResource) -> ApiResult<bool> {
        let target = &self.targets[index];
        let Some(filter) = &target.filter else { return Ok(true) };
        let ctx = EvalContext { registry: self.state.registry.as_ref(), kind: target.kind };
        if target.needs.is_empty() {
            return Ok(filter::matches(&ctx, filter, &stored.resource));
        }
        let filter = filter.clone();
        let needs = target.needs.clone();
        let mut view = stored.resource.clone();
        if needs.all_members {
            let members = self.all_members(id).await?;
            insert(&mut view, "members", members);
        } else if !needs.member_ids.is_empty() {
            let members = needs
                .member_ids
                .iter()
                .filter(|member| self.member_groups.get(*member).is_some_and(|groups| groups.contains(id)))
                .map(|member| json!({"value": member}))
                .collect();
            insert(&mut view, "members", members);
        }
        if needs.user_groups {
            let groups = self.user_groups(id).await?;
            insert(&mut view, "groups", groups);
        }
        Ok(filter::matches(&ctx, &filter, &view))
    }

    /// All members of a group for evaluation; 400 `tooMany` above the member cap.
    async fn all_members(&self, group_id: &str) -> ApiResult<Vec<Value>> {
        let cap = self.state.config.member_page_cap;
        let page_size = self.state.config.scan_batch_size.max(1);
        let mut members = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.members_page(group_id, after.as_deref(), page_size).await?;
            let complete = page.len() < page_size;
            after = page.last().map(|member| member.value.clone());
            for member in page {
                if members.len() == cap {
                    return Err(ScimError::too_many(format!(
                        "group {group_id} has more than {cap} members; filter members with \
                         members.value eq \"<id>\" or members[value eq \"<id>\"] instead"
                    ))
                    .into());
                }
                let mut element = Map::new();
                element.insert("value".into(), Value::String(member.value));
                element.insert("type".into(), Value::String(member.kind.name().to_owned()));
                if let Some(display) = member.display {
                    element.insert("display".into(), Value::String(display));
                }
                members.push(Value::Object(element));
            }
            if complete {
                return Ok(members);
            }
        }
    }

    /// The `groups` of a user for evaluation: value, type and display.
    async fn user_groups(&mut self, user_id: &str) -> ApiResult<Vec<Value>> {
        let mut groups = Vec::new();
        for group_id in self.store.groups_of(user_id).await? {
            if !self.group_names.contains_key(&group_id) {
                let name = self.store.resource(ResourceKind::Group, &group_id).await?.and_then(|group| {
                    group.resource.get("displayName").and_then(Value::as_str).map(str::to_owned)
                });
                self.group_names.insert(group_id.clone(), name);
            }
            let mut element = Map::new();
            element.insert("value".into(), Value::String(group_id.clone()));
            element.insert("type".into(), Value::String("direct".into()));
            if let Some(Some(name)) = self.group_names.get(&group_id) {
                element.insert("display".into(), Value::String(name.clone()));
            }
            groups.push(Value::Object(element));
        }
        Ok(groups)
    }
}

fn insert(view: &mut Value, key: &str, values: Vec<Value>) {
    if let Some(object) = view.as_object_mut() {
        object.insert(key.to_owned(), Value::Array(values));
    }
}
