//! Snapshot decoding (a proxy reads saved and received table snapshots
//! with it): never panics on any bytes; what it accepts re-encodes to
//! bytes that decode to the same snapshot and build a table.
#![no_main]

use ipgate_policy::snapshot::Snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(snapshot) = Snapshot::decode(data) else {
        return;
    };
    let again = snapshot.encode();
    match Snapshot::decode(&again) {
        Ok(back) => assert_eq!(back, snapshot, "re-encoded differently"),
        Err(e) => panic!("a decoded snapshot re-encodes to refused bytes: {e}"),
    }
    let table = snapshot.to_table();
    assert_eq!(table.accounts(), snapshot.contents().accounts.len());
});
