#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Once;

fuzz_target!(|data: &[u8]| {
    // The workbook reader turns a panic inside the third-party parser into an error
    // (`ingest::xlsx::read`); libfuzzer-sys's hook would abort on it before it is caught, so
    // the default hook is put back. A panic that escapes still aborts the run.
    static HOOK: Once = Once::new();
    HOOK.call_once(|| drop(std::panic::take_hook()));
    let _ = breakdesk::fuzzing::workbook_ingest(data);
});
