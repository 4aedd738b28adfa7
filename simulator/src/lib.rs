//! # scimflow-simulator
//!
//! An IdP traffic simulator for any SCIM 2.0 server. It generates a seeded org chart (users
//! with realistic attributes and managers, departments, heavy-tailed groups up to a
//! configurable largest one), drives a SCIM base URL the way Microsoft Entra ID and Okta drive
//! it (existence checks by filter, creates, PUT and PATCH updates in each IdP's exact request
//! shapes, deactivations, group pushes split into concurrent PATCHes, membership churn), checks
//! the server's final state against what its acknowledged writes imply, and reports
//! throughput, latency percentiles per operation, errors by status and membership PATCH
//! latency against group size (JSON, a table, an SVG plot).
//!
//! ## Layout
//! - [`profile`]: [`Profile`](profile::Profile): sizes, rates, bounds; `smoke`, `standard`, `large`.
//! - [`orgchart`]: the seeded generator ([`OrgChart`](orgchart::OrgChart)).
//! - [`model`]: the expected state, changed only by acknowledged writes.
//! - [`shapes`]: Entra ID and Okta request bodies and queries (rows of `scim/idp-quirks.md`).
//! - [`client`]: HTTP with bearer auth, pacing, a bound on requests in flight, retries on
//!   429/503 honouring `Retry-After`, timing.
//! - [`metrics`]: latency samples, statuses, phases, the progress line.
//! - [`driver`]: the phases (probe, users, managers, groups, members, churn) and [`run`].
//! - [`verify`]: the final state read back and compared.
//! - [`report`]: JSON, the human table and the SVG plot.
//!
//! ## Use
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use scimflow_simulator::{RunConfig, profile::Profile};
//! let report = scimflow_simulator::run(RunConfig {
//!     url: "http://127.0.0.1:8080/scim/v2".into(),
//!     token: "TOKEN".into(),
//!     profile: Profile::smoke(),
//!     seed: 1,
//!     progress: true,
//!     verify: true,
//! })
//! .await?;
//! println!("{}", scimflow_simulator::report::render_table(&report));
//! assert!(report.passed);
//! # Ok(()) }
//! ```

pub mod client;
pub mod driver;
pub mod metrics;
pub mod model;
pub mod orgchart;
pub mod profile;
pub mod report;
pub mod shapes;
pub mod verify;

pub use driver::{Outcome, RunConfig, run, run_detailed};
pub use report::RunReport;
