//! Callbacks that turn training events into run outputs: metrics files, the progress
//! view and log, checkpoints. Each flushes as it goes so a crash loses nothing written.

pub mod checkpoint;
pub mod metrics;
pub mod progress;

pub use checkpoint::Checkpointer;
pub use metrics::MetricsWriter;
pub use progress::Progress;
