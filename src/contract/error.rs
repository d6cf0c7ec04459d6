//! Why a stage run failed.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// Settings that cannot work together (checked when the stage runs, e.g. against its inputs).
    #[error("{0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An input that is not what the stage expects.
    #[error("{0}")]
    Failed(String),
    /// A libtorch error, as text (this package does not depend on tch).
    #[error("libtorch: {0}")]
    Torch(String),
}

impl StageError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StageError::Io {
            path: path.into(),
            source,
        }
    }
}
