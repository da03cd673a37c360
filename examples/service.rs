//! `service`: an HTTP service that extracts uploaded tar archives inside
//! sandtar's sandbox, streaming each upload straight from the socket to a
//! confined worker (the body is never held in memory whole).
//!
//! ```text
//! cargo run --example service [BASE_DIR]    # or SANDTAR_SERVICE_DIR; default: a new temporary directory
//! SANDTAR_SERVICE_ADDR=127.0.0.1:0 cargo run --example service   # default 127.0.0.1:3000
//!
//! curl -sS --data-binary @site.tar.gz http://127.0.0.1:3000/extract
//! curl -sS -X POST -T site.tar.zst http://127.0.0.1:3000/extract   # -T streams a large file
//! ```
//!
//! `POST /extract` extracts the request body (plain tar, gzip, zstd, xz,
//! bzip2 or lz4) into a new directory `BASE_DIR/<id>` and answers with the summary and
//! the entries that were not written:
//!
//! ```json
//! {"id":"upload-Xq3Yk1","entries":3,"written":2,"listed":0,"skipped":0,"not_selected":0,
//!  "rejected":1,"failed":0,"bytes_written":10,"archive_bytes":10240,"tar_bytes":10240,
//!  "compression":"gzip","elapsed_ms":4,"diff_id":null,"digest":null,"layer_size":12,
//!  "rung":"namespaces","not_written":[{"path":"../escape","kind":"file","size":2,
//!  "outcome":"rejected","reason":"parent-component","message":"name has a '..' component"}]}
//! ```
//!
//! Errors are JSON too (`{"error": "..."}`): 400 malformed archive, 413 a limit
//! or the body size exceeded (with `"limit"`), 408 too slow, 503 confinement
//! unavailable or too many uploads at once, 500 anything else. While a job runs, its files are in `BASE_DIR/<id>.partial`;
//! the directory is renamed to `BASE_DIR/<id>` only once the job succeeded, so
//! a tree without the suffix is always complete. A failed or cancelled job leaves
//! its `.partial` directory behind (sweep them as you see fit).
//!
//! Logs go to stderr (`RUST_LOG=debug` for more); the first line on stdout is
//! `listening on http://ADDR`.

pub mod app {
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::Duration;

    use axum::body::Body;
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use axum::{Json, Router};
    use futures_util::StreamExt;
    use sandtar::{Error, Options, Outcome, Sandbox, Summary};
    use serde_json::{json, Value};
    use tokio::io::AsyncRead;
    use tokio::sync::Semaphore;
    use tokio_util::io::StreamReader;
    use tracing::Instrument;

    /// At most this many entries that were not written are listed in a response
    /// (the counts are always exact).
    const MAX_LISTED: usize = 1000;

    /// What every upload is held to.
    #[derive(Clone, Debug)]
    pub struct Config {
        /// Each upload is extracted into a new directory below this one.
        pub base: PathBuf,
        /// The options of every job, limits included.
        pub options: Options,
        /// The longest one upload may take, from the request to the summary.
        pub timeout: Duration,
        /// The largest request body (the compressed archive) accepted, in bytes.
        pub max_body: u64,
        /// The most uploads extracted at once; more get 503.
        pub max_jobs: usize,
    }

    impl Config {
        /// Tight defaults for uploads from strangers.
        pub fn new(base: PathBuf) -> Self {
            // The safe preset (no device nodes, no setuid bits, files owned by us)
            // with limits sized for uploads rather than for whole disk images.
            let mut options = Options::default();
            options.limits.max_total_size = 256 << 20; // file data, uncompressed
            options.limits.max_entries = 100_000;
            Config {
                base,
                options,
                timeout: Duration::from_secs(60),
                max_body: 256 << 20,
                max_jobs: 32,
            }
        }
    }

