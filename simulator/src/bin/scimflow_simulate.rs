//! `scimflow-simulate`: drive a SCIM server like Entra ID and Okta do, verify its final state,
//! report latency. Exit status: 0 when the final state matches and the error rate is within
//! the threshold, 1 when not, 2 when the run could not start.

use clap::Parser;
use scimflow_simulator::profile::{IdpMix, Profile};
use scimflow_simulator::report::{render_svg, render_table};
use scimflow_simulator::{RunConfig, run};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "scimflow-simulate",
    version,
    about = "IdP traffic simulator and benchmark for SCIM 2.0 servers"
)]
struct Cli {
    /// smoke (seconds), standard (minutes) or large (1M users, hours).
    #[arg(long, default_value = "smoke")]
    profile: String,
    /// SCIM base URL, e.g. http://127.0.0.1:8080/scim/v2 (a query string is kept on every request).
    #[arg(long, env = "SCIM_URL")]
    url: String,
    /// Bearer token.
    #[arg(long, env = "SCIM_TOKEN", hide_env_values = true)]
    token: String,
    /// Seed of the org chart and of the churn (same seed, same org chart).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// entra, okta or mixed (each user and group gets one of the two).
    #[arg(long)]
    idp: Option<IdpMix>,
    /// Requests in flight at once.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Requests per second over the load phases (default: as fast as the server answers).
    #[arg(long)]
    rate: Option<f64>,
    /// Upper bound of the load phases in seconds; what was acknowledged is still verified.
    #[arg(long)]
    duration: Option<f64>,
    #[arg(long)]
    users: Option<usize>,
    #[arg(long)]
    groups: Option<usize>,
    /// Members of the largest group.
    #[arg(long)]
    largest_group: Option<usize>,
    /// Zipf exponent of group sizes.
    #[arg(long)]
    zipf: Option<f64>,
    /// Members per membership PATCH when a change is split.
    #[arg(long)]
    members_per_patch: Option<usize>,
    /// Concurrent PATCHes on the same group during a split change.
    #[arg(long)]
    patches_in_flight: Option<usize>,
    /// Churn operations after provisioning.
    #[arg(long)]
    churn_ops: Option<usize>,
    /// Upper bound of the churn phase in seconds.
    #[arg(long)]
    churn_seconds: Option<f64>,
    /// Users read back in verification (default: all for smoke/standard).
    #[arg(long)]
    verify_users: Option<usize>,
    /// Skip verification (load only).
    #[arg(long)]
    no_verify: bool,
    /// Fail when more than this fraction of load requests get an unexpected status.
    #[arg(long)]
    max_error_rate: Option<f64>,
    /// Per-request timeout in seconds.
    #[arg(long)]
    timeout: Option<f64>,
    /// Retries after 429/503/transport errors.
    #[arg(long)]
    max_retries: Option<u32>,
    /// Write the report as JSON here.
    #[arg(long)]
    report_json: Option<PathBuf>,
    /// Write an SVG plot of membership PATCH latency against group size here.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

fn profile(cli: &Cli) -> Result<Profile, String> {
    let mut profile = Profile::named(&cli.profile)
        .ok_or_else(|| format!("unknown profile {:?}: expected smoke, standard or large", cli.profile))?;
    macro_rules! set {
        ($field:ident, $value:expr) => {
            if let Some(value) = $value {
                profile.$field = value;
            }
        };
    }
    set!(idp, cli.idp);
    set!(concurrency, cli.concurrency);
    set!(users, cli.users);
    set!(groups, cli.groups);
    set!(zipf_exponent, cli.zipf);
    set!(members_per_patch, cli.members_per_patch);
    set!(patches_in_flight, cli.patches_in_flight);
    set!(churn_ops, cli.churn_ops);
    set!(max_error_rate, cli.max_error_rate);
    set!(request_timeout_seconds, cli.timeout);
    set!(max_retries, cli.max_retries);
    if cli.rate.is_some() {
        profile.rate = cli.rate;
    }
    if cli.duration.is_some() {
        profile.duration_seconds = cli.duration;
    }
    if cli.churn_seconds.is_some() {
        profile.churn_seconds = cli.churn_seconds;
    }
    if cli.verify_users.is_some() {
        profile.verify_users = cli.verify_users;
    }
    match cli.largest_group {
        Some(largest) => profile.largest_group = largest,
        // Fewer users than the profile's largest group: the largest group is everyone.
        None => profile.largest_group = profile.largest_group.min(profile.users),
    }
    profile.validate()?;
    Ok(profile)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let profile = match profile(&cli) {
        Ok(profile) => profile,
        Err(message) => {
            eprintln!("scimflow-simulate: {message}");
            return ExitCode::from(2);
        }
    };
    let config = RunConfig {
        url: cli.url.clone(),
        token: cli.token.clone(),
        profile,
        seed: cli.seed,
        progress: !cli.quiet,
        verify: !cli.no_verify,
    };
    let report = match run(config).await {
        Ok(report) => report,
        Err(error) => {
            eprintln!("scimflow-simulate: {error:#}");
            return ExitCode::from(2);
        }
    };
    print!("{}", render_table(&report));
    if let Some(path) = &cli.report_json {
        let json = serde_json::to_string_pretty(&report).expect("the report serialises");
        if let Err(error) = std::fs::write(path, json) {
            eprintln!("scimflow-simulate: cannot write {}: {error}", path.display());
            return ExitCode::from(2);
        }
    }
    if let Some(path) = &cli.plot {
        let title =
            format!("membership PATCH latency vs group size ({}, seed {})", report.profile.name, report.seed);
        if let Err(error) = std::fs::write(path, render_svg(&report.membership_latency_by_group_size, &title))
        {
            eprintln!("scimflow-simulate: cannot write {}: {error}", path.display());
            return ExitCode::from(2);
        }
    }
    if report.passed { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
