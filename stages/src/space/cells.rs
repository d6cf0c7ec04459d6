//! A list of cells of one space, as stages pass them in files: `NAME.nb101` (NB101's binary
//! space format, sorted by module hash, one cell per hash) or `NAME.nb201` (one NB201 arch
//! string a line, in the writer's order; equivalent cells may both appear, as their graphs
//! differ).
use std::path::{Path, PathBuf};

use super::{Arch, SearchSpace};
use crate::nb101::{ModuleHash, Space};
use crate::nb201;

/// Cells of one space, with their hashes.
#[derive(Clone, Debug)]
pub struct CellList {
    space: SearchSpace,
    entries: Vec<(ModuleHash, Arch)>,
}

/// A cell list that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CellListError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {what}", path.display())]
    Bad { path: PathBuf, what: String },
    #[error("{}: neither {stem}.nb101 nor {stem}.nb201 is there (is it sample's or train-vae's output?)", dir.display())]
    Missing { dir: PathBuf, stem: String },
}

impl CellList {
    /// Cells in the given order; NB101's are sorted by hash and deduplicated (the first kept),
    /// as its file format requires.
    pub fn new(space: SearchSpace, cells: Vec<Arch>) -> CellList {
        CellList::from_entries(space, cells.into_iter().map(|a| (a.hash(), a)).collect())
    }

    /// As [`CellList::new`], from cells whose hashes are known (no hashing again).
    pub fn from_entries(space: SearchSpace, entries: Vec<(ModuleHash, Arch)>) -> CellList {
        match space {
            SearchSpace::Nb101 => {
                let nb101 = entries
                    .into_iter()
                    .filter_map(|(h, a)| match a {
                        Arch::Nb101(c) => Some((h, c)),
                        Arch::Nb201(_) => None,
                    })
                    .collect();
                CellList::from_space(Space::from_entries(nb101))
            }
            SearchSpace::Nb201 => CellList {
                space,
                entries: entries
                    .into_iter()
                    .filter(|(_, a)| a.space() == space)
                    .collect(),
            },
        }
    }

    /// Each cell's id ([`Arch::id`]); NB101's is its stored hash, so nothing is hashed again.
    pub fn ids(&self) -> Vec<ModuleHash> {
        self.entries
            .iter()
            .map(|(h, a)| match a {
                Arch::Nb101(_) => *h,
                Arch::Nb201(_) => a.id(),
            })
            .collect()
    }

    fn from_space(s: Space) -> CellList {
        CellList {
            space: SearchSpace::Nb101,
            entries: s
                .into_entries()
                .into_iter()
                .map(|(h, c)| (h, Arch::Nb101(c)))
                .collect(),
        }
    }

    pub fn space(&self) -> SearchSpace {
        self.space
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[(ModuleHash, Arch)] {
        &self.entries
    }

    /// The file `dir/STEM.nb101` or `dir/STEM.nb201`, whichever is there.
    pub fn find(dir: &Path, stem: &str) -> Result<PathBuf, CellListError> {
        ["nb101", "nb201"]
            .iter()
            .map(|ext| dir.join(format!("{stem}.{ext}")))
            .find(|p| p.is_file())
            .ok_or_else(|| CellListError::Missing {
                dir: dir.to_path_buf(),
                stem: stem.to_string(),
            })
    }

    /// Reads a list; its space follows the file's extension.
    pub fn read(path: &Path) -> Result<CellList, CellListError> {
        let bad = |what: String| CellListError::Bad {
            path: path.to_path_buf(),
            what,
        };
        match path.extension().and_then(|e| e.to_str()) {
            Some("nb201") => {
                let text = std::fs::read_to_string(path).map_err(|source| CellListError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                let mut cells = Vec::new();
                for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
                    let c = nb201::Cell::parse(line)
                        .map_err(|e| bad(format!("line {}: {e}", i + 1)))?;
                    cells.push(Arch::Nb201(c));
                }
                Ok(CellList::new(SearchSpace::Nb201, cells))
            }
            _ => Space::read(path)
                .map(CellList::from_space)
                .map_err(|e| bad(e.to_string())),
        }
    }

    /// Writes the list in its space's format (`path` should carry the matching extension).
    pub fn write(&self, path: &Path) -> Result<(), std::io::Error> {
        match self.space {
            SearchSpace::Nb101 => {
                let cells = self
                    .entries
                    .iter()
                    .filter_map(|(h, a)| match a {
                        Arch::Nb101(c) => Some((*h, *c)),
                        Arch::Nb201(_) => None,
                    })
                    .collect();
                Space::from_entries(cells).write(path)
            }
            SearchSpace::Nb201 => {
                let mut text = String::new();
                for (_, a) in &self.entries {
                    if let Arch::Nb201(c) = a {
                        text.push_str(&c.arch_string());
                        text.push('\n');
                    }
                }
                std::fs::write(path, text)
            }
        }
    }

    /// The file extension of this list's space (`nb101`, `nb201`).
    pub fn extension(&self) -> &'static str {
        self.space.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip_through_their_files_and_bad_lines_are_located() {
        let dir = tempfile::tempdir().unwrap();
        let cells: Vec<Arch> = (0..5)
            .map(|i| Arch::Nb201(nb201::Cell::from_index(i * 7).unwrap()))
            .collect();
        let list = CellList::new(SearchSpace::Nb201, cells.clone());
        let path = dir.path().join(format!("x.{}", list.extension()));
        list.write(&path).unwrap();
        let back = CellList::read(&path).unwrap();
        assert_eq!(back.space(), SearchSpace::Nb201);
        let got: Vec<Arch> = back.entries().iter().map(|e| e.1).collect();
        assert_eq!(got, cells, "NB201 lists keep their order");
        assert_eq!(CellList::find(dir.path(), "x").unwrap(), path);
        let ids: Vec<ModuleHash> = cells.iter().map(Arch::id).collect();
        assert_eq!(back.ids(), ids);
        assert!(matches!(
            CellList::find(dir.path(), "y"),
            Err(CellListError::Missing { .. })
        ));

        let c101 = crate::search::tests::tiny_cell();
        let list = CellList::new(SearchSpace::Nb101, vec![Arch::Nb101(c101); 2]);
        assert_eq!(list.len(), 1, "NB101 lists hold a cell once");
        let path = dir.path().join("z.nb101");
        list.write(&path).unwrap();
        assert_eq!(CellList::read(&path).unwrap().entries(), list.entries());
        assert_eq!(list.ids(), vec![Arch::Nb101(c101).id()]);

        std::fs::write(dir.path().join("bad.nb201"), "|none~0|\n").unwrap();
        let e = CellList::read(&dir.path().join("bad.nb201")).unwrap_err();
        assert!(e.to_string().contains("bad.nb201: line 1:"), "{e}");
    }
}