    /// Shared by all requests: cloning a `Sandbox` is cheap, and one sandbox
    /// (one zygote process) serves any number of concurrent jobs.
    #[derive(Clone)]
    struct AppState {
        sandbox: Sandbox,
        config: Arc<Config>,
        /// One permit per job in progress: each job is a worker process.
        jobs: Arc<Semaphore>,
    }

    /// The service's routes.
    pub fn router(sandbox: Sandbox, config: Config) -> Router {
        let state = AppState {
            sandbox,
            jobs: Arc::new(Semaphore::new(config.max_jobs)),
            config: Arc::new(config),
        };
        Router::new()
            .route("/extract", post(extract))
            .with_state(state)
    }

    /// `POST /extract`: the body is the archive.
    async fn extract(State(state): State<AppState>, body: Body) -> Response {
        let Ok(_permit) = state.jobs.clone().try_acquire_owned() else {
            let body = Json(json!({ "error": "too many uploads in progress" }));
            return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
        };
        // A fresh directory per upload, `upload-XXXXXX.partial`, mode 0700.
        let partial = match tempfile::Builder::new()
            .prefix("upload-")
            .suffix(".partial")
            .tempdir_in(&state.config.base)
        {
            Ok(dir) => dir.keep(), // the tree outlives this request
            Err(e) => {
                tracing::error!(base = %state.config.base.display(), "cannot create a directory: {e}");
                let body = Json(json!({ "error": "cannot create a directory" }));
                return (StatusCode::INTERNAL_SERVER_ERROR, body).into_response();
            }
        };
        let name = partial.file_name().unwrap().to_string_lossy();
        let id = name.trim_end_matches(".partial").to_string();

        // Cancellation needs no code: dropping a `Job` kills its worker. A
        // client that disconnects mid-upload makes the body stream fail (the
        // job ends with `Error::Read`). One that disconnects after sending
        // everything is noticed by hyper, which then drops this future and the
        // job in it; but hyper reads the socket only when the body is polled,
        // so it sees the end of the connection only after the worker has
        // taken in all the bytes sent before it (the limits and the timeout
        // bound that work). The guard below logs this second case.
        let span = tracing::info_span!("upload", %id);
        let cancelled = LogIfDropped(Some(span.clone()));
        let response = upload(&state, body, &partial, &id).instrument(span).await;
        cancelled.disarm();
        response
    }

