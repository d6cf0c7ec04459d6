//! Link set-up shared by the `nasflow` and `nasflow-stages` packages (see
//! ../shared/reference/libtorch.md): an rpath to the libtorch that torch-sys linked, so binaries
//! and tests run without LD_LIBRARY_PATH, and, with the `cuda` feature, libtorch_cuda linked with
//! --no-as-needed (rustc's --as-needed would otherwise drop it and CUDA would silently be
//! unavailable). In the `nasflow` package only the `nasflow-worker` binary gets libtorch_cuda:
//! the engine binary never loads libtorch, which keeps a no-op `nasflow run` at a few ms.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB is unset: run scripts/install-libtorch.sh");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath={lib}");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        let engine = std::env::var("CARGO_PKG_NAME").as_deref() == Ok("nasflow");
        for arg in ["-Wl,--no-as-needed", "-ltorch_cuda", "-Wl,--as-needed"] {
            if engine {
                println!("cargo:rustc-link-arg-bin=nasflow-worker={arg}");
            } else {
                println!("cargo:rustc-link-arg-tests={arg}");
            }
        }
    }
    // The libtorch version, read from the pip wheel's torch/version.py, for run provenance.
    let version_py = Path::new(&lib).join("..").join("version.py");
    let version = std::fs::read_to_string(version_py)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("__version__ = '")
                    .map(|v| v.trim_end_matches('\'').to_string())
            })
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=NASFLOW_LIBTORCH_VERSION={version}");
}
