//! The phases of a run, driven like an IdP drives a SCIM server:
//!
//! 1. `probe`: Entra's Test Connection, a filter on a random GUID (E10). A failure here
//!    (wrong URL, bad token) stops the run before any load.
//! 2. `users`: the initial provisioning burst: per user an existence check by filter, then
//!    POST (or, when the user exists or the POST answers 409, adoption: Entra PATCHes every
//!    attribute, Okta GETs and PUTs the whole user).
//! 3. `managers`: Entra sets managers with a separate PATCH once both users exist (Okta sent
//!    them on create when it could).
//! 4. `groups`: per group an existence check by displayName, then POST (or adoption, emptying
//!    the group).
//! 5. `members`: group push; each group's members are split into PATCHes of
//!    `members_per_patch`, with `patches_in_flight` of them concurrently on the same group.
//! 6. `churn`: steady change (see [`ChurnKind`]), bounded by count and time.
//! 7. `verify`: the final state against the model ([`crate::verify`]).
//!
//! Consistency: the model only records acknowledged writes, and operations that would race
//! on the same resource are serialised by per-resource locks (a group's lock also covers the
//! concurrent PATCHes of one split change, whose member sets are disjoint and so commute).
//! Requests in flight are bounded globally in the client; the rate limit is applied there too.

use crate::client::{Call, CallError, ClientOptions, Reply, ScimClient};
use crate::metrics::{Metrics, progress_line};
use crate::model::{Model, UserState};
use crate::orgchart::{CHURN_SALT, OrgChart, stream};
use crate::profile::Profile;
use crate::report::{self, RunReport};
use crate::shapes::{self, ManagerShape, MemberRef, Style};
use crate::verify::{self, Difference, get_ci};
use futures_util::StreamExt;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use reqwest::Method;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Stripes of the per-user lock: enough that unrelated users rarely share one.
const USER_LOCK_STRIPES: usize = 4096;
/// Draws tried when looking for a random user or group with some property.
const DRAWS: usize = 32;

/// What to run against which server.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// SCIM base URL (`https://host/scim/v2`).
    pub url: String,
    pub token: String,
    pub profile: Profile,
    pub seed: u64,
    /// Print a progress line on stderr about every second.
    pub progress: bool,
    /// Read the final state back and compare (the point of the tool; off only to measure load).
    pub verify: bool,
}

/// The kinds of churn operation, with their share of the churn phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChurnKind {
    /// Add 0-5 and remove 0-5 members of one group in one PATCH.
    SmallMembership,
    /// Add or remove up to `members_per_patch * patches_in_flight` members (at most half the
    /// group's generated size), split into concurrent PATCHes.
    LargeMembership,
    /// Okta's `replace members` of a small group (O8); Entra groups get a small change instead.
    ReplaceMembers,
    /// A new attribute revision: Entra PATCH (paths or path-less), Okta GET + PUT.
    UserUpdate,
    Deactivate,
    /// Entra `"True"`; Okta's filter, GET, PATCH sequence (O6).
    Reactivate,
    ManagerChange,
    GroupRename,
    /// A user found by filter, checked against the model as it goes.
    UserLookup,
    GroupLookup,
    /// `GET /Groups/{id}?excludedAttributes=members` (E11).
    GroupGetWithoutMembers,
}

const CHURN_MIX: &[(ChurnKind, u32)] = &[
    (ChurnKind::SmallMembership, 26),
    (ChurnKind::LargeMembership, 3),
    (ChurnKind::ReplaceMembers, 3),
    (ChurnKind::UserUpdate, 20),
    (ChurnKind::Deactivate, 10),
    (ChurnKind::Reactivate, 5),
    (ChurnKind::ManagerChange, 5),
    (ChurnKind::GroupRename, 3),
    (ChurnKind::UserLookup, 15),
    (ChurnKind::GroupLookup, 6),
    (ChurnKind::GroupGetWithoutMembers, 4),
];

/// Picks the kind of churn operation from the weights of [`CHURN_MIX`].
pub fn churn_kind(rng: &mut ChaCha8Rng) -> ChurnKind {
    let total: u32 = CHURN_MIX.iter().map(|(_, weight)| weight).sum();
    let mut target = rng.random_range(0..total);
    for (kind, weight) in CHURN_MIX {
        if target < *weight {
            return *kind;
        }
        target -= weight;
    }
    CHURN_MIX[0].0
}

/// State shared by every task of a run.
struct Shared {
    chart: Arc<OrgChart>,
    model: Mutex<Model>,
    client: ScimClient,
    profile: Profile,
    deadline: Option<Instant>,
    user_locks: Vec<tokio::sync::Mutex<()>>,
    group_locks: Vec<tokio::sync::Mutex<()>>,
    /// Cumulative generated group sizes, for size-weighted picks.
    group_weights: Vec<u64>,
    /// Filters answered wrongly while the run went on.
    inline: Mutex<Vec<Difference>>,
}

