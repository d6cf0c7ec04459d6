//! The one place where stage kind names meet stage functions: the engine's own `cmd` kind, the
//! engine's test kinds, and the NAS kinds of the `nasflow-stages` crate.
use nasflow_stages::KindSpec;

use crate::testkinds;

/// Bumped when the `cmd` contract (environment, params file) changes; part of every cmd key.
pub const CMD_VERSION: u32 = 1;

/// A kind as the engine sees it.
#[derive(Clone, Copy, Debug)]
pub enum KindRef {
    /// `kind = "cmd"`: a user's shell command (see the `cmd` module).
    Cmd,
    Spec(&'static KindSpec),
}

impl KindRef {
    pub fn version(self) -> u32 {
        match self {
            KindRef::Cmd => CMD_VERSION,
            KindRef::Spec(s) => s.version,
        }
    }
    pub fn reads_seed(self) -> bool {
        match self {
            KindRef::Cmd => true,
            KindRef::Spec(s) => s.reads_seed,
        }
    }
    pub fn uses_device(self) -> bool {
        match self {
            KindRef::Cmd => false,
            KindRef::Spec(s) => s.uses_device,
        }
    }
}

/// The utility subcommands of the stage crate (`nasflow nb101 ...`).
pub fn tools() -> Vec<nasflow_stages::tools::Tool> {
    nasflow_stages::tools::tools()
}

pub struct Registry {
    kinds: Vec<&'static KindSpec>,
}

impl Registry {
    /// Every built-in kind.
    pub fn builtin() -> Self {
        let mut kinds = nasflow_stages::kinds();
        kinds.extend(testkinds::kinds());
        Registry { kinds }
    }

    pub fn get(&self, name: &str) -> Option<KindRef> {
        if name == "cmd" {
            return Some(KindRef::Cmd);
        }
        self.kinds
            .iter()
            .find(|k| k.name == name)
            .map(|k| KindRef::Spec(k))
    }

    pub fn names(&self) -> Vec<&'static str> {
        std::iter::once("cmd")
            .chain(self.kinds.iter().map(|k| k.name))
            .collect()
    }

    pub fn specs(&self) -> &[&'static KindSpec] {
        &self.kinds
    }
}