    /// Extracts `body` into `partial`, then renames it to `<base>/<id>`.
    async fn upload(state: &AppState, body: Body, partial: &Path, id: &str) -> Response {
        let config = &state.config;
        let archive = body_reader(body, config.max_body);
        let job = run(&state.sandbox, archive, partial, &config.options);
        let (summary, not_written) = match tokio::time::timeout(config.timeout, job).await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => return sandtar_error(id, &e),
            Err(_elapsed) => {
                // `timeout` dropped the job future, which killed the worker.
                tracing::warn!(timeout = ?config.timeout, "upload timed out");
                let message = format!("the upload took longer than {:?}", config.timeout);
                return error(id, StatusCode::REQUEST_TIMEOUT, &message);
            }
        };
        if let Err(e) = tokio::fs::rename(partial, config.base.join(id)).await {
            tracing::error!("cannot rename {}: {e}", partial.display());
            return error(
                id,
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot store the upload",
            );
        }
        // The summary as sandtar serializes it, with the upload's id and the
        // entries that were not written.
        let mut body = serde_json::to_value(&summary).unwrap_or_default();
        body["id"] = json!(id);
        body["not_written"] = json!(not_written);
        Json(body).into_response()
    }

    /// Logs, in its span, if the request's future is dropped before it answered.
    struct LogIfDropped(Option<tracing::Span>);

    impl LogIfDropped {
        fn disarm(mut self) {
            self.0 = None;
        }
    }

    impl Drop for LogIfDropped {
        fn drop(&mut self) {
            if let Some(span) = self.0.take() {
                let message = "dropped before answering (the client went away); worker killed";
                span.in_scope(|| tracing::warn!("{message}"));
            }
        }
    }

    /// Runs one job, keeping the reports of entries that were not written.
    async fn run(
        sandbox: &Sandbox,
        archive: impl AsyncRead + Unpin,
        dest: &Path,
        options: &Options,
    ) -> sandtar::Result<(Summary, Vec<Value>)> {
        let mut job = sandbox.start(archive, dest, options).await?;
        let mut not_written = Vec::new();
        while let Some(report) = job.next().await {
            let report = report?;
            if report.outcome != Outcome::Written && not_written.len() < MAX_LISTED {
                not_written.push(serde_json::to_value(&report).unwrap_or_default());
            }
        }
        Ok((job.finish().await?, not_written))
    }

    /// The request body as an `AsyncRead`, failing once it exceeds `max` bytes.
    ///
    /// axum's `DefaultBodyLimit` does not apply to a body read as a stream, so
    /// the limit is counted here. Chunks flow through as they arrive: memory
    /// stays at one chunk, and hyper stops reading the socket while the
    /// worker is busy (backpressure all the way to the client).
    fn body_reader(body: Body, max: u64) -> impl AsyncRead + Unpin + Send {
        let mut seen = 0u64;
        let chunks = body.into_data_stream().map(move |chunk| {
            let chunk = chunk.map_err(io::Error::other)?;
            seen += chunk.len() as u64;
            if seen > max {
                let message = format!("the request body exceeds {max} bytes");
                return Err(io::Error::new(io::ErrorKind::FileTooLarge, message));
            }
            Ok(chunk)
        });
        StreamReader::new(chunks)
    }

    /// Maps an error that ended a job to a response.
    /// (sandtar has logged the error in the job's span already.)
    fn sandtar_error(id: &str, e: &Error) -> Response {
        let status = match e {
            Error::NotTar(_) | Error::MalformedArchive { .. } | Error::UnmappedId { .. } => {
                StatusCode::BAD_REQUEST
            }
            Error::LimitExceeded { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Read(io) if io.kind() == io::ErrorKind::FileTooLarge => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            // The client sent a broken body, or went away (then nobody reads this).
            Error::Read(_) => StatusCode::BAD_REQUEST,
            Error::ConfinementUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            // Details (paths, pids) stay in the log.
            return error(id, status, status.canonical_reason().unwrap_or("error"));
        }
        let mut body = json!({ "id": id, "error": e.to_string() });
        if let Error::LimitExceeded { limit, .. } = e {
            body["limit"] = json!(limit);
        } else if status == StatusCode::PAYLOAD_TOO_LARGE {
            body["limit"] = json!("max_body");
        }
        (status, Json(body)).into_response()
    }

    fn error(id: &str, status: StatusCode, message: &str) -> Response {
        (status, Json(json!({ "id": id, "error": message }))).into_response()
    }
}

#[allow(dead_code)] // tests/service.rs includes this file for `app` alone
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // sandtar logs each job in a `sandtar_job` span (id, dest, worker_pid),
    // here nested in the handler's `upload{id}` span.
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|level| level.parse().ok())
        .unwrap_or(tracing_subscriber::filter::LevelFilter::INFO);
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .init();

    let base = match std::env::args_os()
        .nth(1)
        .or_else(|| std::env::var_os("SANDTAR_SERVICE_DIR"))
    {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            std::path::PathBuf::from(dir)
        }
        None => tempfile::Builder::new()
            .prefix("sandtar-service-")
            .tempdir()?
            .keep(),
    };
    let addr = std::env::var("SANDTAR_SERVICE_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());

    // Once per process. Fails with Error::ConfinementUnavailable where workers
    // cannot be confined (no root and no user namespaces): better not to serve.
    let sandbox = sandtar::Sandbox::new().await?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    tracing::info!(base = %base.display(), mode = ?sandbox.mode(), "extracting uploads");

    let app = app::router(sandbox, app::Config::new(base));
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