impl Shared {
    fn model(&self) -> std::sync::MutexGuard<'_, Model> {
        self.model.lock().expect("model lock")
    }

    fn expired(&self, until: Option<Instant>) -> bool {
        let now = Instant::now();
        self.deadline.is_some_and(|d| now >= d) || until.is_some_and(|d| now >= d)
    }

    fn metrics(&self) -> &Metrics {
        self.client.metrics()
    }

    fn user_lock(&self, index: u32) -> &tokio::sync::Mutex<()> {
        &self.user_locks[index as usize % self.user_locks.len()]
    }

    fn note(&self, difference: Difference) {
        self.inline.lock().expect("inline lock").push(difference);
    }

    async fn send(&self, call: Call<'_>) -> Result<Reply, CallError> {
        self.client.send(call).await
    }
}

/// A finished run: the report, and the org chart and final model it was checked against
/// (to verify again later, or to inspect).
pub struct Outcome {
    pub report: RunReport,
    pub chart: Arc<OrgChart>,
    pub model: Arc<Model>,
}

/// Runs every phase and returns the report. Errors only when the run cannot start (invalid
/// profile, unreachable server, rejected token).
pub async fn run(config: RunConfig) -> anyhow::Result<RunReport> {
    Ok(run_detailed(config).await?.report)
}

/// [`run`], also returning the org chart and the final model.
pub async fn run_detailed(config: RunConfig) -> anyhow::Result<Outcome> {
    config.profile.validate().map_err(|message| anyhow::anyhow!("invalid profile: {message}"))?;
    let started_at = chrono::Utc::now();
    let profile = config.profile.clone();
    let chart = {
        let profile = profile.clone();
        Arc::new(tokio::task::spawn_blocking(move || OrgChart::generate(config.seed, &profile)).await?)
    };
    let metrics = Arc::new(Metrics::new());
    let client = ScimClient::new(
        &config.url,
        &config.token,
        metrics.clone(),
        &ClientOptions {
            concurrency: profile.concurrency,
            rate: profile.rate,
            timeout: Duration::from_secs_f64(profile.request_timeout_seconds),
            max_retries: profile.max_retries,
        },
    )?;
    let group_weights = chart
        .groups
        .iter()
        .scan(0u64, |total, group| {
            *total += group.members.len().max(1) as u64;
            Some(*total)
        })
        .collect();
    let shared = Arc::new(Shared {
        model: Mutex::new(Model::new(&chart)),
        chart: chart.clone(),
        client: client.clone(),
        deadline: profile.duration_seconds.map(|s| Instant::now() + Duration::from_secs_f64(s)),
        user_locks: (0..USER_LOCK_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        group_locks: (0..chart.groups.len()).map(|_| tokio::sync::Mutex::new(())).collect(),
        group_weights,
        profile: profile.clone(),
        inline: Mutex::new(Vec::new()),
    });
    let progress = config.progress.then(|| tokio::spawn(print_progress(metrics.clone())));

    let outcome = drive(&shared).await;
    let load_elapsed = metrics.elapsed();
    metrics.end_phase();
    if let Err(error) = outcome {
        if let Some(progress) = progress {
            progress.abort();
        }
        return Err(error);
    }

    let model = Arc::new(std::mem::take(&mut *shared.model()));
    let mut verification = None;
    if config.verify {
        let mut summary = verify::verify(
            &client.for_verification(),
            chart.clone(),
            model.clone(),
            profile.concurrency,
            profile.verify_users,
            profile.verify_member_sample,
        )
        .await;
        summary.add(std::mem::take(&mut *shared.inline.lock().expect("inline lock")));
        verification = Some(summary);
    }
    if let Some(progress) = progress {
        progress.abort();
    }
    let report = report::build(report::Inputs {
        target: config.url.clone(),
        profile,
        seed: config.seed,
        started_at,
        chart: &chart,
        model: &model,
        metrics: &metrics,
        load_elapsed,
        verification,
    });
    Ok(Outcome { report, chart, model })
}

async fn print_progress(metrics: Arc<Metrics>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let mut last = metrics.snapshot();
    loop {
        ticker.tick().await;
        let now = metrics.snapshot();
        let seconds = (now.elapsed - last.elapsed).as_secs_f64().max(1e-3);
        eprintln!("{}", progress_line(&now, (now.requests - last.requests) as f64 / seconds));
        last = now;
    }
}

async fn drive(shared: &Arc<Shared>) -> anyhow::Result<()> {
    probe(shared).await?;
    let concurrency = shared.profile.concurrency;
    let users = shared.chart.users;

    shared.metrics().begin_phase("users", users as u64);
    for_each_spawned(shared, 0..users, concurrency, provision_user).await;
    if shared.model().provisioned_users() == 0 {
        // Every create failed: the error samples say why; more load would only repeat it.
        return Ok(());
    }

    let pending: Vec<u32> = {
        let model = shared.model();
        (0..users).filter(|index| needs_manager(&shared.chart, &model, *index)).collect()
    };
    shared.metrics().begin_phase("managers", pending.len() as u64);
    for_each_spawned(shared, pending, concurrency, set_initial_manager).await;

    let groups = shared.chart.groups.len() as u32;
    shared.metrics().begin_phase("groups", groups as u64);
    for_each_spawned(shared, 0..groups, concurrency, provision_group).await;

    let chunks: usize =
        shared.chart.groups.iter().map(|g| g.members.len().div_ceil(shared.profile.members_per_patch)).sum();
    shared.metrics().begin_phase("members", chunks as u64);
    // Each group task runs `patches_in_flight` PATCHes at once; enough groups run side by side
    // to fill the global bound.
    let parallel_groups = concurrency.div_ceil(shared.profile.patches_in_flight).max(1);
    for_each_spawned(shared, 0..groups, parallel_groups, push_members).await;

    let churn_ops = shared.profile.churn_ops;
    shared.metrics().begin_phase("churn", churn_ops as u64);
    let churn_until = shared.profile.churn_seconds.map(|s| Instant::now() + Duration::from_secs_f64(s));
    for_each_spawned(shared, 0..churn_ops as u64, concurrency, move |shared, k| {
        churn(shared, k, churn_until)
    })
    .await;
    Ok(())
}

/// Runs `task` for every item, each as its own tokio task (so work spreads over cores), at
/// most `limit` at once.
async fn for_each_spawned<I, T, F, Fut>(shared: &Arc<Shared>, items: I, limit: usize, task: F)
where
    I: IntoIterator<Item = T>,
    T: Send + 'static,
    F: Fn(Arc<Shared>, T) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    futures_util::stream::iter(items)
        .map(|item| {
            let (shared, task) = (shared.clone(), task.clone());
            tokio::spawn(async move { task(shared, item).await })
        })
        .buffer_unordered(limit.max(1))
        .for_each(|joined| async move {
            if let Err(error) = joined {
                eprintln!("scimflow-simulate: a task failed: {error}");
            }
        })
        .await;
}

