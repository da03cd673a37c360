//! The worker's parse-and-apply loop, unconfined but with every path resolved
//! inside a fresh temporary directory (walked as the Landlock rung without
//! `chroot` walks it).
//!
//! Input: one selector byte, then a plain tar stream. The selector's bits:
//! bit 0: `Options::full_fidelity()` instead of `Options::default()` (as root it
//! chowns, mknods and sets security.* xattrs, inside the temporary directory
//! only); bit 1: small limits (entries, depth, name length, extension headers,
//! sizes) so that every limit check is reached; bit 2: no modification times;
//! bit 3: the other `Parsing` (strict or as GNU tar) than the preset's
//! (`sandtar::fuzzing::options_from_selector`, shared with
//! `tests/fuzz_regressions.rs`).
//! The seed corpus is real archives behind a selector byte.
//!
//! The destination has a canary file beside it: anything written next to the
//! destination, or a changed canary, is a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;

const CANARY: &[u8] = b"canary: must stay as it is";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, archive)) = data.split_first() else {
        return;
    };
    let options = sandtar::fuzzing::options_from_selector(selector);
    let outer = tempfile::Builder::new()
        .prefix("sandtar-fuzz-")
        .tempdir()
        .expect("temporary directory");
    let dest = outer.path().join("dest");
    std::fs::create_dir(&dest).expect("destination");
    let canary = outer.path().join("canary");
    std::fs::write(&canary, CANARY).expect("canary");

    let _ = sandtar::fuzzing::extract_unconfined(archive, &dest, &options);

    let mut beside: Vec<_> = std::fs::read_dir(outer.path())
        .expect("listing the outer directory")
        .map(|e| e.expect("entry").file_name())
        .collect();
    beside.sort();
    assert_eq!(
        beside,
        ["canary", "dest"],
        "something was written beside the destination"
    );
    assert_eq!(
        std::fs::read(&canary).expect("canary"),
        CANARY,
        "the canary changed"
    );
    // Entries may leave read-only directories; root removes them anyway.
    if let Err(e) = outer.close() {
        panic!("removing the temporary directory: {e}");
    }
});
