//! The public face: [`Sandbox`] and its builder. The workers come from the
//! [pool](crate::caller::pool); a job starts in [`start`].

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use tokio::io::AsyncRead;

use crate::caller::job::Job;
use crate::caller::pack::{self, Pack, PackInto};
use crate::caller::pool::Pool;
use crate::caller::start;
use crate::caller::subids::SubordinateIds;
use crate::error::Result;
use crate::mode::{Rung, Rungs, SandboxMode};
use crate::options::Options;
use crate::pack::PackOptions;
use crate::report::Summary;

/// A source of confined workers: start one per process (or per service) and
/// share it; it is cheap to clone.
///
/// A sandbox is tied to no runtime: it may be created on one tokio runtime
/// and used from any other, also after the first one has shut down (a
/// `static` sandbox shared by `#[tokio::test]`s, each on its own runtime, or
/// a synchronous wrapper that builds a runtime per call). Each call registers
/// the sockets it uses with the runtime it runs on, for as long as it runs.
///
/// ```no_run
/// # async fn demo() -> sandtar::Result<()> {
/// let sandbox = sandtar::Sandbox::new().await?;
/// let archive = tokio::fs::File::open("upload.tar.gz").await.map_err(|e| sandtar::Error::Read(e.into()))?;
/// std::fs::create_dir_all("/srv/unpacked").unwrap();
/// let summary = sandbox.extract(archive, "/srv/unpacked", &sandtar::Options::default()).await?;
/// println!("{} entries, {} written", summary.entries, summary.written);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Sandbox {
    pool: Arc<Pool>,
}

/// Configures a [`Sandbox`] before it starts.
#[derive(Clone, Debug)]
pub struct SandboxBuilder {
    warm_workers: u32,
    subordinate_ids: SubordinateIds,
    rungs: Rungs,
    jobs_per_zygote: u32,
}

/// The default of [`SandboxBuilder::jobs_per_zygote`].
pub(crate) const JOBS_PER_ZYGOTE: u32 = 1000;

impl Default for SandboxBuilder {
    fn default() -> Self {
        SandboxBuilder {
            warm_workers: 2,
            subordinate_ids: SubordinateIds::Never,
            rungs: Rungs::default(),
            jobs_per_zygote: JOBS_PER_ZYGOTE,
        }
    }
}

impl SandboxBuilder {
    /// How many workers to keep forked and set up ahead of demand (default 2,
    /// at least 1; with 1, two are made at first, one of them to prove the
    /// sandbox works). More helps bursts of small jobs; each idle worker
    /// costs a process of about 1 MiB. Beside them runs the zygote.
    pub fn warm_workers(mut self, count: u32) -> Self {
        self.warm_workers = count.clamp(1, 256);
        self
    }

    /// For an unprivileged caller: whether the workers' user namespace maps the
    /// caller's subordinate ids (`/etc/subuid`, `/etc/subgid`, through
    /// `newuidmap`/`newgidmap`), so that owners from the archive can be kept
    /// without root ([`SandboxMode::SubordinateIds`]). Default:
    /// [`SubordinateIds::Never`]. Ignored as root, who needs no user namespace.
    ///
    /// Files then belong to the caller's subordinate ids on the host: the caller
    /// cannot modify or remove what it does not own without entering such a
    /// namespace again (`podman unshare`, `unshare --map-users=auto`), which is
    /// why this is not the default.
    ///
    /// ```no_run
    /// # async fn demo() -> sandtar::Result<()> {
    /// use sandtar::{Options, Sandbox, SandboxMode, SubordinateIds};
    /// let sandbox = Sandbox::builder()
    ///     .subordinate_ids(SubordinateIds::IfAvailable)
    ///     .build()
    ///     .await?;
    /// let mut options = Options::layer();
    /// options.preserve_owners = sandbox.mode().can_keep_owners();
    /// # Ok(()) }
    /// ```
    pub fn subordinate_ids(mut self, policy: SubordinateIds) -> Self {
        self.subordinate_ids = policy;
        self
    }