/// Entra's Test Connection (E10): must answer 200 with an empty list.
async fn probe(shared: &Arc<Shared>) -> anyhow::Result<()> {
    shared.metrics().begin_phase("probe", 1);
    let mut rng = stream(shared.chart.seed, CHURN_SALT, u64::MAX);
    let guid = uuid::Builder::from_random_bytes(rng.random()).into_uuid().to_string();
    let path = format!("/Users{}", shapes::test_connection(&guid));
    let reply = shared.send(Call::get("probe", path.clone())).await.map_err(|error| {
        anyhow::anyhow!("Test Connection failed (GET {path}): {error}; check --url and --token")
    })?;
    let total = get_ci(&reply.body, "totalResults").and_then(Value::as_u64);
    let listed = resources(&reply.body).len();
    if total != Some(0) || listed != 0 {
        shared.note(Difference::new(
            "Lookup",
            None,
            None,
            "Test Connection: filter on a random GUID (E10)",
            "200, totalResults 0",
            format!("totalResults {total:?}, {listed} resources"),
        ));
    }
    shared.metrics().step();
    Ok(())
}

fn resources(body: &Value) -> Vec<Value> {
    get_ci(body, "Resources").and_then(Value::as_array).cloned().unwrap_or_default()
}

fn first_id(body: &Value) -> Option<String> {
    resources(body).first().and_then(|r| get_ci(r, "id")).and_then(Value::as_str).map(str::to_owned)
}

fn body_id(body: &Value) -> Option<String> {
    get_ci(body, "id").and_then(Value::as_str).map(str::to_owned)
}

fn manager_ref(shared: &Shared, index: u32) -> (Option<u32>, Option<String>) {
    let manager = shared.chart.manager_of(index);
    let id = manager.and_then(|m| shared.model().user_id(m).map(str::to_owned));
    (manager.filter(|_| id.is_some()), id)
}

async fn provision_user(shared: Arc<Shared>, index: u32) {
    if !shared.expired(None) {
        provision_user_once(&shared, index).await;
    }
    shared.metrics().step();
}

async fn provision_user_once(shared: &Shared, index: u32) {
    let spec = shared.chart.user(index, 0);
    let lookup = format!("/Users{}", shapes::user_by_user_name(spec.style, &spec.user_name));
    let Ok(found) = shared.send(Call::get("user.lookup", lookup.clone())).await else { return };
    if let Some(id) = first_id(&found.body) {
        adopt_user(shared, index, id).await;
        return;
    }
    // Okta sends the manager on create when it knows it; Entra sets it later by PATCH.
    let (manager, manager_id) =
        if spec.style == Style::Okta { manager_ref(shared, index) } else { (None, None) };
    let body = shapes::user_create(&spec, manager_id.as_deref());
    let call = Call::new("user.create", Method::POST, "/Users")
        .with_body(&body, spec.style.content_type())
        .accepting(&[409]);
    match shared.send(call).await {
        Ok(reply) if reply.status == 409 => {
            // It exists after all (a concurrent create, or a lookup that missed it): find it
            // and update it, as Entra does.
            let Ok(found) = shared.send(Call::get("user.lookup", lookup.clone())).await else { return };
            match first_id(&found.body) {
                Some(id) => adopt_user(shared, index, id).await,
                None => shared.note(Difference::new(
                    "Lookup",
                    Some(index),
                    None,
                    "userName filter after 409 on create",
                    format!("the existing user {:?}", spec.user_name),
                    "no result",
                )),
            }
        }
        Ok(reply) => match body_id(&reply.body) {
            Some(id) => {
                shared.model().users[index as usize] =
                    UserState { id: Some(id), active: true, revision: 0, manager };
            }
            None => shared.note(Difference::new(
                "User",
                Some(index),
                None,
                "id in the POST /Users answer",
                "an id",
                reply.body.to_string(),
            )),
        },
        Err(_) => {}
    }
}

