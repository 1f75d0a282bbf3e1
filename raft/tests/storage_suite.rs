//! openraft's storage conformance suite over the sled log and state machine store.

mod common;

use common::Journal;
use swarm_raft::openraft::testing::{StoreBuilder, Suite};
use swarm_raft::openraft::StorageError;
use swarm_raft::store::{open_db, LogStore, StateMachineStore};
use swarm_raft::TypeConfig;

type C = TypeConfig<Journal>;

struct SledBuilder;

impl StoreBuilder<C, LogStore<C>, StateMachineStore<Journal>, tempfile::TempDir> for SledBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore<C>, StateMachineStore<Journal>), StorageError<u64>>
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open_db(dir.path()).expect("open sled");
        let log_store = LogStore::new(&db).expect("log store");
        let state_machine = StateMachineStore::new(&db, dir.path().join(swarm_raft::SNAPSHOT_DIR))
            .expect("state machine store");
        Ok((dir, log_store, state_machine))
    }
}

#[test]
fn sled_store_passes_openraft_suite() {
    if let Err(e) = Suite::test_all(SledBuilder) {
        panic!("storage suite: {e}");
    }
}
