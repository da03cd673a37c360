//! Files that shrink or grow while they are packed: the entry keeps the
//! size its header promised (padded with zeros, or cut, as GNU tar does), is
//! reported failed, and the archive stays framed: every later member is read
//! whole. A large file (read in many pieces) and a small one (in one read)
//! are raced. As root and as `nobody`.

mod common;

use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{gnu_tar, gnu_tar_available, Scene};
use sandtar::{Outcome, PackOptions, Sandbox};

root_and_nobody!(shrinking_files_keep_the_archive_framed);

const AFTER: &[u8] = b"the member after the shrinking ones\n";

async fn shrinking_files_keep_the_archive_framed(sandbox: Sandbox) {
    let scene = Scene::new();
    let sizes = [("a-large", 8u64 << 20), ("b-small", 48 << 10)];
    for (name, size) in sizes {
        let file = std::fs::File::create(scene.dest.join(name)).unwrap();
        file.write_all_at(&vec![b'x'; size as usize], 0).unwrap();
    }
    std::fs::write(scene.dest.join("z-after.txt"), AFTER).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let shrinkers: Vec<_> = sizes
        .iter()
        .map(|&(name, size)| {
            let (path, stop) = (scene.dest.join(name), stop.clone());
            std::thread::spawn(move || {
                let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
                let pause = std::time::Duration::from_micros(100);
                while !stop.load(Ordering::Relaxed) {
                    file.set_len(size / 3).unwrap();
                    std::thread::sleep(pause);
                    file.set_len(size).unwrap();
                    std::thread::sleep(pause);
                }
            })
        })
        .collect();
    let (mut shrank, mut grew) = ([0, 0], [0, 0]);
    for _ in 0..300 {
        let mut pack = sandbox
            .pack(&scene.dest, &PackOptions::default())
            .await
            .unwrap();
        let mut archive = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut pack, &mut archive)
            .await
            .unwrap();
        let reports: Vec<_> = pack.reports().collect();
        pack.finish()
            .await
            .expect("a shrinking file fails its entry, not the job");
        for (i, (name, _)) in sizes.iter().enumerate() {
            let report = reports.iter().find(|r| r.path.ends_with(name)).unwrap();
            match &report.outcome {
                Outcome::Written => {}
                Outcome::Failed(message) if message.contains("shrank") => shrank[i] += 1,
                // Listed while cut, read after it grew back: cut too.
                Outcome::Failed(message) if message.contains("grew") => grew[i] += 1,
                other => panic!("{name}: {other:?}"),
            }
        }
        let out = tempfile::tempdir().unwrap();
        let out = out.path();
        let run = common::run(&sandbox, &archive, out, &sandtar::Options::default()).await;
        run.summary();
        assert_eq!(std::fs::read(out.join("z-after.txt")).unwrap(), AFTER);
        for (name, size) in sizes {
            // The size listed (the shrinker may have cut the file just then).
            let len = std::fs::metadata(out.join(name)).unwrap().len();
            assert!(len == size || len == size / 3, "{name}: {len} bytes");
        }
        if gnu_tar_available() {
            let (listing, ok, err) = gnu_tar(&["-t"], None, &archive);
            assert!(ok, "GNU tar -t: {err}");
            assert_eq!(
                String::from_utf8(listing).unwrap(),
                "a-large\nb-small\nz-after.txt\n"
            );
        }
        if shrank.iter().all(|&n| n > 0) && grew.iter().sum::<u32>() > 0 {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for s in shrinkers {
        s.join().unwrap();
    }
    println!(
        "packs with a shrunk file: large {}, small {}; a grown one: large {}, small {}",
        shrank[0], shrank[1], grew[0], grew[1]
    );
    assert!(
        shrank.iter().all(|&n| n > 0) && grew.iter().sum::<u32>() > 0,
        "the race never hit both files shrinking and one growing in 300 packs: \
         shrank {shrank:?}, grew {grew:?}"
    );
    scene.check();
}
