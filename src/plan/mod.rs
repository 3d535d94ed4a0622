//! Job plan: turns one command line into the jobs to run (one, or a sweep's
//! Cartesian product) and lays out their directories and `.hydra/` records.

pub mod rundir;
pub mod sweep;
