//! Run artifacts on disk that other commands read back: the `.npz` snapshot archive
//! (written by the tracker, read by `inspect` and the plots), and metrics' directions.

pub mod archive;
pub mod compare;
pub mod metric;
pub mod npz;
pub mod run;