/// Brings an existing user to revision 0, active, with its manager: Entra by one PATCH of
/// every attribute, Okta by GET then full PUT (O4).
async fn adopt_user(shared: &Shared, index: u32, id: String) {
    let spec = shared.chart.user(index, 0);
    let (manager, manager_id) = manager_ref(shared, index);
    let path = format!("/Users/{id}");
    let done = match spec.style {
        Style::Entra => {
            let mut body = shapes::entra_user_replace_all(&spec, true);
            let manager_op = shapes::entra_set_manager(manager_id.as_deref(), ManagerShape::PlainString);
            if let (Some(ops), Some(more)) =
                (body["Operations"].as_array_mut(), manager_op["Operations"].as_array())
            {
                ops.extend(more.iter().cloned());
            }
            let call =
                Call::new("user.patch", Method::PATCH, path).with_body(&body, spec.style.content_type());
            shared.send(call).await.is_ok()
        }
        Style::Okta => okta_put(shared, &id, &spec, true, manager_id.as_deref()).await,
    };
    if done {
        shared.model().users[index as usize] = UserState { id: Some(id), active: true, revision: 0, manager };
    }
}

/// Okta's full update: GET the user, write its attributes over the body, PUT it back.
async fn okta_put(
    shared: &Shared,
    id: &str,
    spec: &crate::orgchart::UserSpec,
    active: bool,
    manager_id: Option<&str>,
) -> bool {
    let path = format!("/Users/{id}");
    let Ok(current) = shared.send(Call::get("user.get", path.clone())).await else { return false };
    let body = shapes::okta_user_put(&current.body, spec, active, manager_id);
    let call = Call::new("user.put", Method::PUT, path).with_body(&body, Style::Okta.content_type());
    shared.send(call).await.is_ok()
}

fn needs_manager(chart: &OrgChart, model: &Model, index: u32) -> bool {
    let user = &model.users[index as usize];
    match chart.manager_of(index) {
        Some(manager) => {
            user.id.is_some() && user.manager != Some(manager) && model.user_id(manager).is_some()
        }
        None => false,
    }
}

async fn set_initial_manager(shared: Arc<Shared>, index: u32) {
    if !shared.expired(None) {
        let (manager, manager_id) = manager_ref(&shared, index);
        let state = shared.model().users[index as usize].clone();
        if manager_id.is_some()
            && set_manager(&shared, index, &state, manager_id.as_deref(), ManagerShape::PlainString).await
        {
            shared.model().users[index as usize].manager = manager;
        }
    }
    shared.metrics().step();
}

/// Sets (or removes) a user's manager in the user's IdP dialect: Entra by PATCH in `shape`
/// (E15), Okta by GET then full PUT (O4) at the user's current revision and active flag.
async fn set_manager(
    shared: &Shared,
    index: u32,
    state: &UserState,
    manager_id: Option<&str>,
    shape: ManagerShape,
) -> bool {
    let Some(id) = state.id.as_deref() else { return false };
    let spec = shared.chart.user(index, state.revision);
    match spec.style {
        Style::Entra => {
            let body = shapes::entra_set_manager(manager_id, shape);
            let call = Call::new("user.manager", Method::PATCH, format!("/Users/{id}"))
                .with_body(&body, spec.style.content_type());
            shared.send(call).await.is_ok()
        }
        Style::Okta => okta_put(shared, id, &spec, state.active, manager_id).await,
    }
}

async fn provision_group(shared: Arc<Shared>, index: u32) {
    if !shared.expired(None) {
        provision_group_once(&shared, index).await;
    }
    shared.metrics().step();
}

async fn provision_group_once(shared: &Shared, index: u32) {
    let spec = &shared.chart.groups[index as usize];
    let lookup = format!("/Groups{}", shapes::group_by_display_name(spec.style, &spec.display_name));
    let Ok(found) = shared.send(Call::get("group.lookup", lookup.clone())).await else { return };
    if let Some(id) = first_id(&found.body) {
        adopt_group(shared, index, id).await;
        return;
    }
    let body = shapes::group_create(spec, &spec.display_name);
    let call = Call::new("group.create", Method::POST, "/Groups")
        .with_body(&body, spec.style.content_type())
        .accepting(&[409]);
    match shared.send(call).await {
        Ok(reply) if reply.status == 409 => {
            let Ok(found) = shared.send(Call::get("group.lookup", lookup)).await else { return };
            match first_id(&found.body) {
                Some(id) => adopt_group(shared, index, id).await,
                None => shared.note(Difference::new(
                    "Lookup",
                    Some(index),
                    None,
                    "displayName filter after 409 on group create",
                    format!("the existing group {:?}", spec.display_name),
                    "no result",
                )),
            }
        }
        Ok(reply) => match body_id(&reply.body) {
            Some(id) => shared.model().groups[index as usize].id = Some(id),
            None => shared.note(Difference::new(
                "Group",
                Some(index),
                None,
                "id in the POST /Groups answer",
                "an id",
                reply.body.to_string(),
            )),
        },
        Err(_) => {}
    }
}

