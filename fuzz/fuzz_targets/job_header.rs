//! The worker's decoding of a job header (magic, length, postcard payload).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sandtar::fuzzing::decode_job_header(data);
});
