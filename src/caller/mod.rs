//! The caller's process: the public face ([`Sandbox`](sandbox::Sandbox)), the
//! zygote connection and its warm workers, the start of a job, the job driver,
//! the worker processes seen from outside, and subordinate ids.

pub(crate) mod child;
pub(crate) mod job;
pub(crate) mod sandbox;
pub(crate) mod subids;