/// An existing group (a re-run on the same tenant): emptied with `replace members []` (O8),
/// so that the push starts from a known state.
async fn adopt_group(shared: &Shared, index: u32, id: String) {
    let body = shapes::okta_replace_members(&[]);
    let call = Call::new("group.patch.members", Method::PATCH, format!("/Groups/{id}"))
        .with_body(&body, Style::Okta.content_type());
    if shared.send(call).await.is_ok() {
        let mut model = shared.model();
        let group = &mut model.groups[index as usize];
        group.id = Some(id);
        group.members.clear();
    }
}

/// Member references of `indices` that were provisioned (Okta's `display` is computed only
/// for Okta groups: it costs a user derivation each).
fn member_refs(shared: &Shared, style: Style, indices: &[u32]) -> Vec<(u32, MemberRef)> {
    let ids: Vec<Option<String>> = {
        let model = shared.model();
        indices.iter().map(|index| model.user_id(*index).map(str::to_owned)).collect()
    };
    indices
        .iter()
        .zip(ids)
        .filter_map(|(index, id)| {
            let display = match style {
                Style::Okta => shared.chart.user(*index, 0).user_name,
                Style::Entra => String::new(),
            };
            id.map(|id| (*index, MemberRef { id, display }))
        })
        .collect()
}

/// Sends one membership PATCH, records its latency against the group's size when sent, and
/// applies it to the model if acknowledged.
async fn membership_patch(
    shared: &Shared,
    group: u32,
    group_id: &str,
    add: &[(u32, MemberRef)],
    remove: &[(u32, MemberRef)],
    extra_unknown: Option<MemberRef>,
) -> bool {
    let (style, name, size) = {
        let model = shared.model();
        let state = &model.groups[group as usize];
        (shared.chart.groups[group as usize].style, state.display_name.clone(), state.members.len())
    };
    let mut added: Vec<MemberRef> = add.iter().map(|(_, m)| m.clone()).collect();
    added.extend(extra_unknown);
    let removed: Vec<MemberRef> = remove.iter().map(|(_, m)| m.clone()).collect();
    let body = shapes::change_members(style, group_id, &name, &added, &removed);
    let call = Call::new("group.patch.members", Method::PATCH, format!("/Groups/{group_id}"))
        .with_body(&body, style.content_type());
    let Ok(reply) = shared.send(call).await else { return false };
    shared.metrics().record_membership(size, added.len() + removed.len(), reply.latency);
    let mut model = shared.model();
    let members = &mut model.groups[group as usize].members;
    for (index, _) in add {
        members.insert(*index);
    }
    for (index, _) in remove {
        members.remove(*index);
    }
    true
}

async fn push_members(shared: Arc<Shared>, group: u32) {
    let spec = &shared.chart.groups[group as usize];
    let chunk_count = spec.members.len().div_ceil(shared.profile.members_per_patch);
    let Some(group_id) = shared.model().groups[group as usize].id.clone() else {
        for _ in 0..chunk_count {
            shared.metrics().step();
        }
        return;
    };
    let shared_ref = &shared;
    let group_id = &group_id;
    // Owned chunks: a stream over borrowed slices inside a spawned task trips the compiler's
    // higher-ranked lifetime inference.
    let chunks: Vec<Vec<u32>> =
        spec.members.chunks(shared.profile.members_per_patch).map(<[u32]>::to_vec).collect();
    futures_util::stream::iter(chunks)
        .map(|chunk| async move {
            if !shared_ref.expired(None) {
                let refs = member_refs(shared_ref, spec.style, &chunk);
                if !refs.is_empty() {
                    membership_patch(shared_ref, group, group_id, &refs, &[], None).await;
                }
            }
            shared_ref.metrics().step();
        })
        .buffer_unordered(shared.profile.patches_in_flight)
        .for_each(|_| async {})
        .await;
}

/// A random provisioned user, if one is found in a few draws.
fn random_user(shared: &Shared, rng: &mut ChaCha8Rng, want: impl Fn(&UserState) -> bool) -> Option<u32> {
    let model = shared.model();
    (0..DRAWS).map(|_| rng.random_range(0..shared.chart.users)).find(|index| {
        let user = &model.users[*index as usize];
        user.id.is_some() && want(user)
    })
}

/// A random provisioned group: uniform half of the time, else weighted by generated size
/// (big groups see more churn, as they do in a directory).
fn random_group(shared: &Shared, rng: &mut ChaCha8Rng) -> Option<u32> {
    let model = shared.model();
    (0..DRAWS)
        .map(|_| {
            if rng.random_bool(0.5) {
                rng.random_range(0..model.groups.len() as u32)
            } else {
                let total = *shared.group_weights.last().expect("at least one group");
                let target = rng.random_range(0..total);
                shared.group_weights.partition_point(|cumulative| *cumulative <= target) as u32
            }
        })
        .find(|index| model.groups[*index as usize].id.is_some())
}

