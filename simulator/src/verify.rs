//! Reads the server's final state back and compares it with the [`Model`].
//!
//! Only standard SCIM is needed for correctness: `GET /Users/{id}`, `GET /Groups/{id}` and,
//! when a group answer holds fewer members than expected, `GET /Groups?filter=members.value eq`
//! per unseen member (sampled). A paging endpoint `GET /Groups/{id}/members?cursor=` (scimflow
//! offers one, announced by `X-Scimflow-Members-Truncated`) is used when the server has it,
//! because it reads a million-member group exactly in a thousand requests; a server without it
//! answers 404 and the generic path is taken.
//!
//! The comparison functions are pure ([`compare_user`], [`compare_members`]) so they can be
//! tested on planted differences without a server.

use crate::client::{Call, ScimClient};
use crate::model::{ExpectedUser, Model};
use crate::orgchart::OrgChart;
use crate::shapes::{self, ENTERPRISE_SCHEMA};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

/// Differences listed in the report; the count covers all of them.
pub const MAX_LISTED_DIFFERENCES: usize = 200;
/// Member ids quoted per group difference.
const QUOTED_MEMBERS: usize = 10;
/// Page size asked of a member paging endpoint.
const MEMBER_PAGE: usize = 1000;
/// Inactive users checked to still be found by filter (E16, O6).
const INACTIVE_LOOKUPS: usize = 20;

/// One way the server's state differs from the model.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Difference {
    /// `User`, `Group` or `Lookup` (a filter answered wrongly while the run went on).
    pub resource: String,
    pub index: Option<u32>,
    pub id: Option<String>,
    pub field: String,
    pub expected: String,
    pub observed: String,
}

impl Difference {
    pub fn new(
        resource: &str,
        index: Option<u32>,
        id: Option<&str>,
        field: &str,
        expected: impl Into<String>,
        observed: impl Into<String>,
    ) -> Self {
        Difference {
            resource: resource.to_owned(),
            index,
            id: id.map(str::to_owned),
            field: field.to_owned(),
            expected: expected.into(),
            observed: observed.into(),
        }
    }
}

/// The outcome of verification.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct VerifySummary {
    pub users_checked: usize,
    pub users_not_provisioned: usize,
    pub groups_checked: usize,
    pub groups_not_provisioned: usize,
    pub memberships_expected: usize,
    /// Groups by how their membership was read: `get`, `members-endpoint`, `sampled-filter`.
    pub group_read_methods: BTreeMap<String, usize>,
    pub inactive_lookups_checked: usize,
    pub missing_members: usize,
    pub extra_members: usize,
    pub differences: usize,
    pub items: Vec<Difference>,
}

impl VerifySummary {
    pub fn passed(&self) -> bool {
        self.differences == 0
    }

    pub fn add(&mut self, differences: Vec<Difference>) {
        self.differences += differences.len();
        let room = MAX_LISTED_DIFFERENCES.saturating_sub(self.items.len());
        self.items.extend(differences.into_iter().take(room));
    }
}

