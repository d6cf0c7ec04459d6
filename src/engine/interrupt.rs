//! Ctrl-C while Slurm arrays are followed: cancel them, then exit with 130.
//!
//! Without a follower nasflow keeps the default SIGINT behaviour (it dies at once and its child
//! processes with it). Once a follower has started, SIGINT sets a flag; every follower sees it
//! within a fraction of a second, cancels its arrays (`scancel`) and returns, and the run ends
//! with exit code 130 after its summary. Should the run not end by itself (a local stage still
//! running), the handler exits the process a few seconds after the followers are done (its child
//! processes die with it); a follower that hangs is given up on after a minute.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

static REQUESTED: AtomicBool = AtomicBool::new(false);
static FOLLOWING: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();

/// Whether Ctrl-C (SIGINT) has been received.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Marks a follower as running until the guard is dropped (installing the handler first).
pub fn following() -> Following {
    INSTALL.call_once(|| {
        let installed = ctrlc::set_handler(|| {
            REQUESTED.store(true, Ordering::SeqCst);
            let start = Instant::now();
            while FOLLOWING.load(Ordering::SeqCst) > 0 && start.elapsed() < Duration::from_secs(60)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_secs(5));
            eprintln!("interrupted (Ctrl-C)");
            std::process::exit(130);
        });
        if let Err(e) = installed {
            eprintln!("warning: no Ctrl-C handler ({e}); Ctrl-C will not cancel Slurm arrays");
        }
    });
    FOLLOWING.fetch_add(1, Ordering::SeqCst);
    Following(())
}

pub struct Following(());

impl Drop for Following {
    fn drop(&mut self) {
        FOLLOWING.fetch_sub(1, Ordering::SeqCst);
    }
}
