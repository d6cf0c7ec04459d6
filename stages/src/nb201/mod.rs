//! The NAS-Bench-201 cell space (Dong and Yang, ICLR 2020), a first piece of issue 29: its cells
//! ([`cell`]: four nodes, six edges, five ops, the arch string), what each cell computes
//! ([`cell::Cell::expression`], which makes equivalent cells equal), arch2vec's encoding of a cell
//! ([`encode`]) and NASLib's mutation and neighbourhood ([`moves`]). Not yet wired into any
//! stage; nothing here touches libtorch.
pub mod cell;
pub mod encode;
pub mod moves;
pub mod table;

pub use cell::{ArchError, Cell, Op, CELLS, EDGES};
