//! `nasflow supervise`: what a job's command runs under, so that nothing a job started outlives
//! it or the nasflow that started it.
//!
//! nasflow starts the supervisor (the same binary) with the read end of a pipe whose write end
//! only nasflow holds. The supervisor starts the command in a process group of its own and waits
//! for it; when the command ends, it kills what is left of the group (background processes the
//! job started) and exits as the command did. When nasflow dies, however it dies (`kill -9`
//! included), the kernel closes the write end: the supervisor reads end-of-file and kills the
//! whole group. Ctrl-C reaches nasflow, not the job's group (it is not the terminal's foreground
//! group); the supervisor ignores it and acts when nasflow is gone.
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

/// The signals a supervisor ignores (nasflow's death is its signal), and its command gets back.
const SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGQUIT, libc::SIGHUP, libc::SIGTERM];

/// Runs `program args` under supervision; `watchdog` is the pipe's read end.
pub fn main(watchdog: RawFd, program: &OsString, args: &[OsString]) -> ExitCode {
    for s in SIGNALS {
        // SAFETY: setting a signal's disposition before any thread starts.
        unsafe { libc::signal(s, libc::SIG_IGN) };
    }
    let mut cmd = Command::new(program);
    cmd.args(args);
    // SAFETY: setpgid and signal are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setpgid(0, 0);
            for s in SIGNALS {
                libc::signal(s, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "nasflow supervise: cannot start {}: {e}",
                program.to_string_lossy()
            );
            return ExitCode::from(127);
        }
    };
    let group = child.id() as libc::pid_t;
    std::thread::spawn(move || {
        // SAFETY: the fd was handed to this process for this purpose and is used once.
        let mut pipe = unsafe { File::from_raw_fd(watchdog) };
        let mut byte = [0u8; 1];
        let _ = pipe.read(&mut byte); // returns when nasflow closes its end (or dies)
        kill_group(group);
        std::process::exit(137);
    });
    let status = wait(group);
    kill_group(group);
    match status {
        Some(Ok(code)) => ExitCode::from(code as u8),
        Some(Err(signal)) => {
            // SAFETY: dying of the command's signal, as the command did, so nasflow sees it.
            unsafe {
                libc::signal(signal, libc::SIG_DFL);
                libc::raise(signal);
            }
            ExitCode::from(128 + signal as u8)
        }
        None => ExitCode::from(1),
    }
}

fn kill_group(group: libc::pid_t) {
    // SAFETY: signalling a process group this process created.
    unsafe { libc::kill(-group, libc::SIGKILL) };
}

/// Waits for the command: `Ok(exit code)` or `Err(signal)`; `None` if waiting failed.
fn wait(pid: libc::pid_t) -> Option<Result<i32, i32>> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: plain FFI call with a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return None;
        }
    }
    Some(if libc::WIFEXITED(status) {
        Ok(libc::WEXITSTATUS(status))
    } else {
        Err(libc::WTERMSIG(status))
    })
}
