//! sandtar: extract untrusted tar archives from async Rust, inside a confined
//! worker process.
#![deny(missing_docs)]

mod child;
mod error;
mod job;
mod options;
mod protocol;
mod report;
mod sandbox;
mod sys;
mod worker;
mod zygote;

pub use error::{Error, Result};
pub use job::Job;
pub use options::{Compression, ModePolicy, Options, XattrPolicy};
pub use protocol::SandboxMode;
pub use report::{EntryKind, EntryReport, Outcome, RejectReason, SkipReason, Summary};
pub use sandbox::{Sandbox, SandboxBuilder};
