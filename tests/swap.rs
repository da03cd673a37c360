//! The destination is swapped for another directory between the caller's open
//! and the worker's mount (`renameat2(RENAME_EXCHANGE)` in a tight loop): every
//! job either writes into the very directory the caller opened, or fails with
//! `Error::DestinationChanged` before reading a byte. Never the other directory.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use rustix::fs::{renameat_with, RenameFlags, CWD};
use sandtar::{Error, Options, Sandbox};

fn marker(name: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(6);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, &b"marker"[..]).unwrap();
    b.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapped_destination_is_detected_or_harmless() {
    let sandbox = Sandbox::new().await.unwrap();
    let base = tempfile::tempdir().unwrap();
    let (a, b) = (base.path().join("a"), base.path().join("b"));
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    let (mut ok, mut changed, mut total_swaps) = (0, 0, 0);
    for round in 0..200 {
        let name = format!("m{round}");
        let data = marker(&name);
        // Exchange `a` and `b` as fast as possible while the job starts.
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicU64::new(0));
        let racer = {
            let (a, b, stop, swaps) = (a.clone(), b.clone(), stop.clone(), swaps.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if renameat_with(CWD, &a, CWD, &b, RenameFlags::EXCHANGE).is_ok() {
                        swaps.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        let result = sandbox.extract(&data[..], &a, &Options::default()).await;
        stop.store(true, Ordering::Relaxed);
        racer.join().unwrap();
        total_swaps += swaps.load(Ordering::Relaxed);
        // Which of the two directories was at `a` when the caller opened it is
        // up to the race; the marker must be in exactly one of them, or (when the
        // worker saw another directory than the caller's descriptor) nowhere.
        let found = [&a, &b].iter().filter(|d| d.join(&name).exists()).count();
        match result {
            Ok(summary) => {
                assert_eq!(summary.written, 1, "round {round}");
                assert_eq!(
                    found, 1,
                    "round {round}: the marker is in exactly one directory"
                );
                ok += 1;
            }
            Err(Error::DestinationChanged { .. }) => {
                assert_eq!(found, 0, "round {round}: nothing written after a refusal");
                changed += 1;
            }
            Err(e) => panic!("round {round}: {e}"),
        }
    }
    println!("{ok} jobs written, {changed} refused as DestinationChanged, {total_swaps} swaps");
    assert!(total_swaps > 0);
}