    /// The weakest rung of the confinement ladder the sandbox may stand on
    /// (default: [`Rung::Landlock`], any rung). With [`Rung::Namespaces`], a
    /// host where namespaces cannot be had fails to build the sandbox instead
    /// of falling back to Landlock. [`SandboxMode::rung`] says which rung was
    /// reached.
    ///
    /// ```no_run
    /// # async fn demo() -> sandtar::Result<()> {
    /// let sandbox = sandtar::Sandbox::builder()
    ///     .minimum_rung(sandtar::Rung::Namespaces)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn minimum_rung(mut self, rung: Rung) -> Self {
        self.rungs.landlock = rung >= Rung::Landlock;
        self.rungs.namespaces = true;
        self
    }

    /// Stands on this rung only, never a stronger one: for trying on a host
    /// with namespaces what a container without them will get (the tests run
    /// the hostile suites on [`Rung::Landlock`] this way). Building fails if
    /// this rung cannot be had.
    ///
    /// ```no_run
    /// # async fn demo() -> sandtar::Result<()> {
    /// let sandbox = sandtar::Sandbox::builder().only_rung(sandtar::Rung::Landlock).build().await?;
    /// assert_eq!(sandbox.mode().rung(), sandtar::Rung::Landlock);
    /// # Ok(()) }
    /// ```
    pub fn only_rung(mut self, rung: Rung) -> Self {
        self.rungs.namespaces = rung == Rung::Namespaces;
        self.rungs.landlock = rung == Rung::Landlock;
        self
    }

    /// How many jobs one zygote serves before it is replaced by a freshly
    /// started one (default 1,000, at least 1).
    ///
    /// Every worker of a zygote is a fork of it and shares its address-space
    /// layout; a new zygote is a new `exec`, with a new layout. So the zygote is
    /// replaced after this many jobs (bounding what one layout is exposed to),
    /// and at once after a worker ends abnormally: without a result (it
    /// crashed, or something else killed it), after breaking the protocol, or
    /// by a signal other than the SIGKILL the caller sends once the result is
    /// in, or with a non-zero status (the worker exits with 0 after its last
    /// message). An exploit that probes the layout by crashing workers thus
    /// meets a new one at every try. The old zygote's unused workers are
    /// discarded with it; running jobs finish.
    ///
    /// The job that comes first after the replacement waits for the new
    /// zygote and its first warm worker: about 2 ms on a 2-core machine
    /// (`cargo bench --bench zygote`), some 2 µs per job at the default.
    ///
    /// ```no_run
    /// # async fn demo() -> sandtar::Result<()> {
    /// let sandbox = sandtar::Sandbox::builder().jobs_per_zygote(100).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn jobs_per_zygote(mut self, jobs: u32) -> Self {
        self.jobs_per_zygote = jobs.max(1);
        self
    }

    /// Starts the zygote and warms the workers.
    ///
    /// Fails with [`Error::ConfinementUnavailable`](crate::Error::ConfinementUnavailable)
    /// if this process can neither use its privileges nor enter a user namespace.
    pub async fn build(self) -> Result<Sandbox> {
        let pool = Pool::start(
            self.warm_workers,
            self.subordinate_ids,
            self.rungs,
            u64::from(self.jobs_per_zygote),
        )
        .await?;
        // Prove that a worker can be set up here, so that a sandbox that cannot
        // confine fails now rather than at its first job.
        let probe = start::warm_worker(&pool).await?;
        pool.put_spare(probe);
        let sandbox = Sandbox {
            pool: Arc::new(pool),
        };
        Ok(sandbox)
    }
}

impl Sandbox {
    /// Starts a sandbox with the default settings: the zygote process and two
    /// warm workers.
    pub async fn new() -> Result<Sandbox> {
        SandboxBuilder::default().build().await
    }

    /// A builder for non-default settings.
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    /// How this sandbox confines its workers.
    pub fn mode(&self) -> SandboxMode {
        self.pool.mode()
    }

    /// Extracts the archive read from `reader` into the directory `dest`, and
    /// returns the summary once every entry has been handled.
    ///
    /// Per-entry problems do not make this fail: check [`Summary::rejected`],
    /// [`Summary::failed`] and [`Summary::skipped`], or use [`Sandbox::start`] to
    /// see each entry. Dropping the future stops the worker.
    pub async fn extract<R>(
        &self,
        reader: R,
        dest: impl AsRef<Path>,
        options: &Options,
    ) -> Result<Summary>
    where
        R: AsyncRead + Unpin,
    {
        self.start(reader, dest, options).await?.finish().await
    }

