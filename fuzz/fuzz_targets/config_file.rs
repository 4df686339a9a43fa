#![no_main]

use libfuzzer_sys::fuzz_target;

// Text targets: input that is not UTF-8 is no input (the product reads these as text).
fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = breakdesk::fuzzing::config_file(text);
    }
});