async fn churn(shared: Arc<Shared>, k: u64, until: Option<Instant>) {
    if !shared.expired(until) {
        let mut rng = stream(shared.chart.seed, CHURN_SALT, k);
        let kind = churn_kind(&mut rng);
        churn_once(&shared, kind, &mut rng).await;
    }
    shared.metrics().step();
}

async fn churn_once(shared: &Shared, kind: ChurnKind, rng: &mut ChaCha8Rng) {
    match kind {
        ChurnKind::SmallMembership => small_membership(shared, rng).await,
        ChurnKind::LargeMembership => large_membership(shared, rng).await,
        ChurnKind::ReplaceMembers => replace_members(shared, rng).await,
        ChurnKind::UserUpdate => user_update(shared, rng).await,
        ChurnKind::Deactivate | ChurnKind::Reactivate => {
            set_active_churn(shared, rng, kind == ChurnKind::Reactivate).await
        }
        ChurnKind::ManagerChange => manager_change(shared, rng).await,
        ChurnKind::GroupRename => group_rename(shared, rng).await,
        ChurnKind::UserLookup => user_lookup(shared, rng).await,
        ChurnKind::GroupLookup => group_lookup(shared, rng, false).await,
        ChurnKind::GroupGetWithoutMembers => group_lookup(shared, rng, true).await,
    }
}

/// Up to `count` provisioned users outside `group`, drawn at random.
fn non_members(shared: &Shared, group: u32, count: usize, rng: &mut ChaCha8Rng) -> Vec<u32> {
    let model = shared.model();
    let members = &model.groups[group as usize].members;
    let mut picked = std::collections::HashSet::new();
    for _ in 0..count * 4 {
        if picked.len() == count {
            break;
        }
        let index = rng.random_range(0..shared.chart.users);
        if model.users[index as usize].id.is_some() && !members.contains(index) {
            picked.insert(index);
        }
    }
    let mut picked: Vec<u32> = picked.into_iter().collect();
    picked.sort_unstable();
    picked
}

/// Up to `count` current members of `group`, drawn at random.
fn some_members(shared: &Shared, group: u32, count: usize, rng: &mut ChaCha8Rng) -> Vec<u32> {
    let model = shared.model();
    let members = &model.groups[group as usize].members;
    let mut picked = std::collections::HashSet::new();
    for _ in 0..count * 4 {
        if picked.len() >= count.min(members.len()) {
            break;
        }
        if let Some(index) = members.pick(rng) {
            picked.insert(index);
        }
    }
    let mut picked: Vec<u32> = picked.into_iter().collect();
    picked.sort_unstable();
    picked
}

async fn small_membership(shared: &Shared, rng: &mut ChaCha8Rng) {
    let Some(group) = random_group(shared, rng) else { return };
    let _lock = shared.group_locks[group as usize].lock().await;
    let Some(group_id) = shared.model().groups[group as usize].id.clone() else { return };
    let style = shared.chart.groups[group as usize].style;
    // As many joiners as leavers on average, so groups neither grow nor shrink over a run.
    let add_count = rng.random_range(0..=5);
    let remove_count = rng.random_range(0..=5);
    let add = member_refs(shared, style, &non_members(shared, group, add_count, rng));
    let remove = member_refs(shared, style, &some_members(shared, group, remove_count, rng));
    if add.is_empty() && remove.is_empty() {
        return;
    }
    // Okta sometimes names a member it has not pushed (yet); the server must skip it and
    // apply the rest (O11).
    let unknown = (style == Style::Okta && rng.random_bool(0.05)).then(|| MemberRef {
        id: uuid::Builder::from_random_bytes(rng.random()).into_uuid().to_string(),
        display: "not-provisioned@example.invalid".into(),
    });
    membership_patch(shared, group, &group_id, &add, &remove, unknown).await;
}

async fn large_membership(shared: &Shared, rng: &mut ChaCha8Rng) {
    let Some(group) = random_group(shared, rng) else { return };
    let _lock = shared.group_locks[group as usize].lock().await;
    let Some(group_id) = shared.model().groups[group as usize].id.clone() else { return };
    let style = shared.chart.groups[group as usize].style;
    let per_patch = shared.profile.members_per_patch;
    let size = shared.model().groups[group as usize].members.len();
    // A re-org moves up to half the group's generated size at once (at most one split's
    // worth), and groups random-walk around their generated size: a change shrinks a group
    // above it and grows one below it, so churn keeps the org chart's shape.
    let generated = shared.chart.groups[group as usize].members.len();
    let amount = (per_patch * shared.profile.patches_in_flight).min(generated.div_ceil(2)).max(1);
    let remove = size > generated;
    let chosen = if remove {
        some_members(shared, group, amount, rng)
    } else {
        non_members(shared, group, amount, rng)
    };
    let refs = member_refs(shared, style, &chosen);
    let group_id = &group_id;
    let chunks: Vec<Vec<(u32, MemberRef)>> = refs.chunks(per_patch).map(<[_]>::to_vec).collect();
    futures_util::stream::iter(chunks)
        .map(|chunk| async move {
            if remove {
                membership_patch(shared, group, group_id, &[], &chunk, None).await
            } else {
                membership_patch(shared, group, group_id, &chunk, &[], None).await
            }
        })
        .buffer_unordered(shared.profile.patches_in_flight)
        .for_each(|_| async {})
        .await;
}

