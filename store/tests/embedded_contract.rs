//! The store contract (`contract/mod.rs`) against the embedded (redb) store.

mod contract;

use contract::Scope;
use scimflow_store::embedded::EmbeddedStore;

fn store() -> (tempfile::TempDir, EmbeddedStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("store.redb")).unwrap();
    (dir, store)
}

macro_rules! contract_tests {
    ($($check:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let (_dir, store) = store();
            contract::$check(&store, &Scope::new("acme", 0)).await;
        }
    )*};
}

contract_tests!(
    folds_like_the_reference_in_any_batching,
    tenants_never_see_each_others_rows,
    accepted_commands_publish_changes_and_rejected_ones_do_not,
    large_groups_page_in_member_order_and_clear,
    resources_page_in_id_order,
    mutations_on_one_row_apply_in_batch_order,
    recommitting_a_batch_is_idempotent,
    empty_batches_advance_the_position,
    positions_keep_the_tenants_folded_ahead,
);
