//! The NAS-Bench-201 cell space (Dong and Yang, ICLR 2020): its cells ([`cell`]: four nodes, six
//! edges, five ops, the arch string, the authors' isomorphism key), arch2vec's encoding of a cell
//! ([`encode`]), NASLib's mutation and neighbourhood ([`moves`]), the network's parameter and
//! multiply-accumulate counts ([`params`]; the network itself is in `nasflow-torch`) and the
//! built-in table of all 15,625 cells ([`table`]). Nothing here touches libtorch.
pub mod cell;
pub mod encode;
pub mod moves;
pub mod params;
pub mod table;

pub use cell::{ArchError, Cell, Op, CELLS, EDGES};