/// A JSON member by case-insensitive name (SCIM attribute names are case-insensitive).
pub fn get_ci<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    let object = value.as_object()?;
    object.get(name).or_else(|| object.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

fn text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "(absent)".to_owned(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

/// The work email of a user as rendered: the `type: work` entry, else the primary, else the first.
fn work_email(user: &Value) -> Option<&Value> {
    let emails = get_ci(user, "emails")?.as_array()?;
    let kind = |email: &&Value, wanted: &str| {
        get_ci(email, "type").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case(wanted))
    };
    let entry = emails
        .iter()
        .find(|email| kind(email, "work"))
        .or_else(|| emails.iter().find(|email| get_ci(email, "primary") == Some(&Value::Bool(true))))
        .or_else(|| emails.first())?;
    get_ci(entry, "value")
}

/// The manager id as rendered: a complex `{value}`, or the shapes some servers keep (a plain
/// string, an array of one). An empty value means none.
fn manager_id(user: &Value) -> Option<String> {
    let manager = get_ci(get_ci(user, ENTERPRISE_SCHEMA)?, "manager")?;
    let id = match manager {
        Value::String(id) => Some(id.clone()),
        Value::Object(_) => get_ci(manager, "value").and_then(Value::as_str).map(str::to_owned),
        Value::Array(items) => {
            items.first().and_then(|m| get_ci(m, "value")).and_then(Value::as_str).map(str::to_owned)
        }
        _ => None,
    };
    id.filter(|id| !id.is_empty())
}

/// Every key attribute of a user, compared exactly (values are stored as sent, E17), plus the
/// rule that a password is never returned (O2).
pub fn compare_user(expected: &ExpectedUser, observed: &Value) -> Vec<Difference> {
    let mut differences = Vec::new();
    let mut check = |field: &str, want: &str, got: Option<&Value>| {
        if got.and_then(Value::as_str) != Some(want) {
            differences.push(Difference::new(
                "User",
                Some(expected.index),
                Some(&expected.id),
                field,
                want,
                text(got),
            ));
        }
    };
    let name = get_ci(observed, "name");
    let enterprise = get_ci(observed, ENTERPRISE_SCHEMA);
    check("id", &expected.id, get_ci(observed, "id"));
    check("userName", &expected.user_name, get_ci(observed, "userName"));
    check("externalId", &expected.external_id, get_ci(observed, "externalId"));
    check("displayName", &expected.display_name, get_ci(observed, "displayName"));
    check("name.givenName", &expected.given_name, name.and_then(|n| get_ci(n, "givenName")));
    check("name.familyName", &expected.family_name, name.and_then(|n| get_ci(n, "familyName")));
    check("title", &expected.title, get_ci(observed, "title"));
    check("emails[type eq \"work\"].value", &expected.email, work_email(observed));
    check(
        "enterprise:employeeNumber",
        &expected.employee_number,
        enterprise.and_then(|e| get_ci(e, "employeeNumber")),
    );
    check("enterprise:department", &expected.department, enterprise.and_then(|e| get_ci(e, "department")));
    // A boolean, not the "False" string Entra sent (E2).
    let active = get_ci(observed, "active");
    if active != Some(&Value::Bool(expected.active)) {
        differences.push(Difference::new(
            "User",
            Some(expected.index),
            Some(&expected.id),
            "active",
            expected.active.to_string(),
            text(active),
        ));
    }
    let manager = manager_id(observed);
    if manager != expected.manager_id {
        differences.push(Difference::new(
            "User",
            Some(expected.index),
            Some(&expected.id),
            "enterprise:manager.value",
            expected.manager_id.clone().unwrap_or_else(|| "(none)".into()),
            manager.unwrap_or_else(|| "(none)".into()),
        ));
    }
    if let Some(password) = get_ci(observed, "password") {
        differences.push(Difference::new(
            "User",
            Some(expected.index),
            Some(&expected.id),
            "password",
            "never returned",
            format!("returned ({})", if password.is_null() { "null" } else { "a value" }),
        ));
    }
    differences
}

fn quote(ids: &[&String]) -> String {
    let mut shown: Vec<&str> = ids.iter().take(QUOTED_MEMBERS).map(|id| id.as_str()).collect();
    shown.sort_unstable();
    let more = ids.len().saturating_sub(QUOTED_MEMBERS);
    if more > 0 { format!("{} and {more} more", shown.join(", ")) } else { shown.join(", ") }
}

/// Exact membership comparison; one [`Difference`] per direction, quoting some ids.
/// Returns (differences, missing count, extra count).
pub fn compare_members(
    group_index: u32,
    group_id: &str,
    expected: &HashSet<String>,
    observed: &HashSet<String>,
) -> (Vec<Difference>, usize, usize) {
    let missing: Vec<&String> = expected.difference(observed).collect();
    let extra: Vec<&String> = observed.difference(expected).collect();
    let mut differences = Vec::new();
    if !missing.is_empty() {
        differences.push(Difference::new(
            "Group",
            Some(group_index),
            Some(group_id),
            "members (missing)",
            format!("{} members", expected.len()),
            format!("{} missing: {}", missing.len(), quote(&missing)),
        ));
    }
    if !extra.is_empty() {
        differences.push(Difference::new(
            "Group",
            Some(group_index),
            Some(group_id),
            "members (unexpected)",
            format!("{} members", expected.len()),
            format!("{} unexpected: {}", extra.len(), quote(&extra)),
        ));
    }
    (differences, missing.len(), extra.len())
}

/// Member ids of a group body (`members[].value`).
pub fn member_ids(group: &Value) -> HashSet<String> {
    get_ci(group, "members")
        .and_then(Value::as_array)
        .map(|members| {
            members
                .iter()
                .filter_map(|m| get_ci(m, "value").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A group's membership as read from the server.
#[derive(Debug, Clone)]
pub struct MemberRead {
    pub display_name: Option<String>,
    pub members: HashSet<String>,
    /// Whether `members` is the whole membership (else only what one GET rendered).
    pub complete: bool,
    pub method: &'static str,
}

/// Reads a group's membership: GET, then the paging endpoint if the answer was short.
/// `Ok(None)` when the group does not exist.
pub async fn read_group(
    client: &ScimClient,
    group_id: &str,
    expected_count: usize,
) -> Result<Option<MemberRead>, String> {
    let reply =
        match client.send(Call::get("verify.group", format!("/Groups/{group_id}")).accepting(&[404])).await {
            Ok(reply) if reply.status == 404 => return Ok(None),
            Ok(reply) => reply,
            Err(error) => return Err(format!("GET /Groups/{group_id}: {error}")),
        };
    let display_name = get_ci(&reply.body, "displayName").and_then(Value::as_str).map(str::to_owned);
    let members = member_ids(&reply.body);
    let flagged =
        reply.header("X-Scimflow-Members-Truncated").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !flagged && members.len() >= expected_count {
        return Ok(Some(MemberRead { display_name, members, complete: true, method: "get" }));
    }
    match page_members(client, group_id, expected_count).await? {
        Some(all) => {
            Ok(Some(MemberRead { display_name, members: all, complete: true, method: "members-endpoint" }))
        }
        // Without a paging endpoint, a short list may be a truncation the server does not
        // announce, or real loss: the caller checks unseen members one by one.
        None => Ok(Some(MemberRead { display_name, members, complete: false, method: "sampled-filter" })),
    }
}

/// `GET /Groups/{id}/members?cursor=..&count=..` until no `nextCursor`; `Ok(None)` if the
/// server has no such endpoint.
async fn page_members(
    client: &ScimClient,
    group_id: &str,
    expected_count: usize,
) -> Result<Option<HashSet<String>>, String> {
    let mut members = HashSet::with_capacity(expected_count);
    let mut cursor: Option<String> = None;
    // Bounded, so a server that loops its cursor cannot hang verification.
    let max_pages = expected_count / MEMBER_PAGE + 1000;
    for _ in 0..max_pages {
        let mut path = format!("/Groups/{group_id}/members?count={MEMBER_PAGE}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={}", shapes::encode_query_value(cursor)));
        }
        let call = Call::get("verify.members_page", path).accepting(&[400, 404, 405, 501]);
        let reply =
            client.send(call).await.map_err(|error| format!("GET /Groups/{group_id}/members: {error}"))?;
        let Some(resources) =
            get_ci(&reply.body, "Resources").and_then(Value::as_array).filter(|_| reply.is_success())
        else {
            return Ok(None);
        };
        members.extend(
            resources.iter().filter_map(|m| get_ci(m, "value").and_then(Value::as_str)).map(str::to_owned),
        );
        match get_ci(&reply.body, "nextCursor").and_then(Value::as_str) {
            Some(next) if !next.is_empty() => cursor = Some(next.to_owned()),
            _ => return Ok(Some(members)),
        }
    }
    Err(format!("GET /Groups/{group_id}/members: still a nextCursor after {max_pages} pages"))
}

/// Whether the server says `user_id` is a member of `group_id`, by
/// `GET /Groups?filter=members.value eq "<user id>"` (paged by startIndex).
pub async fn has_member(client: &ScimClient, group_id: &str, user_id: &str) -> Result<bool, String> {
    let mut start = 1;
    loop {
        let path = format!("/Groups{}&startIndex={start}&count=100", shapes::groups_with_member(user_id));
        let reply = client.send(Call::get("verify.member_filter", path)).await.map_err(|e| e.to_string())?;
        let resources =
            get_ci(&reply.body, "Resources").and_then(Value::as_array).cloned().unwrap_or_default();
        if resources.iter().any(|g| get_ci(g, "id").and_then(Value::as_str) == Some(group_id)) {
            return Ok(true);
        }
        let total = get_ci(&reply.body, "totalResults").and_then(Value::as_u64).unwrap_or(0) as usize;
        start += resources.len();
        if resources.is_empty() || start > total {
            return Ok(false);
        }
    }
}

/// Verifies users (all, or the first `user_limit` provisioned in a seeded order), every
/// provisioned group, and that inactive users are still found by filter.
pub async fn verify(
    client: &ScimClient,
    chart: Arc<OrgChart>,
    model: Arc<Model>,
    concurrency: usize,
    user_limit: Option<usize>,
    member_sample: usize,
) -> VerifySummary {
    let summary = Arc::new(Mutex::new(VerifySummary::default()));
    let metrics = client.metrics().clone();
    let provisioned: Vec<u32> =
        (0..chart.users).filter(|index| model.users[*index as usize].id.is_some()).collect();
    let chosen: Vec<u32> = match user_limit {
        Some(limit) if limit < provisioned.len() => {
            let mut rng = crate::orgchart::stream(chart.seed, 0x5645_5249, 0); // "VERI"
            let mut picked: Vec<u32> = rand::seq::index::sample(&mut rng, provisioned.len(), limit)
                .into_iter()
                .map(|position| provisioned[position])
                .collect();
            picked.sort_unstable();
            picked
        }
        _ => provisioned.clone(),
    };
    {
        let mut summary = summary.lock().expect("summary lock");
        summary.users_not_provisioned = chart.users as usize - provisioned.len();
        summary.groups_not_provisioned = model.groups.iter().filter(|g| g.id.is_none()).count();
        summary.memberships_expected = model.memberships();
    }

    metrics.begin_phase("verify", (chosen.len() + model.groups.len()) as u64);
    let user_checks = futures_util::stream::iter(chosen).map(|index| {
        let (client, chart, model, summary) = (client.clone(), chart.clone(), model.clone(), summary.clone());
        tokio::spawn(async move {
            let Some(expected) = model.expected_user(&chart, index) else { return };
            let call = Call::get("verify.user", format!("/Users/{}", expected.id)).accepting(&[404]);
            let differences = match client.send(call).await {
                Ok(reply) if reply.status == 404 => {
                    vec![Difference::new("User", Some(index), Some(&expected.id), "exists", "yes", "404")]
                }
                Ok(reply) => compare_user(&expected, &reply.body),
                Err(error) => {
                    vec![Difference::new(
                        "User",
                        Some(index),
                        Some(&expected.id),
                        "readable",
                        "200",
                        error.to_string(),
                    )]
                }
            };
            client.metrics().step();
            let mut summary = summary.lock().expect("summary lock");
            summary.users_checked += 1;
            summary.add(differences);
        })
    });
    user_checks.buffer_unordered(concurrency).for_each(|_| async {}).await;

    let groups: Vec<u32> = (0..model.groups.len() as u32).collect();
    let group_checks = futures_util::stream::iter(groups).map(|index| {
        let (client, model, summary) = (client.clone(), model.clone(), summary.clone());
        tokio::spawn(async move {
            let outcome = verify_group(&client, &model, index, member_sample).await;
            client.metrics().step();
            if let Some((method, differences, missing, extra)) = outcome {
                let mut summary = summary.lock().expect("summary lock");
                summary.groups_checked += 1;
                *summary.group_read_methods.entry(method.to_owned()).or_default() += 1;
                summary.missing_members += missing;
                summary.extra_members += extra;
                summary.add(differences);
            }
        })
    });
    // Groups can be large: fewer at once, each may page.
    group_checks.buffer_unordered(concurrency.div_ceil(4).max(1)).for_each(|_| async {}).await;

    let inactive: Vec<u32> = (0..chart.users)
        .filter(|index| {
            let user = &model.users[*index as usize];
            user.id.is_some() && !user.active
        })
        .take(INACTIVE_LOOKUPS)
        .collect();
    for index in inactive {
        let Some(expected) = model.expected_user(&chart, index) else { continue };
        let path = format!("/Users{}", shapes::user_by_user_name(shapes::Style::Entra, &expected.user_name));
        let differences = match client.send(Call::get("verify.inactive_lookup", path)).await {
            Ok(reply) => {
                let found = get_ci(&reply.body, "Resources")
                    .and_then(Value::as_array)
                    .and_then(|r| {
                        r.iter().find(|u| get_ci(u, "id").and_then(Value::as_str) == Some(&expected.id))
                    })
                    .cloned();
                match found {
                    Some(user) if get_ci(&user, "active") == Some(&Value::Bool(false)) => vec![],
                    Some(user) => vec![Difference::new(
                        "Lookup",
                        Some(index),
                        Some(&expected.id),
                        "inactive user by userName filter: active",
                        "false",
                        text(get_ci(&user, "active")),
                    )],
                    None => vec![Difference::new(
                        "Lookup",
                        Some(index),
                        Some(&expected.id),
                        "inactive user found by userName filter (E16)",
                        "found",
                        "not in the results",
                    )],
                }
            }
            Err(error) => vec![Difference::new(
                "Lookup",
                Some(index),
                Some(&expected.id),
                "inactive user by userName filter",
                "200",
                error.to_string(),
            )],
        };
        let mut summary = summary.lock().expect("summary lock");
        summary.inactive_lookups_checked += 1;
        summary.add(differences);
    }
    metrics.end_phase();
    summary.lock().expect("summary lock").clone()
}

/// (read method, differences, missing, extra) of one group, `None` if never provisioned.
async fn verify_group(
    client: &ScimClient,
    model: &Model,
    index: u32,
    member_sample: usize,
) -> Option<(&'static str, Vec<Difference>, usize, usize)> {
    let group = &model.groups[index as usize];
    let group_id = group.id.clone()?;
    let expected: HashSet<String> =
        group.members.iter().filter_map(|user| model.user_id(user).map(str::to_owned)).collect();
    let read = match read_group(client, &group_id, expected.len()).await {
        Ok(Some(read)) => read,
        Ok(None) => {
            return Some((
                "get",
                vec![Difference::new("Group", Some(index), Some(&group_id), "exists", "yes", "404")],
                0,
                0,
            ));
        }
        Err(error) => {
            return Some((
                "get",
                vec![Difference::new("Group", Some(index), Some(&group_id), "readable", "200", error)],
                0,
                0,
            ));
        }
    };
    let mut differences = Vec::new();
    if read.display_name.as_deref() != Some(group.display_name.as_str()) {
        differences.push(Difference::new(
            "Group",
            Some(index),
            Some(&group_id),
            "displayName",
            group.display_name.clone(),
            read.display_name.clone().unwrap_or_else(|| "(absent)".into()),
        ));
    }
    if read.complete {
        let (found, missing, extra) = compare_members(index, &group_id, &expected, &read.members);
        differences.extend(found);
        return Some((read.method, differences, missing, extra));
    }
    // Partial read: what was rendered must be expected; a sample of the rest is asked for
    // one by one.
    let extra: Vec<&String> = read.members.difference(&expected).collect();
    let extra_count = extra.len();
    if !extra.is_empty() {
        differences.push(Difference::new(
            "Group",
            Some(index),
            Some(&group_id),
            "members (unexpected)",
            format!("{} members", expected.len()),
            format!("{} unexpected: {}", extra.len(), quote(&extra)),
        ));
    }
    let mut unseen: Vec<&String> = expected.difference(&read.members).collect();
    unseen.sort_unstable();
    let step = (unseen.len() / member_sample.max(1)).max(1);
    let mut missing = Vec::new();
    for user_id in unseen.iter().step_by(step).take(member_sample) {
        match has_member(client, &group_id, user_id).await {
            Ok(true) => {}
            Ok(false) => missing.push(*user_id),
            Err(error) => {
                differences.push(Difference::new(
                    "Group",
                    Some(index),
                    Some(&group_id),
                    "members (filter check)",
                    "200",
                    error,
                ));
                break;
            }
        }
    }
    if !missing.is_empty() {
        differences.push(Difference::new(
            "Group",
            Some(index),
            Some(&group_id),
            "members (missing, sampled)",
            format!("{} members", expected.len()),
            format!("{} of the sampled unseen members missing: {}", missing.len(), quote(&missing)),
        ));
    }
    Some((read.method, differences, missing.len(), extra_count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UserState;
    use crate::profile::Profile;
    use serde_json::json;

    fn observed(expected: &ExpectedUser) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_SCHEMA],
            "id": expected.id,
            "userName": expected.user_name,
            "externalId": expected.external_id,
            "displayName": expected.display_name,
            "name": {"givenName": expected.given_name, "familyName": expected.family_name},
            "title": expected.title,
            "active": expected.active,
            "emails": [{"type": "work", "value": expected.email, "primary": true}],
            ENTERPRISE_SCHEMA: {
                "employeeNumber": expected.employee_number,
                "department": expected.department,
                "manager": {"value": expected.manager_id, "$ref": "../Users/x"},
            },
        })
    }

    fn fixture() -> ExpectedUser {
        let chart = OrgChart::generate(9, &Profile::smoke());
        let mut model = Model::new(&chart);
        model.users[0].id = Some("boss".into());
        model.users[3] = UserState { id: Some("u3".into()), active: false, revision: 1, manager: Some(0) };
        model.expected_user(&chart, 3).unwrap()
    }

    #[test]
    fn an_identical_user_has_no_difference() {
        let expected = fixture();
        assert_eq!(compare_user(&expected, &observed(&expected)), vec![]);
    }

    #[test]
    fn planted_user_differences_are_all_found() {
        let expected = fixture();
        let mut changed = observed(&expected);
        changed["title"] = json!("Intern");
        changed["active"] = json!("False"); // stored as sent instead of coerced (E2)
        changed[ENTERPRISE_SCHEMA]["manager"] = json!({"value": "someone-else"});
        changed["emails"] = json!([{"type": "home", "value": "x@home"}]);
        changed["password"] = json!("secret");
        let differences = compare_user(&expected, &changed);
        let fields: Vec<&str> = differences.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["title", "emails[type eq \"work\"].value", "active", "enterprise:manager.value", "password"]
        );
        let active = differences.iter().find(|d| d.field == "active").unwrap();
        assert_eq!((active.expected.as_str(), active.observed.as_str()), ("false", "False"));
        assert_eq!(active.index, Some(3));
    }

    #[test]
    fn manager_shapes_and_case_are_tolerated_on_read() {
        let expected = fixture();
        let mut body = observed(&expected);
        body[ENTERPRISE_SCHEMA]["manager"] = json!("boss");
        assert!(compare_user(&expected, &body).is_empty());
        let mut body = observed(&expected);
        let user_name = body["userName"].take();
        body.as_object_mut().unwrap().remove("userName");
        body["USERNAME"] = user_name;
        assert!(compare_user(&expected, &body).is_empty(), "attribute names are case-insensitive");
        let mut no_manager = expected.clone();
        no_manager.manager_id = None;
        let mut body = observed(&no_manager);
        body[ENTERPRISE_SCHEMA]["manager"] = json!({"value": ""});
        assert!(compare_user(&no_manager, &body).is_empty(), "an emptied manager is none");
    }

    #[test]
    fn planted_membership_differences_are_found() {
        let expected: HashSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let same = expected.clone();
        assert_eq!(compare_members(1, "g", &expected, &same).0, vec![]);
        let observed: HashSet<String> = ["a", "c", "z"].iter().map(|s| s.to_string()).collect();
        let (differences, missing, extra) = compare_members(1, "g", &expected, &observed);
        assert_eq!((missing, extra), (1, 1));
        assert_eq!(differences.len(), 2);
        assert!(differences[0].observed.contains('b'));
        assert!(differences[1].observed.contains('z'));
    }

    #[test]
    fn summaries_count_everything_but_list_a_bounded_number() {
        let mut summary = VerifySummary::default();
        let one = Difference::new("User", Some(1), Some("x"), "title", "a", "b");
        summary.add(vec![one; MAX_LISTED_DIFFERENCES + 5]);
        assert_eq!(summary.differences, MAX_LISTED_DIFFERENCES + 5);
        assert_eq!(summary.items.len(), MAX_LISTED_DIFFERENCES);
        assert!(!summary.passed());
    }

    #[test]
    fn member_ids_of_a_group_body() {
        let body = json!({"members": [{"value": "a", "display": "A"}, {"value": "b"}]});
        assert_eq!(member_ids(&body).len(), 2);
        assert!(member_ids(&json!({"displayName": "x"})).is_empty());
    }
}
