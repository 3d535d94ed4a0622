//! Config composition with Hydra 1.3's semantics: search path, defaults list, YAML,
//! override grammar, interpolation. Pure data in, pure data out: no burn, no run dirs.

pub mod arith;
pub mod compose;
pub mod de;
pub mod defaults;
pub mod interp;
pub mod node;
pub mod overrides;
pub mod sources;
pub mod suggest;
pub mod yaml;

pub use compose::{compose, Composed, Mode, Request};
pub use node::{Node, Value};
