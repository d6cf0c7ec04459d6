//! The kinds and tools the engine knows: the built-in `cmd` kind, and whatever the root package's
//! registration list declared (through [`Registrar`]; the engine keeps declarations only).
use nasflow_contract::{declaration, Declaration, Kind, Registrar, StageContext, StageError, Tool};

/// Bumped when the `cmd` contract (environment, params file) changes; part of every cmd key.
pub const CMD_VERSION: u32 = 1;

/// The name of the built-in kind that runs a shell command.
pub const CMD: &str = "cmd";

/// A kind as the engine sees it.
#[derive(Clone, Copy)]
pub enum KindRef<'r> {
    /// `kind = "cmd"`: a user's shell command (see the runner module).
    Cmd,
    Native(&'r dyn Declaration),
}

impl KindRef<'_> {
    pub fn version(self) -> u32 {
        match self {
            KindRef::Cmd => CMD_VERSION,
            KindRef::Native(d) => d.info().version,
        }
    }
    pub fn reads_seed(self) -> bool {
        match self {
            KindRef::Cmd => true,
            KindRef::Native(d) => d.info().reads_seed,
        }
    }
    pub fn uses_device(self) -> bool {
        match self {
            KindRef::Cmd => false,
            KindRef::Native(d) => d.info().uses_device,
        }
    }
    pub fn item_level(self) -> bool {
        match self {
            KindRef::Cmd => false,
            KindRef::Native(d) => d.info().item_level,
        }
    }
}

/// Declared kinds and tools, in registration order.
#[derive(Default)]
pub struct Registry {
    kinds: Vec<Box<dyn Declaration>>,
    tools: Vec<Tool>,
}

impl Registrar for Registry {
    fn kind<K, C>(&mut self, _compute: C)
    where
        K: Kind,
        C: Fn(&StageContext<K::Params>) -> Result<(), StageError> + Send + Sync + 'static,
    {
        // The computation is dropped unused: the engine binary must not link it (see Registrar).
        self.kinds.push(declaration::<K>());
    }

    fn tool(&mut self, tool: Tool) {
        self.tools.push(tool);
    }
}

impl Registry {
    /// A registry filled by a registration function.
    pub fn from(register: impl FnOnce(&mut Registry)) -> Registry {
        let mut r = Registry::default();
        register(&mut r);
        r
    }

    pub fn get(&self, name: &str) -> Option<KindRef<'_>> {
        if name == CMD {
            return Some(KindRef::Cmd);
        }
        self.kinds
            .iter()
            .find(|k| k.info().name == name)
            .map(|k| KindRef::Native(k.as_ref()))
    }

    /// Every kind name, `cmd` first.
    pub fn names(&self) -> Vec<&'static str> {
        std::iter::once(CMD)
            .chain(self.kinds.iter().map(|k| k.info().name))
            .collect()
    }

    pub fn declarations(&self) -> impl Iterator<Item = &dyn Declaration> {
        self.kinds.iter().map(|k| k.as_ref())
    }

    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }
}