async fn replace_members(shared: &Shared, rng: &mut ChaCha8Rng) {
    let Some(group) = random_group(shared, rng) else { return };
    let style = shared.chart.groups[group as usize].style;
    let size = shared.model().groups[group as usize].members.len();
    if style == Style::Entra || size > shared.profile.members_per_patch {
        return small_membership(shared, rng).await;
    }
    let _lock = shared.group_locks[group as usize].lock().await;
    let Some(group_id) = shared.model().groups[group as usize].id.clone() else { return };
    let mut next: std::collections::BTreeSet<u32> =
        shared.model().groups[group as usize].members.iter().collect();
    for gone in some_members(shared, group, rng.random_range(0..=2), rng) {
        next.remove(&gone);
    }
    next.extend(non_members(shared, group, rng.random_range(0..=3), rng));
    let next: Vec<u32> = next.into_iter().collect();
    let refs = member_refs(shared, style, &next);
    let members: Vec<MemberRef> = refs.iter().map(|(_, m)| m.clone()).collect();
    let body = shapes::okta_replace_members(&members);
    let call = Call::new("group.patch.members", Method::PATCH, format!("/Groups/{group_id}"))
        .with_body(&body, style.content_type());
    if let Ok(reply) = shared.send(call).await {
        shared.metrics().record_membership(size, members.len(), reply.latency);
        let mut model = shared.model();
        let state = &mut model.groups[group as usize].members;
        state.clear();
        for (index, _) in refs {
            state.insert(index);
        }
    }
}

async fn user_update(shared: &Shared, rng: &mut ChaCha8Rng) {
    let Some(index) = random_user(shared, rng, |_| true) else { return };
    let _lock = shared.user_lock(index).lock().await;
    let state = shared.model().users[index as usize].clone();
    let Some(id) = state.id.clone() else { return };
    let after = shared.chart.user(index, state.revision + 1);
    let done = match after.style {
        Style::Entra => {
            let body = shapes::entra_user_update(&after, rng.random_bool(0.5));
            let call = Call::new("user.patch", Method::PATCH, format!("/Users/{id}"))
                .with_body(&body, after.style.content_type());
            shared.send(call).await.is_ok()
        }
        Style::Okta => {
            let manager_id = state.manager.and_then(|m| shared.model().user_id(m).map(str::to_owned));
            okta_put(shared, &id, &after, state.active, manager_id.as_deref()).await
        }
    };
    if done {
        shared.model().users[index as usize].revision += 1;
    }
}

async fn set_active_churn(shared: &Shared, rng: &mut ChaCha8Rng, reactivate: bool) {
    // Reactivation needs an inactive user; early in a run there may be none.
    let picked = if reactivate { random_user(shared, rng, |user| !user.active) } else { None };
    let (index, active) = match picked {
        Some(index) => (index, true),
        None => match random_user(shared, rng, |user| user.active) {
            Some(index) => (index, false),
            None => return,
        },
    };
    let _lock = shared.user_lock(index).lock().await;
    let state = shared.model().users[index as usize].clone();
    let Some(id) = state.id.clone() else { return };
    if state.active == active {
        return; // changed while waiting for the lock
    }
    let spec = shared.chart.user(index, state.revision);
    if active && spec.style == Style::Okta {
        // O6: Okta finds the user by filter and reads it before reactivating.
        let lookup = format!("/Users{}", shapes::user_by_user_name(Style::Okta, &spec.user_name));
        let Ok(found) = shared.send(Call::get("user.lookup", lookup)).await else { return };
        if first_id(&found.body).as_deref() != Some(id.as_str()) {
            shared.note(Difference::new(
                "Lookup",
                Some(index),
                Some(&id),
                "inactive user by userName filter before reactivation (O6)",
                id.clone(),
                first_id(&found.body).unwrap_or_else(|| "no result".into()),
            ));
        }
        if shared.send(Call::get("user.get", format!("/Users/{id}"))).await.is_err() {
            return;
        }
    }
    let body = shapes::set_active(spec.style, active);
    let op = if active { "user.reactivate" } else { "user.deactivate" };
    let call =
        Call::new(op, Method::PATCH, format!("/Users/{id}")).with_body(&body, spec.style.content_type());
    if shared.send(call).await.is_ok() {
        shared.model().users[index as usize].active = active;
    }
}

async fn manager_change(shared: &Shared, rng: &mut ChaCha8Rng) {
    let Some(index) = random_user(shared, rng, |_| true) else { return };
    if index == 0 {
        return; // the CEO keeps reporting to the board
    }
    let _lock = shared.user_lock(index).lock().await;
    let state = shared.model().users[index as usize].clone();
    if state.id.is_none() {
        return;
    }
    let style = shared.chart.user(index, 0).style;
    let remove = style == Style::Entra && rng.random_bool(0.2);
    let manager = if remove { None } else { random_user(shared, rng, |_| true).filter(|m| *m != index) };
    if manager.is_none() && !remove {
        return;
    }
    let manager_id = manager.and_then(|m| shared.model().user_id(m).map(str::to_owned));
    let shape = if rng.random_bool(0.5) { ManagerShape::PlainString } else { ManagerShape::ArrayOfOne };
    if set_manager(shared, index, &state, manager_id.as_deref(), shape).await {
        shared.model().users[index as usize].manager = manager;
    }
}

