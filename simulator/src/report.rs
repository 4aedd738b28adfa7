//! The run report: JSON (`--report-json`), a human table, and an SVG plot of membership
//! PATCH latency against group size (`--plot`).
//!
//! The SVG is written by hand: one log-x chart with two lines does not justify a plotting
//! crate and its dependency tree.

use crate::metrics::{ErrorSample, MembershipSample, Metrics, OpRecord, PhaseRecord};
use crate::model::Model;
use crate::orgchart::OrgChart;
use crate::profile::Profile;
use crate::verify::VerifySummary;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Latency percentiles of one operation type.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OpSummary {
    pub op: String,
    /// Requests with an answer (transport failures have no latency but count in `statuses`).
    pub count: usize,
    pub errors: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub statuses: BTreeMap<String, u64>,
}

/// Membership PATCH latency for groups whose size (when the PATCH was sent) was in
/// `[size_from, size_to)`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SizeBucket {
    pub size_from: u64,
    pub size_to: u64,
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Membership PATCH latency against group size, in two series: the cost of a PATCH grows
/// with what it carries, so small changes (the steady churn an IdP sends) and bulk changes
/// (pushes and re-orgs split into chunks) are bucketed apart. A flat `small_changes` curve
/// means the server's cost does not grow with the group.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct MembershipLatency {
    /// PATCHes carrying at most this many member values count as small.
    pub small_change_members: u32,
    pub small_changes: Vec<SizeBucket>,
    pub bulk_changes: Vec<SizeBucket>,
}

/// See [`MembershipLatency::small_change_members`].
pub const SMALL_CHANGE_MEMBERS: u32 = 10;

