//! The IdP simulator's smoke profile against the pipeline on every topology (embedded, Kafka,
//! Kafka + Cassandra): provisioning burst, group pushes, membership churn in Entra and Okta
//! shapes, then a full check that the server's state equals the simulator's model.

use scimflow_simulator::profile::Profile;
use scimflow_simulator::report::render_table;
use scimflow_simulator::{RunConfig, run};
use scimflow_tests::{TestApp, topology_tests};

topology_tests!(the_smoke_profile_leaves_exactly_the_modelled_state);

async fn the_smoke_profile_leaves_exactly_the_modelled_state(app: TestApp) {
    let config = RunConfig {
        url: app.base_url.clone(),
        token: app.token.clone(),
        profile: Profile::smoke(),
        seed: 7,
        progress: false,
        verify: true,
    };
    let report = run(config).await.expect("the simulation starts");
    let table = render_table(&report);
    println!("{table}");
    let verification = report.verification.as_ref().expect("verified");
    assert_eq!(report.errors.unexpected, 0, "no request failed:\n{table}\n{:#?}", report.errors.samples);
    assert_eq!(verification.differences, 0, "final state equals the model:\n{table}");
    assert!(verification.users_checked > 0 && verification.groups_checked > 0);
    assert!(report.passed, "{table}");
}