async fn group_rename(shared: &Shared, rng: &mut ChaCha8Rng) {
    let Some(group) = random_group(shared, rng) else { return };
    let _lock = shared.group_locks[group as usize].lock().await;
    let (id, renames) = {
        let model = shared.model();
        let state = &model.groups[group as usize];
        (state.id.clone(), state.renames)
    };
    let Some(id) = id else { return };
    let spec = &shared.chart.groups[group as usize];
    let new_name = format!("{} (renamed {})", spec.display_name, renames + 1);
    let body = shapes::rename_group(spec.style, &id, &new_name);
    let call = Call::new("group.patch.rename", Method::PATCH, format!("/Groups/{id}"))
        .with_body(&body, spec.style.content_type());
    if shared.send(call).await.is_ok() {
        let mut model = shared.model();
        let state = &mut model.groups[group as usize];
        state.display_name = new_name;
        state.renames += 1;
    }
}

/// A user lookup in the user's dialect; the answer must be exactly that user.
async fn user_lookup(shared: &Shared, rng: &mut ChaCha8Rng) {
    let Some(index) = random_user(shared, rng, |_| true) else { return };
    let _lock = shared.user_lock(index).lock().await;
    let Some(expected) = shared.model().expected_user(&shared.chart, index) else { return };
    let spec = shared.chart.user(index, 0);
    let (field, query) = match spec.style {
        Style::Okta => ("userName eq (O1)", shapes::user_by_user_name(Style::Okta, &expected.user_name)),
        Style::Entra if rng.random_bool(0.5) => {
            ("externalId eq (E9)", shapes::user_by_external_id(&expected.external_id))
        }
        Style::Entra => {
            ("emails[type eq \"work\"].value eq (E9)", shapes::user_by_work_email(&expected.email))
        }
    };
    let Ok(reply) = shared.send(Call::get("user.lookup", format!("/Users{query}"))).await else { return };
    let ids: Vec<String> = resources(&reply.body)
        .iter()
        .filter_map(|r| get_ci(r, "id").and_then(Value::as_str).map(str::to_owned))
        .collect();
    if ids != [expected.id.clone()] {
        shared.note(Difference::new(
            "Lookup",
            Some(index),
            Some(&expected.id),
            &format!("user by {field}"),
            format!("[{}]", expected.id),
            format!("{ids:?}"),
        ));
    }
}

/// A group by displayName filter (E9; Entra excluding members, E11), or by id with
/// `excludedAttributes=members`: the right group, and no members in the answer.
async fn group_lookup(shared: &Shared, rng: &mut ChaCha8Rng, by_id: bool) {
    let Some(group) = random_group(shared, rng) else { return };
    let _lock = shared.group_locks[group as usize].lock().await;
    let (id, name) = {
        let model = shared.model();
        let state = &model.groups[group as usize];
        (state.id.clone(), state.display_name.clone())
    };
    let Some(id) = id else { return };
    let style = shared.chart.groups[group as usize].style;
    if by_id {
        let call = Call::get("group.get", format!("/Groups/{id}?excludedAttributes=members"));
        let Ok(reply) = shared.send(call).await else { return };
        let rendered = get_ci(&reply.body, "displayName").and_then(Value::as_str);
        if rendered != Some(name.as_str()) || get_ci(&reply.body, "members").is_some() {
            shared.note(Difference::new(
                "Lookup",
                Some(group),
                Some(&id),
                "GET /Groups/{id}?excludedAttributes=members (E11)",
                format!("displayName {name:?}, no members"),
                format!(
                    "displayName {:?}, members {}",
                    rendered,
                    if get_ci(&reply.body, "members").is_some() { "present" } else { "absent" }
                ),
            ));
        }
        return;
    }
    let query = shapes::group_by_display_name(style, &name);
    let Ok(reply) = shared.send(Call::get("group.lookup", format!("/Groups{query}"))).await else { return };
    let found = resources(&reply.body);
    let ids: Vec<&str> = found.iter().filter_map(|r| get_ci(r, "id").and_then(Value::as_str)).collect();
    let members_rendered = style == Style::Entra && found.iter().any(|r| get_ci(r, "members").is_some());
    if ids != [id.as_str()] || members_rendered {
        shared.note(Difference::new(
            "Lookup",
            Some(group),
            Some(&id),
            "group by displayName eq (E9/E11)",
            format!("[{id}]{}", if style == Style::Entra { " without members" } else { "" }),
            format!("{ids:?}{}", if members_rendered { " with members" } else { "" }),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn churn_mix_covers_every_kind_roughly_by_weight() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..10_000 {
            *counts.entry(churn_kind(&mut rng)).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), CHURN_MIX.len());
        let small = counts[&ChurnKind::SmallMembership] as f64 / 10_000.0;
        assert!((0.22..0.30).contains(&small), "{small}");
    }
}
