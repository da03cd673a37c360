//! The library's tracing: a span per job (id, destination, worker pid) and an
//! event with the outcome counts; nothing at all without a subscriber.

use std::io::Write;
use std::sync::{Arc, Mutex};

use sandtar::{Options, Sandbox};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn archive() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for name in ["a.txt", "../escape.txt"] {
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        // The tar crate refuses `..` in set_path: write the name field directly.
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, &b"hi"[..]).unwrap();
    }
    b.into_inner().unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn jobs_are_traced() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let sandbox = Sandbox::new().await.unwrap();
    let dest = tempfile::tempdir().unwrap();
    let summary = sandbox
        .extract(&archive()[..], dest.path(), &Options::default())
        .await
        .unwrap();
    assert_eq!((summary.written, summary.rejected), (1, 1));
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("zygote started"), "{text}");
    assert!(text.contains("sandtar_job{id="), "{text}");
    assert!(text.contains("worker_pid="), "{text}");
    assert!(text.contains("extraction finished"), "{text}");
    assert!(
        text.contains("written=1") && text.contains("rejected=1"),
        "{text}"
    );
    assert!(
        text.contains("outcome=\"rejected\""),
        "per-entry trace events: {text}"
    );

    // A job dropped half way says so.
    let (_writer, reader) = tokio::io::duplex(1024);
    let job = sandbox
        .start(reader, dest.path(), &Options::default())
        .await
        .unwrap();
    drop(job);
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("job dropped before it finished"), "{text}");

    // A failed job is a warning with the error.
    let missing = dest.path().join("missing");
    assert!(sandbox
        .extract(&archive()[..], &missing, &Options::default())
        .await
        .is_err());
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("WARN") && text.contains("does not exist"),
        "{text}"
    );
}