    /// Applies an image layer onto the existing tree `dest`, as Docker's
    /// `ApplyLayer` does: OCI whiteouts are applied (or converted, with
    /// [`WhiteoutFormat::Overlay`](crate::WhiteoutFormat::Overlay)), and the
    /// summary carries the layer's size and `diff_id`. `options` usually comes
    /// from [`Options::layer()`]; whiteouts default to OCI and the digest is always
    /// computed. Set [`Options::expected_diff_id`] to check it.
    ///
    /// ```no_run
    /// # async fn demo(sandbox: sandtar::Sandbox) -> sandtar::Result<()> {
    /// for layer in ["base.tar.gz", "app.tar.zst"] {
    ///     let file = tokio::fs::File::open(layer).await.map_err(|e| sandtar::Error::Read(e.into()))?;
    ///     let summary = sandbox.apply_layer(file, "/var/lib/rootfs", &sandtar::Options::layer()).await?;
    ///     println!("{layer}: {} bytes, {}", summary.layer_size, summary.diff_id.unwrap_or_default());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn apply_layer<R>(
        &self,
        reader: R,
        dest: impl AsRef<Path>,
        options: &Options,
    ) -> Result<Summary>
    where
        R: AsyncRead + Unpin,
    {
        let mut options = options.clone();
        if options.whiteouts.is_none() {
            options.whiteouts = Some(crate::options::WhiteoutFormat::Oci);
        }
        options.digest = true;
        self.extract(reader, dest, &options).await
    }

    /// Starts an extraction and returns the [`Job`]: a stream of per-entry reports,
    /// and [`Job::finish`] for the summary.
    ///
    /// By the time this returns, the worker is confined to `dest` (any problem with
    /// the destination has been reported) and no byte of the archive has been read.
    pub async fn start<R>(
        &self,
        reader: R,
        dest: impl AsRef<Path>,
        options: &Options,
    ) -> Result<Job<R>>
    where
        R: AsyncRead + Unpin,
    {
        start::start(&self.pool, reader, dest.as_ref(), options).await
    }

    /// Packs the tree `source` into an archive, in a worker confined to it,
    /// read-only: a mount clone of `source` alone on the namespace rung (a
    /// filesystem mounted below it is not seen: the directory under it is),
    /// read-only Landlock rights on the Landlock rung. No symlink, hard link
    /// or concurrent rename can make it read anything outside.
    ///
    /// Returns the [`Pack`]: the archive's bytes to read, the entries'
    /// reports, and the summary. Names are relative to `source`, sorted,
    /// directories before their contents; see [`PackOptions`].
    pub async fn pack(&self, source: impl AsRef<Path>, options: &PackOptions) -> Result<Pack> {
        pack::start(&self.pool, source.as_ref(), options, None).await
    }

    /// Packs the tree `source` as [`Sandbox::pack`] does, but the worker
    /// writes the archive to `out` itself: a regular file or a pipe, open
    /// for writing only (a [`std::fs::File`] from `File::create`, a pipe's
    /// write end, a child's standard input); the archive is appended to a
    /// regular file, whose offset must be at its end (or which is open for
    /// appending), and the offset is past the archive afterwards. The
    /// archive's bytes do not pass through the caller (one copy and one
    /// hop less: the fastest way to pack to a file or a pipe); the caller
    /// only takes the reports ([`PackInto`]).
    ///
    /// The worker holds `out` for the job's duration (a file made
    /// `O_APPEND` until it is gone; its flags given back and its offset
    /// past the archive when [`PackInto::finish`] returns, whatever the
    /// result; a job dropped before that leaves the file `O_APPEND`, its
    /// offset at the end), with the packing job's system-call filter: it
    /// can append to it, never write over what the file held, change its
    /// flags, its size other than by appending, its mode, owner, times or
    /// attributes. Anything else (a socket, a terminal, a descriptor open
    /// for reading, a file not at its end) is
    /// [`Error::InvalidOption`](crate::Error::InvalidOption); so is
    /// [`PackOptions::digest`] with a pipe (the caller does not see the
    /// bytes; with a regular file it reads them back).
    pub async fn pack_into(
        &self,
        source: impl AsRef<Path>,
        options: &PackOptions,
        out: impl Into<OwnedFd>,
    ) -> Result<PackInto> {
        let pack = pack::start(&self.pool, source.as_ref(), options, Some(out.into())).await?;
        Ok(PackInto::new(pack))
    }

    /// Copies the tree `source` into the directory `dest` through a tar
    /// stream between two confined workers (one packing `source`, read-only,
    /// one extracting into `dest` with `options`), without a temporary file;
    /// returns the extraction's summary. Docker's `CopyWithTar`.
    pub async fn copy(
        &self,
        source: impl AsRef<Path>,
        dest: impl AsRef<Path>,
        pack_options: &PackOptions,
        options: &Options,
    ) -> Result<Summary> {
        let pack = self.pack(source, pack_options).await?;
        let mut options = options.clone();
        options.compression = pack_options.compression;
        self.extract(pack, dest, &options).await
    }
}
