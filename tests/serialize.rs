//! Results and public enums serialize with `serde`, with the same lower-case
//! names their `name()`/`code()` give: a real job's reports and summary as
//! JSON, and every enum's names checked against each other.

mod common;

use common::raw::Tar;
use sandtar::{
    Compression, DigestKind, Divergence, EntryKind, Limit, ModePolicy, Options, Parsing,
    RejectReason, Rung, SandboxMode, SkipReason, WhiteoutFormat, XattrPolicy,
};
use serde_json::{json, Value};

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

#[tokio::test]
async fn a_jobs_reports_and_summary_as_json() {
    let sandbox = common::new_sandbox().await;
    let scene = common::Scene::new();
    let archive = Tar::new()
        .file("ok.txt", b"ok\n")
        .file("../escape.txt", b"no\n")
        .hardlink("dangling", "missing")
        .device("dev/null", b'3', 1, 3)
        .finish();
    let mut options = Options::default();
    options.compression = Compression::None;
    let run = common::run(&sandbox, &archive, &scene.dest, &options).await;
    let reports: Vec<Value> = run.reports.iter().map(to_json).collect();
    assert_eq!(
        reports[0],
        json!({"path": "ok.txt", "kind": "file", "size": 3, "outcome": "written"})
    );
    assert_eq!(
        reports[1],
        json!({"path": "../escape.txt", "kind": "file", "size": 3, "outcome": "rejected",
               "reason": "parent-component", "message": "name has a '..' component"})
    );
    assert_eq!(reports[2]["kind"], "hardlink");
    assert_eq!(reports[2]["outcome"], "failed");
    assert!(reports[2].get("reason").is_none());
    assert!(reports[2]["message"]
        .as_str()
        .unwrap()
        .contains("No such file"));
    assert_eq!(reports[3]["kind"], "char-device");
    assert_eq!(reports[3]["reason"], "devices-not-allowed");
    let summary = to_json(run.summary());
    for (field, value) in [
        ("entries", json!(4)),
        ("written", json!(1)),
        ("skipped", json!(1)),
        ("not_selected", json!(0)),
        ("rejected", json!(1)),
        ("failed", json!(1)),
        ("compression", json!("none")),
        ("rung", json!(run.summary().rung.to_string())),
        ("diff_id", Value::Null),
    ] {
        assert_eq!(summary[field], value, "{field} in {summary}");
    }
    assert!(summary["elapsed_ms"].is_u64(), "{summary}");
    scene.check();
}

#[tokio::test]
async fn notes_of_gnu_readings_as_json() {
    let sandbox = common::new_sandbox().await;
    let scene = common::Scene::new();
    // Two long names (the last wins), and a symlink whose header claims data.
    let mut link = common::raw::Header::new("link", b'2', 512).link("target");
    link = link.mode(0o777);
    let archive = Tar::new()
        .gnu_long_name("first")
        .gnu_long_name("second")
        .file("x", b"x")
        .header(&link)
        .file("after", b"a")
        .finish();
    let mut options = Options::default();
    options.parsing = Parsing::GnuTar;
    let run = common::run(&sandbox, &archive, &scene.dest, &options).await;
    let reports: Vec<Value> = run.reports.iter().map(to_json).collect();
    assert_eq!(
        reports[0],
        json!({"path": "second", "kind": "file", "size": 1, "outcome": "written",
               "notes": ["repeated-extension"]})
    );
    assert_eq!(reports[1]["notes"], json!(["size-ignored"]));
    // The 512 bytes the symlink claims are the next header: `after`.
    assert_eq!(reports[2]["path"], "after");
    assert!(reports[2].get("notes").is_none());
    assert_eq!(run.summary().entries, 3);
}

#[test]
fn enums_serialize_as_they_name_themselves() {
    let kinds = [
        EntryKind::File,
        EntryKind::Directory,
        EntryKind::Symlink,
        EntryKind::HardLink,
        EntryKind::Fifo,
        EntryKind::CharDevice,
        EntryKind::BlockDevice,
        EntryKind::Whiteout,
    ];
    for kind in kinds {
        assert_eq!(to_json(&kind), json!(kind.name()));
    }
    assert_eq!(to_json(&EntryKind::Other(b'V')), json!({"other": 86}));
    let skips = [
        SkipReason::DevicesNotAllowed,
        SkipReason::DevicesNotPermitted,
        SkipReason::FifosNotAllowed,
        SkipReason::WhiteoutMetadata,
        SkipReason::NotSelected,
        SkipReason::StrippedAway,
        SkipReason::Exists,
    ];
    for reason in skips {
        assert_eq!(to_json(&reason), json!(reason.code()));
    }
    let unsupported = SkipReason::UnsupportedType(b'V');
    assert_eq!(to_json(&unsupported), json!({ unsupported.code(): 86 }));
    let rejects = [
        RejectReason::ParentComponent,
        RejectReason::EmptyName,
        RejectReason::NulInName,
        RejectReason::BadLinkTarget,
        RejectReason::NameTooLong,
        RejectReason::MalformedWhiteout,
    ];
    for reason in rejects {
        assert_eq!(to_json(&reason), json!(reason.code()));
    }
    let compressions = [
        Compression::Auto,
        Compression::None,
        Compression::Gzip,
        Compression::Zstd,
        Compression::Xz,
        Compression::Bzip2,
        Compression::Lz4,
    ];
    for compression in compressions {
        assert_eq!(to_json(&compression), json!(compression.name()));
    }
    for limit in [Limit::MaxEntries, Limit::MaxSparseSize, Limit::MaxCpuTime] {
        assert_eq!(to_json(&limit), json!(limit.name()));
    }
    for kind in [DigestKind::Blob, DigestKind::DiffId] {
        assert_eq!(to_json(&kind), json!(kind.name()));
    }
    for rung in [Rung::Namespaces, Rung::Landlock] {
        assert_eq!(to_json(&rung), json!(rung.to_string()));
    }
    let divergences = [
        Divergence::RepeatedExtension,
        Divergence::SizeIgnored,
        Divergence::BlankSize,
        Divergence::CutAtNul,
        Divergence::BadPaxTime,
        Divergence::ExtensionAcrossGlobal,
        Divergence::UnmarkedExtension,
        Divergence::SignedChecksum,
        Divergence::SparseEndsWithMap,
    ];
    for divergence in divergences {
        assert_eq!(to_json(&divergence), json!(divergence.code()));
    }
    assert_eq!(to_json(&Parsing::GnuTar), json!("gnu-tar"));
    assert_eq!(to_json(&ModePolicy::Safe), json!("safe"));
    assert_eq!(to_json(&XattrPolicy::User), json!("user"));
    assert_eq!(to_json(&WhiteoutFormat::Oci), json!("oci"));
    assert_eq!(to_json(&sandtar::Overwrite::Keep), json!("keep"));
    assert_eq!(to_json(&SandboxMode::Privileged), json!("privileged"));
    assert_eq!(
        to_json(&SandboxMode::UserNamespace { uid: 1, gid: 2 }),
        json!({"user-namespace": {"uid": 1, "gid": 2}})
    );
    // Options keep their round trip through JSON (a service's configuration).
    let options = Options::full_fidelity();
    let text = serde_json::to_string(&options).unwrap();
    assert!(text.contains("\"compression\":\"auto\""), "{text}");
    assert_eq!(serde_json::from_str::<Options>(&text).unwrap(), options);
}