impl MembershipLatency {
    pub fn from_samples(samples: &[MembershipSample]) -> Self {
        let series = |small: bool| {
            let picked: Vec<(u32, u32)> = samples
                .iter()
                .filter(|s| (s.members <= SMALL_CHANGE_MEMBERS) == small)
                .map(|s| (s.group_size, s.latency_us))
                .collect();
            size_buckets(&picked)
        };
        MembershipLatency {
            small_change_members: SMALL_CHANGE_MEMBERS,
            small_changes: series(true),
            bulk_changes: series(false),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.small_changes.is_empty() && self.bulk_changes.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChartSummary {
    pub users: u32,
    pub groups: usize,
    pub departments: usize,
    pub memberships: usize,
    pub largest_group: usize,
    pub median_group_size: usize,
    /// The ten largest group sizes.
    pub top_group_sizes: Vec<usize>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProvisionedSummary {
    pub users: usize,
    pub inactive_users: usize,
    pub groups: usize,
    pub memberships: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ErrorSummary {
    /// Requests of the load phases (verification reads excluded).
    pub load_requests: u64,
    /// Of those, answered with a status the simulator did not expect (after retries).
    pub unexpected: u64,
    pub rate: f64,
    /// Unexpected statuses of every phase, `"transport"` when no answer came.
    pub by_status: BTreeMap<String, u64>,
    /// Retried answers (429, 503, transport) by status.
    pub retries: BTreeMap<String, u64>,
    pub samples: Vec<ErrorSample>,
}

/// Everything a run measured and concluded.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunReport {
    pub tool: String,
    pub target: String,
    pub profile: Profile,
    pub seed: u64,
    pub started_at: String,
    pub elapsed_s: f64,
    pub org_chart: ChartSummary,
    pub provisioned: ProvisionedSummary,
    pub phases: Vec<PhaseRecord>,
    pub requests: u64,
    /// Requests per second over the load phases.
    pub throughput_rps: f64,
    pub operations: Vec<OpSummary>,
    pub errors: ErrorSummary,
    pub membership_latency_by_group_size: MembershipLatency,
    pub verification: Option<VerifySummary>,
    pub passed: bool,
    /// Why the run failed (empty when it passed).
    pub failures: Vec<String>,
}

/// What [`build`] needs.
pub struct Inputs<'a> {
    pub target: String,
    pub profile: Profile,
    pub seed: u64,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub chart: &'a OrgChart,
    pub model: &'a Model,
    pub metrics: &'a Metrics,
    pub load_elapsed: Duration,
    pub verification: Option<VerifySummary>,
}

/// Nearest-rank percentile of sorted samples (microseconds), in milliseconds.
pub fn percentile_ms(sorted_us: &[u32], quantile: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((quantile * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    sorted_us[rank - 1] as f64 / 1000.0
}

pub fn summarize_op(op: &str, record: &OpRecord) -> OpSummary {
    let mut samples = record.latencies_us.clone();
    samples.sort_unstable();
    let mean = if samples.is_empty() {
        0.0
    } else {
        samples.iter().map(|s| *s as f64).sum::<f64>() / samples.len() as f64 / 1000.0
    };
    OpSummary {
        op: op.to_owned(),
        count: samples.len(),
        errors: record.errors,
        mean_ms: mean,
        p50_ms: percentile_ms(&samples, 0.50),
        p90_ms: percentile_ms(&samples, 0.90),
        p99_ms: percentile_ms(&samples, 0.99),
        max_ms: samples.last().map(|s| *s as f64 / 1000.0).unwrap_or(0.0),
        statuses: record.statuses.clone(),
    }
}

/// Bucket bounds 0, 1, 2, 5, 10, 20, 50, ...: three per decade, so a log-x plot gets evenly
/// spaced points.
fn bucket_of(size: u64) -> (u64, u64) {
    if size == 0 {
        return (0, 1);
    }
    let mut decade = 1u64;
    loop {
        for (from, to) in [(decade, 2 * decade), (2 * decade, 5 * decade), (5 * decade, 10 * decade)] {
            if size < to {
                return (from, to);
            }
        }
        decade = decade.saturating_mul(10);
    }
}

/// Membership PATCH latency by group size, non-empty buckets only, smallest first.
pub fn size_buckets(samples: &[(u32, u32)]) -> Vec<SizeBucket> {
    let mut buckets: BTreeMap<(u64, u64), Vec<u32>> = BTreeMap::new();
    for (size, latency) in samples {
        buckets.entry(bucket_of(*size as u64)).or_default().push(*latency);
    }
    buckets
        .into_iter()
        .map(|((from, to), mut latencies)| {
            latencies.sort_unstable();
            SizeBucket {
                size_from: from,
                size_to: to,
                count: latencies.len(),
                p50_ms: percentile_ms(&latencies, 0.50),
                p90_ms: percentile_ms(&latencies, 0.90),
                p99_ms: percentile_ms(&latencies, 0.99),
                max_ms: latencies.last().map(|l| *l as f64 / 1000.0).unwrap_or(0.0),
            }
        })
        .collect()
}

/// Assembles the report and decides pass/fail.
pub fn build(inputs: Inputs<'_>) -> RunReport {
    let Inputs { target, profile, seed, started_at, chart, model, metrics, load_elapsed, verification } =
        inputs;
    let mut sizes: Vec<usize> = chart.groups.iter().map(|g| g.members.len()).collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    let org_chart = ChartSummary {
        users: chart.users,
        groups: chart.groups.len(),
        departments: chart.departments.len(),
        memberships: chart.total_memberships(),
        largest_group: sizes.first().copied().unwrap_or(0),
        median_group_size: sizes.get(sizes.len() / 2).copied().unwrap_or(0),
        top_group_sizes: sizes.iter().take(10).copied().collect(),
    };
    let provisioned = ProvisionedSummary {
        users: model.provisioned_users(),
        inactive_users: model.users.iter().filter(|u| u.id.is_some() && !u.active).count(),
        groups: model.groups.iter().filter(|g| g.id.is_some()).count(),
        memberships: model.memberships(),
    };
    let ops = metrics.ops();
    let operations: Vec<OpSummary> = ops.iter().map(|(op, record)| summarize_op(op, record)).collect();
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    for record in ops.values() {
        for (status, count) in &record.error_statuses {
            *by_status.entry(status.clone()).or_default() += count;
        }
    }
    let (load_requests, unexpected) = metrics.load_totals();
    let rate = if load_requests == 0 { 0.0 } else { unexpected as f64 / load_requests as f64 };
    let errors = ErrorSummary {
        load_requests,
        unexpected,
        rate,
        by_status,
        retries: metrics.retry_statuses(),
        samples: metrics.error_samples(),
    };
    let mut failures = Vec::new();
    if rate > profile.max_error_rate {
        failures.push(format!(
            "error rate {:.3}% ({unexpected} of {load_requests} requests) is above the threshold {:.3}%",
            rate * 100.0,
            profile.max_error_rate * 100.0
        ));
    }
    if load_requests > 0 && provisioned.users == 0 {
        failures.push("no user could be provisioned".to_owned());
    }
    if let Some(verification) = &verification
        && !verification.passed()
    {
        failures
            .push(format!("the final state differs from the model in {} places", verification.differences));
    }
    let load_seconds = load_elapsed.as_secs_f64();
    RunReport {
        tool: concat!("scimflow-simulate ", env!("CARGO_PKG_VERSION")).to_owned(),
        target,
        seed,
        started_at: started_at.to_rfc3339(),
        elapsed_s: metrics.elapsed().as_secs_f64(),
        org_chart,
        provisioned,
        phases: metrics.phases(),
        requests: metrics.total_requests(),
        throughput_rps: if load_seconds > 0.0 { load_requests as f64 / load_seconds } else { 0.0 },
        operations,
        errors,
        membership_latency_by_group_size: MembershipLatency::from_samples(&metrics.membership_samples()),
        verification,
        passed: failures.is_empty(),
        failures,
        profile,
    }
}

fn size_label(size: u64) -> String {
    match size {
        s if s >= 1_000_000 && s % 1_000_000 == 0 => format!("{}M", s / 1_000_000),
        s if s >= 1_000 && s % 1_000 == 0 => format!("{}k", s / 1_000),
        s => s.to_string(),
    }
}

/// The report as a table for humans.
pub fn render_table(report: &RunReport) -> String {
    let mut out = String::new();
    let chart = &report.org_chart;
    let _ = writeln!(
        out,
        "{}: profile {} (idp {}), seed {}, target {}",
        report.tool, report.profile.name, report.profile.idp, report.seed, report.target
    );
    let _ = writeln!(
        out,
        "org chart: {} users, {} departments, {} groups (largest {}, median {}), {} memberships",
        chart.users,
        chart.departments,
        chart.groups,
        chart.largest_group,
        chart.median_group_size,
        chart.memberships
    );
    let p = &report.provisioned;
    let _ = writeln!(
        out,
        "provisioned: {} users ({} inactive), {} groups, {} memberships; {} requests in {:.1}s, {:.1} req/s under load",
        p.users,
        p.inactive_users,
        p.groups,
        p.memberships,
        report.requests,
        report.elapsed_s,
        report.throughput_rps
    );
    let _ = writeln!(
        out,
        "\n{:<10} {:>9} {:>9} {:>10} {:>9} {:>7}",
        "phase", "seconds", "ops", "requests", "req/s", "errors"
    );
    for phase in &report.phases {
        let _ = writeln!(
            out,
            "{:<10} {:>9.2} {:>9} {:>10} {:>9.1} {:>7}",
            phase.name,
            phase.elapsed_s,
            phase.operations,
            phase.requests,
            phase.requests_per_second,
            phase.errors
        );
    }
    let _ = writeln!(
        out,
        "\n{:<24} {:>8} {:>9} {:>9} {:>9} {:>9} {:>7}  statuses",
        "operation", "count", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"
    );
    for op in &report.operations {
        let statuses: Vec<String> = op.statuses.iter().map(|(status, n)| format!("{status}x{n}")).collect();
        let _ = writeln!(
            out,
            "{:<24} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7}  {}",
            op.op,
            op.count,
            op.p50_ms,
            op.p90_ms,
            op.p99_ms,
            op.max_ms,
            op.errors,
            statuses.join(" ")
        );
    }
    let membership = &report.membership_latency_by_group_size;
    for (title, buckets) in [
        (
            format!("small changes (<= {} members per PATCH)", membership.small_change_members),
            &membership.small_changes,
        ),
        (
            format!("bulk changes (> {} members per PATCH)", membership.small_change_members),
            &membership.bulk_changes,
        ),
    ] {
        if buckets.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\nmembership PATCH latency by group size (members when sent), {title}");
        let _ = writeln!(
            out,
            "{:<16} {:>8} {:>9} {:>9} {:>9} {:>9}",
            "group size", "count", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        for bucket in buckets {
            let _ = writeln!(
                out,
                "{:<16} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                format!("{}-{}", size_label(bucket.size_from), size_label(bucket.size_to)),
                bucket.count,
                bucket.p50_ms,
                bucket.p90_ms,
                bucket.p99_ms,
                bucket.max_ms
            );
        }
    }
    let e = &report.errors;
    let statuses: Vec<String> = e.by_status.iter().map(|(s, n)| format!("{s}x{n}")).collect();
    let retries: Vec<String> = e.retries.iter().map(|(s, n)| format!("{s}x{n}")).collect();
    let _ = writeln!(
        out,
        "\nerrors: {} unexpected of {} load requests ({:.3}%){}{}",
        e.unexpected,
        e.load_requests,
        e.rate * 100.0,
        if statuses.is_empty() { String::new() } else { format!("; by status {}", statuses.join(" ")) },
        if retries.is_empty() { String::new() } else { format!("; retried {}", retries.join(" ")) },
    );
    for sample in e.samples.iter().take(5) {
        let _ = writeln!(
            out,
            "  {} {} {} -> {}: {}",
            sample.op,
            sample.method,
            sample.path,
            sample.status.map(|s| s.to_string()).unwrap_or_else(|| "no answer".into()),
            sample.response
        );
    }
    match &report.verification {
        None => {
            let _ = writeln!(out, "verification: skipped");
        }
        Some(v) => {
            let methods: Vec<String> = v.group_read_methods.iter().map(|(m, n)| format!("{m} {n}")).collect();
            let _ = writeln!(
                out,
                "verification: {} users and {} groups checked ({}), {} memberships expected, {} inactive lookups; {} differences",
                v.users_checked,
                v.groups_checked,
                methods.join(", "),
                v.memberships_expected,
                v.inactive_lookups_checked,
                v.differences
            );
            for d in v.items.iter().take(20) {
                let _ = writeln!(
                    out,
                    "  {} {}{}: {}: expected {}, observed {}",
                    d.resource,
                    d.index.map(|i| format!("#{i}")).unwrap_or_default(),
                    d.id.as_ref().map(|id| format!(" ({id})")).unwrap_or_default(),
                    d.field,
                    d.expected,
                    d.observed
                );
            }
        }
    }
    if report.passed {
        let _ = writeln!(out, "result: PASS");
    } else {
        let _ = writeln!(out, "result: FAIL: {}", report.failures.join("; "));
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// One line of the plot.
struct Series<'a> {
    class: &'static str,
    label: String,
    color: &'static str,
    dashed: bool,
    buckets: &'a [SizeBucket],
    value: fn(&SizeBucket) -> f64,
}

/// An SVG line chart of p50 and p99 membership PATCH latency against group size, log-x:
/// solid lines for small changes, dashed for bulk ones. Each bucket is drawn at the geometric
/// middle of its size range.
pub fn render_svg(latency: &MembershipLatency, title: &str) -> String {
    const WIDTH: f64 = 760.0;
    const HEIGHT: f64 = 440.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 30.0;
    const TOP: f64 = 50.0;
    const BOTTOM: f64 = 60.0;
    // Empty groups (size 0) have no logarithm: they sit at 0.5, labelled "0".
    const EMPTY_AT: f64 = -0.301; // log10(0.5)
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="15">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    if latency.is_empty() {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">no membership PATCH was measured</text>"#,
            WIDTH / 2.0,
            HEIGHT / 2.0
        );
        svg.push_str("</svg>\n");
        return svg;
    }
    let small = format!("<= {} members", latency.small_change_members);
    let bulk = format!("> {} members", latency.small_change_members);
    let series: Vec<Series<'_>> = [
        Series {
            class: "small-p50",
            label: format!("p50, {small}"),
            color: "#1f77b4",
            dashed: false,
            buckets: &latency.small_changes,
            value: |b| b.p50_ms,
        },
        Series {
            class: "small-p99",
            label: format!("p99, {small}"),
            color: "#d62728",
            dashed: false,
            buckets: &latency.small_changes,
            value: |b| b.p99_ms,
        },
        Series {
            class: "bulk-p50",
            label: format!("p50, {bulk}"),
            color: "#1f77b4",
            dashed: true,
            buckets: &latency.bulk_changes,
            value: |b| b.p50_ms,
        },
        Series {
            class: "bulk-p99",
            label: format!("p99, {bulk}"),
            color: "#d62728",
            dashed: true,
            buckets: &latency.bulk_changes,
            value: |b| b.p99_ms,
        },
    ]
    .into_iter()
    .filter(|series| !series.buckets.is_empty())
    .collect();
    let x_of = |b: &SizeBucket| {
        if b.size_from == 0 { EMPTY_AT } else { (b.size_from as f64 * b.size_to as f64).sqrt().log10() }
    };
    let all = || series.iter().flat_map(|s| s.buckets.iter());
    let has_empty = all().any(|b| b.size_from == 0);
    let lowest = all().map(x_of).fold(f64::INFINITY, f64::min);
    let highest = all().map(x_of).fold(f64::NEG_INFINITY, f64::max);
    let x_min = if has_empty { EMPTY_AT - 0.15 } else { lowest.floor() };
    let x_max = highest.ceil().max(x_min.ceil() + 1.0);
    let first_decade = x_min.ceil();
    let y_top = all().map(|b| b.p99_ms).fold(0.0, f64::max);
    let y_max = nice_ceiling(y_top.max(0.001) * 1.1);
    let x_at = |log: f64| LEFT + (log - x_min) / (x_max - x_min) * plot_w;
    let y_at = |ms: f64| TOP + plot_h - ms / y_max * plot_h;

    // Grid: a vertical line per decade, five horizontal steps.
    let decades: Vec<f64> =
        (0..).map(|k| first_decade + k as f64).take_while(|d| *d <= x_max + 1e-9).collect();
    let _ = writeln!(svg, r##"<g stroke="#ccc" stroke-width="1">"##);
    for decade in &decades {
        let x = x_at(*decade);
        let _ = writeln!(svg, r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}"/>"#, TOP + plot_h);
    }
    for step in 0..=5 {
        let y = y_at(y_max * step as f64 / 5.0);
        let _ = writeln!(svg, r#"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/>"#, LEFT + plot_w);
    }
    svg.push_str("</g>\n");
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>"##
    );
    let label_y = TOP + plot_h + 18.0;
    if has_empty {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{label_y:.1}" text-anchor="middle">0</text>"#,
            x_at(EMPTY_AT)
        );
    }
    for decade in &decades {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{label_y:.1}" text-anchor="middle">{}</text>"#,
            x_at(*decade),
            size_label(10f64.powf(*decade).round() as u64)
        );
    }
    for step in 0..=5 {
        let value = y_max * step as f64 / 5.0;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y_at(value) + 4.0,
            format_tick(value, y_max / 5.0)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">group size when the PATCH was sent (members, log scale)</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 18.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="18" y="{0:.1}" text-anchor="middle" transform="rotate(-90 18 {0:.1})">membership PATCH latency (ms)</text>"#,
        TOP + plot_h / 2.0
    );

    for line in &series {
        let dash = if line.dashed { r#" stroke-dasharray="6 4""# } else { "" };
        let points: Vec<String> = line
            .buckets
            .iter()
            .map(|b| format!("{:.1},{:.1}", x_at(x_of(b)), y_at((line.value)(b))))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline class="{}" fill="none" stroke="{}" stroke-width="2"{dash} points="{}"/>"#,
            line.class,
            line.color,
            points.join(" ")
        );
        for bucket in line.buckets {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{}"><title>{}: {} ms over {} PATCHes on groups of {}-{} members</title></circle>"#,
                x_at(x_of(bucket)),
                y_at((line.value)(bucket)),
                line.color,
                escape(&line.label),
                format_ms((line.value)(bucket)),
                bucket.count,
                bucket.size_from,
                bucket.size_to
            );
        }
    }
    let legend_x = LEFT + 14.0;
    for (row, line) in series.iter().enumerate() {
        let y = TOP + 16.0 + row as f64 * 18.0;
        let dash = if line.dashed { r#" stroke-dasharray="6 4""# } else { "" };
        let _ = writeln!(
            svg,
            r#"<line x1="{legend_x}" y1="{y}" x2="{}" y2="{y}" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
            legend_x + 22.0,
            line.color,
            legend_x + 28.0,
            y + 4.0,
            escape(&line.label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn format_ms(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// A y-axis label with as many decimals as the tick step needs.
fn format_tick(value: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else if step >= 0.1 {
        1
    } else {
        2
    };
    format!("{value:.decimals$}")
}

/// The smallest 1/2/5 x 10^k at or above `value`.
fn nice_ceiling(value: f64) -> f64 {
    let magnitude = 10f64.powf(value.log10().floor());
    for factor in [1.0, 2.0, 5.0, 10.0] {
        if factor * magnitude >= value {
            return factor * magnitude;
        }
    }
    10.0 * magnitude
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Difference;

    fn record(latencies_ms: &[u32]) -> OpRecord {
        OpRecord {
            latencies_us: latencies_ms.iter().map(|ms| ms * 1000).collect(),
            statuses: [("200".to_string(), latencies_ms.len() as u64)].into_iter().collect(),
            ..OpRecord::default()
        }
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile_ms(&samples, 0.5), 50.0);
        assert_eq!(percentile_ms(&samples, 0.99), 99.0);
        assert_eq!(percentile_ms(&samples, 1.0), 100.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
        let summary = summarize_op("user.create", &record(&[5, 1, 3]));
        assert_eq!((summary.count, summary.p50_ms, summary.max_ms, summary.mean_ms), (3, 3.0, 5.0, 3.0));
    }

    #[test]
    fn buckets_are_one_two_five_per_decade() {
        assert_eq!(bucket_of(0), (0, 1));
        assert_eq!(bucket_of(1), (1, 2));
        assert_eq!(bucket_of(4), (2, 5));
        assert_eq!(bucket_of(9), (5, 10));
        assert_eq!(bucket_of(150), (100, 200));
        assert_eq!(bucket_of(999_999), (500_000, 1_000_000));
        assert_eq!(bucket_of(1_000_000), (1_000_000, 2_000_000));
        let buckets = size_buckets(&[(0, 1000), (150, 2000), (160, 4000), (120, 3000)]);
        assert_eq!(buckets.len(), 2);
        assert_eq!(
            (buckets[1].size_from, buckets[1].count, buckets[1].p50_ms, buckets[1].max_ms),
            (100, 3, 3.0, 4.0)
        );
    }

    fn sample(group_size: u32, members: u32, latency_us: u32) -> MembershipSample {
        MembershipSample { group_size, members, latency_us }
    }

    #[test]
    fn small_and_bulk_changes_are_separate_series() {
        let latency =
            MembershipLatency::from_samples(&[sample(5, 1, 1000), sample(5, 10, 3000), sample(5, 11, 9000)]);
        assert_eq!(latency.small_changes.len(), 1);
        assert_eq!((latency.small_changes[0].count, latency.small_changes[0].max_ms), (2, 3.0));
        assert_eq!((latency.bulk_changes[0].count, latency.bulk_changes[0].p50_ms), (1, 9.0));
        assert!(MembershipLatency::from_samples(&[]).is_empty());
    }

    #[test]
    fn svg_has_all_lines_and_a_point_per_bucket() {
        let samples =
            [sample(0, 1000, 1000), sample(10, 3, 1500), sample(1000, 1, 2000), sample(1_000_000, 2, 9000)];
        let latency = MembershipLatency::from_samples(&samples);
        let svg = render_svg(&latency, "PATCH latency <test>");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for class in ["small-p50", "small-p99", "bulk-p50", "bulk-p99"] {
            assert!(svg.contains(&format!(r#"class="{class}""#)), "{class}");
        }
        assert_eq!(
            svg.matches("<circle").count(),
            2 * (latency.small_changes.len() + latency.bulk_changes.len())
        );
        assert_eq!(svg.matches("stroke-dasharray").count(), 4, "bulk lines and their legend are dashed");
        assert!(svg.contains("&lt;test&gt;"), "text is escaped");
        assert!(svg.contains(">1M<"), "the decade labels reach a million");
        assert!(
            svg.contains(r#"y="398.0" text-anchor="middle">0</text>"#),
            "empty groups have their own x label"
        );
        // Points are inside the plot area.
        for number in
            svg.split("cx=\"").skip(1).map(|rest| rest.split('"').next().unwrap().parse::<f64>().unwrap())
        {
            assert!((70.0..=730.0).contains(&number), "{number}");
        }
        let small_only = render_svg(&MembershipLatency::from_samples(&samples[1..]), "t");
        assert!(!small_only.contains("bulk-p50"), "absent series are not drawn");
        let empty = render_svg(&MembershipLatency::default(), "nothing");
        assert!(empty.contains("no membership PATCH"));
    }

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(0.013), 0.02);
        assert_eq!(nice_ceiling(100.0), 100.0);
    }

    #[test]
    fn report_builds_passes_and_fails() {
        let profile = Profile::smoke();
        let chart = OrgChart::generate(1, &profile);
        let mut model = Model::new(&chart);
        model.users[0].id = Some("u0".into());
        model.users[0].active = true;
        let metrics = Metrics::new();
        metrics.begin_phase("users", 1);
        metrics.record("user.create", Some(201), Duration::from_millis(4), false, true);
        metrics.record_membership(10, 3, Duration::from_millis(2));
        metrics.end_phase();
        let inputs = |verification| Inputs {
            target: "http://127.0.0.1:1/scim/v2".into(),
            profile: profile.clone(),
            seed: 1,
            started_at: chrono::Utc::now(),
            chart: &chart,
            model: &model,
            metrics: &metrics,
            load_elapsed: Duration::from_secs(1),
            verification,
        };
        let report = build(inputs(Some(VerifySummary::default())));
        assert!(report.passed, "{:?}", report.failures);
        assert_eq!(report.org_chart.largest_group, 150);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["operations"][0]["op"], "user.create");
        assert_eq!(json["membership_latency_by_group_size"]["small_changes"][0]["size_from"], 10);
        assert_eq!(json["profile"]["idp"], "mixed");
        let table = render_table(&report);
        assert!(table.contains("user.create") && table.contains("result: PASS"), "{table}");

        let mut failed = VerifySummary::default();
        failed.add(vec![Difference::new("Group", Some(2), Some("g"), "displayName", "a", "b")]);
        let report = build(inputs(Some(failed)));
        assert!(!report.passed);
        assert!(render_table(&report).contains("Group #2 (g): displayName: expected a, observed b"));

        metrics.record("user.create", Some(500), Duration::from_millis(4), true, true);
        let report = build(inputs(None));
        assert!(!report.passed && report.failures[0].contains("error rate"));
        assert_eq!(report.errors.by_status["500"], 1);
    }
}
