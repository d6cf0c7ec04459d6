//! The NAS-Bench-101 search space, exactly as google-research/nasbench defines it: cells and
//! their pruning and validity ([`cell`]), the module hash ([`hash`]), arch2vec's encoding
//! ([`encode`]), enumeration of all 423,624 cells and its binary file ([`space`]), the network's
//! channel plan and parameter count ([`params`]), and NB101's benchmark tables ([`tables`],
//! [`tfrecord`]). Nothing here touches libtorch.
// Matrix code indexes rows and columns by vertex number; iterator forms read worse here.
#![allow(clippy::needless_range_loop)]

pub mod cell;
pub mod encode;
pub mod hash;
pub mod params;
pub mod paths;
pub mod space;
pub mod tables;
pub mod tfrecord;

pub use cell::{Cell, CellError, Op};
pub use encode::Arch2vec;
pub use hash::{module_hash, ModuleHash};
pub use space::Space;
pub use tables::{Figures, Table, TableError};
