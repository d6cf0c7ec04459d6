//! Link set-up shared by the `nasflow` and `nasflow-stages` packages (see
//! ../shared/reference/libtorch.md): an rpath to the libtorch that torch-sys linked, so binaries
//! and tests run without LD_LIBRARY_PATH, and, with the `cuda` feature, libtorch_cuda linked with
//! --no-as-needed (rustc's --as-needed would otherwise drop it and CUDA would silently be
//! unavailable). In the `nasflow` package only the `nasflow-worker` binary gets libtorch_cuda:
//! the engine binary never loads libtorch, which keeps a no-op `nasflow run` at a few ms.
//! In the `nasflow-torch` package it also compiles the C++ shim (`stages/torch/shim`).
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB is unset: run scripts/install-libtorch.sh");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath={lib}");
    if std::env::var("CARGO_PKG_NAME").as_deref() == Ok("nasflow-torch") {
        shim(Path::new(&lib));
    }
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

/// The C++ shim (stages/torch/shim/shim.cpp): bf16 autocast, channels-last and the determinism
/// switches tch does not wrap, compiled against the headers of the libtorch torch-sys links,
/// with torch-sys's own flags.
fn shim(lib: &Path) {
    let source = "shim/shim.cpp";
    println!("cargo:rerun-if-changed={source}");
    let include = lib.join("..").join("include");
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_string());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file(source)
        .compile("nasflow_shim");
}
