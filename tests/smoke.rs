use sandtar::{Options, Sandbox};

#[tokio::test]
async fn smoke() {
    let sandbox = Sandbox::new().await.unwrap();
    println!("mode {:?}", sandbox.mode());
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "dir/hello.txt", &b"hello"[..])
        .unwrap();
    let data = b.into_inner().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let mut job = sandbox
        .start(&data[..], dest.path(), &Options::default())
        .await
        .unwrap();
    while let Some(r) = job.next().await {
        println!("{:?}", r);
    }
    let s = job.finish().await.unwrap();
    println!("{s:?}");
    assert_eq!(
        std::fs::read(dest.path().join("dir/hello.txt")).unwrap(),
        b"hello"
    );
}
